import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { verbs } from "../../cli/program";
import { EnvVars } from "../../cli/env-vars";
import { parseAllDocuments } from "yaml";
import { eventually, patternBytes } from "../harness/cluster";
import { pocketCli, pocketUp, registerJob, runPocket, type PocketUp } from "../harness/pocket-cli";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-cli-"));
let up: PocketUp;
let env: NodeJS.ProcessEnv;

function pocket(args: string[], input?: Buffer): ReturnType<typeof runPocket> {
  return runPocket(args, env, input);
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
  up = await pocketUp(["--dram", "2", "--shards", "1", "--data-dir", path.join(tmp, "cluster")]);
  expect(up.env["POCKET_NATS_URL"]).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
  for (const k of ["POCKET_NATS_CREDS", "POCKET_ADMIN_CREDS"]) expect(fs.statSync(up.env[k]!).mode & 0o077).toBe(0);
  env = up.env;
}, 40_000);

afterAll(async () => {
  await up?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("help", () => {
  test("every verb has its own help: usage, arguments, each of its flags, the environment it reads, an example", () => {
    const words = (text: string): string => text.replace(/\s+/g, " ");
    for (const verb of verbs) {
      const name = verb.words.join(" ");
      const help = pocket(["help", ...verb.words]);
      expect({ name, status: help.status }).toEqual({ name, status: 0 });
      const text = help.stdout.toString();
      expect(text.startsWith(`Usage: pocket ${name} `)).toBe(true);
      // Help wraps long lines: compare with whitespace runs as one space.
      for (const a of verb.args) expect(words(text)).toContain(words(a.description));
      for (const o of verb.options) expect(text).toContain(o.flags);
      expect(text).toMatch(verb.env.length > 0 ? /\nEnvironment:\n/ : /^(?![\s\S]*\nEnvironment:)/);
      for (const v of verb.env) expect(text).toMatch(new RegExp(`^ {2}${v} `, "m"));
      expect(verb.examples.length).toBeGreaterThan(0);
      for (const e of verb.examples) expect(text).toContain(`$ ${e}`);
    }
    // `pocket VERB --help` is the same text.
    for (const w of [["put"], ["job", "register"]]) expect(pocket([...w, "--help"]).stdout.toString()).toBe(pocket(["help", ...w]).stdout.toString());
  });

  test("a verb's help shows its flags and not another's", () => {
    const put = pocket(["put", "--help"]).stdout.toString();
    expect(put).toMatch(/^Usage: pocket put \[options\] <job> <key> <file>\n/);
    expect(put).toMatch(/Environment:\n {2}POCKET_NATS_URL/);
    expect(put).toContain("$ pocket put $POCKET_JOB data/in.bin ./in.bin");
    expect(put).toContain("--create-only");
    expect(put).not.toContain("--recursive");
    expect(put).not.toContain("--dram");
    const upHelp = pocket(["help", "up"]).stdout.toString();
    expect(upHelp).toContain("--dram <n>");
    expect(upHelp).toContain("POCKET_NATS_SERVER");
    expect(upHelp).not.toContain("--token");
    expect(pocket(["help", "job", "register"]).stdout.toString()).toMatch(/^Usage: pocket job register \[options\] <name>\n[\s\S]*--lambdas <n>/);
  });

  test("the program's help, --version, and help env with every variable", () => {
    const bare = pocket([]);
    expect(bare.status).toBe(0);
    expect(bare.stdout.toString()).toMatch(/^Usage: pocket /);
    for (const v of verbs.filter((x) => x.words.length === 1)) expect(bare.stdout.toString()).toContain(`  ${v.words[0]} `);
    const version = JSON.parse(fs.readFileSync(path.join(projectRoot(), "package.json"), "utf8")) as { version: string };
    const v = pocket(["--version"]);
    expect(v.status).toBe(0);
    expect(v.stdout.toString().trim()).toBe(version.version);
    const envHelp = pocket(["help", "env"]);
    expect(envHelp.status).toBe(0);
    for (const e of EnvVars) expect(envHelp.stdout.toString()).toContain(e.name);
  });

  test("usage errors exit 2 with the verb's usage: a flag of another verb, a missing or extra argument, a bad value", () => {
    const cases: Array<{ args: string[]; says: string; usage: string }> = [
      { args: ["put", "j-1", "k", "f", "--recursive"], says: "unknown option '--recursive'", usage: "Usage: pocket put [options] <job> <key> <file>" },
      { args: ["ls", "j-1", "--dram", "3"], says: "unknown option '--dram'", usage: "Usage: pocket ls [options] <job> [dir]" },
      { args: ["nodes", "--token", "x"], says: "unknown option '--token'", usage: "Usage: pocket nodes [options]" },
      { args: ["up", "--follow"], says: "unknown option '--follow'", usage: "Usage: pocket up [options]" },
      { args: ["put", "j-1", "k"], says: "missing required argument 'file'", usage: "Usage: pocket put" },
      { args: ["stat", "j-1", "k", "extra"], says: "too many arguments", usage: "Usage: pocket stat" },
      { args: ["job", "register", "x", "--lambdas", "many"], says: "takes a whole number", usage: "Usage: pocket job register" },
      { args: ["up", "--orchestrator", "kubernetes"], says: "Allowed choices are local, events-only", usage: "Usage: pocket up" },
      { args: ["frobnicate"], says: "unknown command 'frobnicate'", usage: "pocket help" },
      { args: ["help", "frobnicate"], says: "no verb \"frobnicate\"", usage: "pocket help" },
    ];
    for (const c of cases) {
      const r = pocket(c.args);
      expect({ args: c.args, status: r.status }).toEqual({ args: c.args, status: 2 });
      expect(r.stderr).toContain(c.says);
      expect(r.stderr).toContain(c.usage);
      expect(r.stdout.byteLength).toBe(0);
    }
  });
});

test("register, put, get, ls, stat, rm, deregister from the command line", () => {
  const job = registerJob(env, "cli-job", "--lambdas", "4", "--capacity", "1GiB", "--throughput", "1Gbps");
  const jobId = job.jobId;
  // A lambda gets the token and its job's credential, nothing more.
  expect(job.env["POCKET_CREDS"]).toMatch(/^[A-Za-z0-9_-]+$/);
  env = job.env;

  const file = path.join(tmp, "in.bin");
  const data = patternBytes(3 * 1024 * 1024 + 11, 5);
  fs.writeFileSync(file, data);
  expect(pocket(["put", jobId, "dir/in.bin", file]).status).toBe(0);
  expect(pocket(["put", jobId, "stdin", "-"], Buffer.from("from stdin")).status).toBe(0);
  expect(pocket(["get", jobId, "dir/in.bin"]).stdout.equals(data)).toBe(true);
  const outFile = path.join(tmp, "out.bin");
  expect(pocket(["get", jobId, "stdin", outFile]).status).toBe(0);
  expect(fs.readFileSync(outFile, "utf8")).toBe("from stdin");
  // A directory as the destination: the key's last segment names the file.
  expect(pocket(["get", jobId, "dir/in.bin", tmp]).status).toBe(0);
  expect(fs.readFileSync(path.join(tmp, "in.bin")).equals(data)).toBe(true);
  const again = pocket(["put", jobId, "stdin", "-", "--create-only"], Buffer.from("twice"));
  expect(again.status).toBe(1);
  expect(again.stderr).toMatch(/^error AlreadyExists: /m);

  expect(pocket(["ls", jobId]).stdout.toString()).toBe("dir/\nstdin\t10\n");
  expect(JSON.parse(pocket(["stat", jobId, "dir/in.bin", "--json"]).stdout.toString())).toMatchObject({ type: "object", size: data.byteLength });
  expect(JSON.parse(pocket(["count", jobId, "--recursive", "--json"]).stdout.toString())).toMatchObject({ objects: 2, directories: 1 });
  const nodes = JSON.parse(pocket(["nodes", "--json"]).stdout.toString()) as Array<{ nodeId: string; state: string }>;
  expect(nodes.map((n) => n.state)).toEqual(["active", "active"]);
  expect(pocket(["jobs"]).stdout.toString()).toContain(jobId);
  expect(pocket(["nodes"]).stdout.toString()).toMatch(/^dram: .* of 2\.00 GiB used \(.*%\) on 2 active node\(s\)$/m);

  expect(pocket(["rm", jobId, "dir"]).stderr).toMatch(/^error NotEmpty: /m);
  expect(pocket(["rm", jobId, "dir", "--recursive"]).status).toBe(0);
  expect(pocket(["get", "j-someone-else", "stdin"]).status).toBe(2);
  // Each verb speaks with its own credential: a driver's cannot reach the job's objects, none cannot reach the bus.
  const asDriver = withoutEnv("POCKET_CREDS", () => pocket(["ls", jobId]));
  expect(asDriver.status).toBe(1);
  expect(asDriver.stderr).toMatch(/^error Unauthorized: /m);
  const anonymous = withoutEnv("POCKET_ADMIN_CREDS", () => pocket(["nodes"]));
  expect(anonymous.status).toBe(1);
  expect(anonymous.stderr).toMatch(/^error Unauthorized: /m);

  const dereg = pocket(["job", "deregister", jobId]);
  expect(dereg.status).toBe(0);
  expect(dereg.stdout.toString()).toContain(`deregistered ${jobId}`);
  expect(pocket(["get", jobId, "stdin"]).stderr).toMatch(/^error UnknownJob: /m);

  // What the job used, after it ended.
  const usage = pocket(["usage", jobId]);
  expect(usage.status).toBe(0);
  expect(usage.stdout.toString()).toMatch(new RegExp(`^job ${jobId} \\(cli-job\\): ended, dram`, "m"));
  expect(usage.stdout.toString()).toMatch(/cost {7}\$[\d.]+ at \$0\.3\/node-hour/);
  expect(pocket(["usage", "j-0000000000000000"]).stderr).toMatch(/^error UnknownJob: /m);

  // The controller's decisions are on the event stream.
  const events = pocket(["events", "--json"]).stdout.toString().trim().split("\n").map((l) => JSON.parse(l) as { kind: string; jobId?: string; seq: number });
  expect(events.filter((e) => e.jobId === jobId).map((e) => e.kind)).toEqual(expect.arrayContaining(["job.registered", "job.deregistered"]));
  expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
  expect(pocket(["events"]).stdout.toString()).toMatch(/job\.registered\s+j-\w+ \(cli-job\) on dram/);

  expect(pocket(["node", "retire", "no-such-node"]).stderr).toMatch(/^error NotFound: /m);
  expect(pocket(["nodes"]).stdout.toString()).toMatch(/^NODE\s+TIER\s+STATE\s+ADDR\s+USED\s+CAPACITY\s+CPU\s+NET\s+CAP\s+RESERVED\s+WEIGHTS$/m);
});

test("pocket up says which field of which actor's config is wrong when an actor refuses its config", async () => {
  // The CLI takes any byte count; the node's config schema is what refuses a capacity of 0.
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [pocketCli, "up", "--dram", "1", "--shards", "1", "--dram-capacity", "0", "--data-dir", path.join(tmp, "bad")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => { stderr += d.toString(); });
    child.once("exit", (code) => resolve({ code, stderr }));
  });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: node config: \/capacityBytes must be ≥ 1 \(dram-0 exited with 2; see .*dram-0\.log\)$/m);
}, 30_000);

