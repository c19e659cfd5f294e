import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { projectRoot } from "../../lib/process";
import { patternBytes } from "../harness/cluster";

const cli = path.join(projectRoot(), "dist", "cli", "pocket.js");
let up: ChildProcess;
let env: NodeJS.ProcessEnv;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-cli-"));

function pocket(args: string[], input?: Buffer): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { env, input, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Runs `fn` with one variable taken out of the CLI's environment. */
function withoutEnv<T>(name: string, fn: () => T): T {
  const saved = env;
  env = { ...env };
  delete env[name];
  try {
    return fn();
  } finally {
    env = saved;
  }
}

beforeAll(async () => {
  up = spawn(process.execPath, [cli, "up", "--dram", "2", "--shards", "1", "--data-dir", path.join(tmp, "cluster")], { stdio: ["ignore", "pipe", "pipe"] });
  // `pocket up` prints the NATS URL, a job driver's creds file and an operator's, one per line, when ready.
  const wanted = ["POCKET_NATS_URL", "POCKET_NATS_CREDS", "POCKET_ADMIN_CREDS"];
  const vars = await new Promise<Record<string, string>>((resolve, reject) => {
    const got: Record<string, string> = {};
    const timer = setTimeout(() => reject(new Error(`pocket up printed ${Object.keys(got).join(", ") || "nothing"} within 30 s`)), 30_000);
    readline.createInterface({ input: up.stdout! }).on("line", (l) => {
      const eq = l.indexOf("=");
      if (eq > 0) got[l.slice(0, eq)] = l.slice(eq + 1);
      if (wanted.every((k) => k in got)) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    up.once("exit", (code) => reject(new Error(`pocket up exited with ${code}`)));
  });
  expect(vars["POCKET_NATS_URL"]).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
  for (const k of ["POCKET_NATS_CREDS", "POCKET_ADMIN_CREDS"]) expect(fs.statSync(vars[k]!).mode & 0o077).toBe(0);
  env = { ...process.env, ...vars };
}, 40_000);

afterAll(async () => {
  if (up && up.exitCode === null) {
    const exited = new Promise((r) => up.once("exit", r));
    up.kill("SIGINT");
    await exited;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("register, put, get, ls, stat, rm, deregister from the command line", () => {
  const reg = pocket(["job", "register", "cli-job", "--lambdas", "4", "--capacity", "1GiB", "--throughput", "1Gbps"]);
  expect(reg.status).toBe(0);
  const vars = Object.fromEntries(reg.stdout.toString().trim().split("\n").map((l) => l.split("=") as [string, string]));
  const jobId = vars["POCKET_JOB"]!;
  // A lambda gets the token and its job's credential, nothing more.
  expect(vars["POCKET_CREDS"]).toMatch(/^[A-Za-z0-9_-]+$/);
  env = { ...env, POCKET_TOKEN: vars["POCKET_TOKEN"], POCKET_CREDS: vars["POCKET_CREDS"] };

  const file = path.join(tmp, "in.bin");
  const data = patternBytes(3 * 1024 * 1024 + 11, 5);
  fs.writeFileSync(file, data);
  expect(pocket(["put", jobId, "dir/in.bin", file]).status).toBe(0);
  expect(pocket(["put", jobId, "stdin", "-"], Buffer.from("from stdin")).status).toBe(0);
  expect(pocket(["get", jobId, "dir/in.bin"]).stdout.equals(data)).toBe(true);
  const outFile = path.join(tmp, "out.bin");
  expect(pocket(["get", jobId, "stdin", outFile]).status).toBe(0);
  expect(fs.readFileSync(outFile, "utf8")).toBe("from stdin");

  expect(pocket(["ls", jobId]).stdout.toString()).toBe("dir/\nstdin\t10\n");
  expect(JSON.parse(pocket(["stat", jobId, "dir/in.bin", "--json"]).stdout.toString())).toMatchObject({ type: "object", size: data.byteLength });
  expect(JSON.parse(pocket(["count", jobId, "--recursive", "--json"]).stdout.toString())).toMatchObject({ objects: 2, directories: 1 });
  const nodes = JSON.parse(pocket(["nodes", "--json"]).stdout.toString()) as Array<{ nodeId: string; state: string }>;
  expect(nodes.map((n) => n.state)).toEqual(["active", "active"]);
  expect(pocket(["jobs"]).stdout.toString()).toContain(jobId);
  expect(pocket(["nodes"]).stdout.toString()).toMatch(/^dram: .* of 2\.00 GiB used \(.*%\) on 2 active node\(s\)$/m);

  const missing = pocket(["get", jobId, "nope"]);
  expect(missing.status).toBe(1);
  expect(missing.stderr).toContain("NotFound");
  expect(pocket(["rm", jobId, "dir"]).stderr).toContain("NotEmpty");
  expect(pocket(["rm", jobId, "dir", "--recursive"]).status).toBe(0);
  expect(pocket(["get", "j-someone-else", "stdin"]).status).toBe(2);
  expect(pocket(["frobnicate"]).status).toBe(2);
  // Each verb speaks with its own credential: a driver's cannot reach the job's objects, none cannot reach the bus.
  const asDriver = withoutEnv("POCKET_CREDS", () => pocket(["ls", jobId]));
  expect(asDriver.status).toBe(1);
  expect(asDriver.stderr).toContain("Unauthorized");
  const anonymous = withoutEnv("POCKET_ADMIN_CREDS", () => pocket(["nodes"]));
  expect(anonymous.status).toBe(1);
  expect(anonymous.stderr).toContain("Unauthorized");

  const dereg = pocket(["job", "deregister", jobId]);
  expect(dereg.status).toBe(0);
  expect(dereg.stdout.toString()).toContain(`deregistered ${jobId}`);
  expect(pocket(["get", jobId, "stdin"]).stderr).toContain("UnknownJob");

  // What the job used, after it ended.
  const usage = pocket(["usage", jobId]);
  expect(usage.status).toBe(0);
  expect(usage.stdout.toString()).toMatch(new RegExp(`^job ${jobId} \\(cli-job\\): ended, dram`, "m"));
  expect(usage.stdout.toString()).toMatch(/cost {7}\$[\d.]+ at \$0\.3\/node-hour/);
  expect(pocket(["usage", "j-0000000000000000"]).stderr).toContain("UnknownJob");

  // The controller's decisions are on the event stream.
  const events = pocket(["events", "--json"]).stdout.toString().trim().split("\n").map((l) => JSON.parse(l) as { kind: string; jobId?: string; seq: number });
  expect(events.filter((e) => e.jobId === jobId).map((e) => e.kind)).toEqual(expect.arrayContaining(["job.registered", "job.deregistered"]));
  expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
  expect(pocket(["events"]).stdout.toString()).toMatch(/job\.registered\s+j-\w+ \(cli-job\) on dram/);

  expect(pocket(["node", "retire", "no-such-node"]).stderr).toContain("NotFound");
  expect(pocket(["nodes"]).stdout.toString()).toMatch(/^NODE\s+TIER\s+STATE\s+ADDR\s+USED\s+CAPACITY\s+CPU\s+NET\s+CAP\s+RESERVED\s+WEIGHTS$/m);
});