/** The status of a GET of `url` with this Host header. */
function statusWithHost(url: URL, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: url.hostname, port: url.port, path: url.pathname, headers: { Host: host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on("error", reject);
  });
}

test("pocket dashboard serves the live cluster until interrupted, to its own names and those allowed", async () => {
  const d = spawn(process.execPath, [pocketCli, "dashboard", "--port", "0", "--allow-host", "dash.example,ops.example"], { env: up.env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  d.stderr!.on("data", (b: Buffer) => { stderr += b.toString(); });
  const exited = new Promise<number | null>((resolve) => d.once("exit", (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      d.stdout!.on("data", (b: Buffer) => {
        out += b.toString();
        const m = /pocket dashboard: (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      void exited.then((code) => reject(new Error(`pocket dashboard exited with ${code}: ${stderr}`)));
    });
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<html");
    // The snapshot is the cluster's: the two DRAM nodes `pocket up` started.
    await eventually(async () => {
      const snap = await (await fetch(new URL("api/snapshot", url))).json() as { nodes?: Array<{ nodeId: string }> };
      return (snap.nodes ?? []).length === 2;
    }, 10_000, "the snapshot listing both nodes");
    const snapshot = new URL("api/snapshot", url);
    expect(await statusWithHost(snapshot, "ops.example")).toBe(200);
    expect(await statusWithHost(snapshot, `rebound.example:${snapshot.port}`)).toBe(421);
  } finally {
    d.kill("SIGINT");
  }
  expect(await exited).toBe(0);
});

test("pocket k8s secrets prints the cluster's Secrets from its auth directory, the same ones each time", () => {
  const authDir = path.join(tmp, "k8s-auth");
  const args = ["k8s", "secrets", "--auth-dir", authDir, "--shards", "2", "--driver", "etl"];
  const first = pocket(args);
  expect(first.stderr).toBe("");
  expect(first.status).toBe(0);
  type Secret = { kind: string; metadata: { name: string; namespace: string }; data: Record<string, string> };
  const secretsOf = (out: Buffer): Secret[] => parseAllDocuments(out.toString()).map((d) => d.toJS() as Secret);
  const docs = secretsOf(first.stdout);
  expect(new Set(docs.map((d) => d.kind))).toEqual(new Set(["Secret"]));
  expect(docs.map((d) => d.metadata.name)).toEqual(expect.arrayContaining(["pocket-cluster", "pocket-driver-etl"]));
  expect(docs.every((d) => d.metadata.namespace === "pocket")).toBe(true);
  // The auth directory keeps the keys and secrets: rendering again is the same cluster (credentials are minted anew).
  const again = secretsOf(pocket(args).stdout);
  const cluster = (s: Secret[]): Record<string, string> | undefined => s.find((d) => d.metadata.name === "pocket-cluster")?.data;
  expect(cluster(docs)).toBeDefined();
  expect(cluster(again)).toEqual(cluster(docs));
  const missing = pocket(["k8s", "secrets"]);
  expect(missing.status).toBe(2);
  expect(missing.stderr).toContain("--auth-dir");
});

describe("pocket k8s secrets keeps the cluster's private keys private", () => {
  const authDir = path.join(tmp, "k8s-auth");
  const args = ["k8s", "secrets", "--auth-dir", authDir, "--shards", "1"];
  const modeOf = (file: string): number => fs.statSync(file).mode & 0o777;
  type Secret = { metadata: { name: string }; data: Record<string, string> };
  const secretsIn = (text: string | Buffer): Secret[] => parseAllDocuments(text.toString()).map((d) => d.toJS() as Secret);
  const postgresUrlIn = (text: string | Buffer): string =>
    Buffer.from(secretsIn(text).find((s) => s.metadata.name === "pocket-postgres")!.data["url"]!, "base64").toString();

  test("--out writes a file only its owner can read, and replaces one only with --force", () => {
    const out = path.join(tmp, "secrets.yaml");
    const first = pocket([...args, "--out", out]);
    expect({ status: first.status, stderr: first.stderr, stdout: first.stdout.toString() }).toEqual({ status: 0, stderr: "", stdout: "" });
    expect(modeOf(out)).toBe(0o600);
    const written = fs.readFileSync(out, "utf8");
    expect(secretsIn(written).map((s) => s.metadata.name)).toEqual(expect.arrayContaining(["pocket-cluster", "pocket-controller", "pocket-operator"]));
    const again = pocket([...args, "--out", out]);
    expect(again.status).toBe(2);
    expect(again.stderr).toContain("--force");
    expect(fs.readFileSync(out, "utf8")).toBe(written);
    // A file someone opened up is replaced by a private one, not written into.
    fs.chmodSync(out, 0o644);
    const forced = pocket([...args, "--out", out, "--force"]);
    expect(forced.status).toBe(0);
    expect(modeOf(out)).toBe(0o600);
    expect(secretsIn(fs.readFileSync(out)).length).toBe(secretsIn(written).length);
    expect(fs.readdirSync(tmp).filter((f) => f.startsWith("secrets.yaml."))).toEqual([]);
    expect(pocket([...args, "--force"]).status).toBe(2);
  });

  test("standard output redirected to a file others can read gets nothing; a private one gets the Secrets", () => {
    const file = path.join(tmp, "redirected.yaml");
    const run = (mode: number): { status: number | null; stderr: string } => {
      const fd = fs.openSync(file, "w", mode);
      try {
        fs.fchmodSync(fd, mode);
        const r = spawnSync(process.execPath, [pocketCli, ...args], { env, stdio: ["ignore", fd, "pipe"] });
        return { status: r.status, stderr: r.stderr.toString() };
      } finally {
        fs.closeSync(fd);
      }
    };
    const open = run(0o644);
    expect(open.status).toBe(2);
    expect(open.stderr).toContain("--out FILE");
    expect(fs.statSync(file).size).toBe(0);
    expect(run(0o600).status).toBe(0);
    expect(secretsIn(fs.readFileSync(file)).some((s) => s.metadata.name === "pocket-cluster")).toBe(true);
  });

  test("one's own PostgreSQL URL from a private file or POCKET_POSTGRES_URL; on the command line with a warning", () => {
    const url = "postgres://pocket:s3cret@db.example.com:5432/pocket?sslmode=require";
    const file = path.join(tmp, "pg-url");
    fs.writeFileSync(file, `${url}\n`, { mode: 0o600 });
    const fromFile = pocket([...args, "--postgres-url-file", file]);
    expect({ status: fromFile.status, stderr: fromFile.stderr }).toEqual({ status: 0, stderr: "" });
    expect(postgresUrlIn(fromFile.stdout)).toBe(url);
    const fromEnv = runPocket(args, { ...env, POCKET_POSTGRES_URL: url });
    expect({ status: fromEnv.status, stderr: fromEnv.stderr }).toEqual({ status: 0, stderr: "" });
    expect(postgresUrlIn(fromEnv.stdout)).toBe(url);
    const onCommandLine = pocket([...args, "--postgres-url", url]);
    expect(onCommandLine.status).toBe(0);
    expect(postgresUrlIn(onCommandLine.stdout)).toBe(url);
    expect(onCommandLine.stderr).toMatch(/^pocket k8s secrets: warning: --postgres-url .*--postgres-url-file FILE or POCKET_POSTGRES_URL\n$/);
    expect(postgresUrlIn(withoutEnv("POCKET_POSTGRES_URL", () => pocket(args)).stdout)).toMatch(/^postgres:\/\/pocket:[0-9a-f]+@pocket-postgres:5432\/pocket$/);
    // A URL file others can read is refused, like any secret file; both flags at once is a usage error.
    fs.chmodSync(file, 0o644);
    const openFile = pocket([...args, "--postgres-url-file", file]);
    expect(openFile.status).toBe(1);
    expect(openFile.stderr).toContain("readable by others");
    expect(pocket([...args, "--postgres-url-file", file, "--postgres-url", url]).status).toBe(2);
  });
});
