import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { projectRoot } from "../../lib/process";
import { scrape } from "../harness/prometheus";

const cli = path.join(projectRoot(), "dist", "cli", "pocket.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-up-metrics-"));
let up: ChildProcess | undefined;

afterAll(async () => {
  if (up && up.exitCode === null) {
    const exited = new Promise((r) => up!.once("exit", r));
    up.kill("SIGINT");
    await exited;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The lines `pocket up` prints on stderr about metrics and probes: name → URL. */
function readEndpoints(child: ChildProcess, count: number): Promise<Map<string, string>> {
  return new Promise((resolve, reject) => {
    const found = new Map<string, string>();
    const timer = setTimeout(() => reject(new Error(`pocket up printed ${[...found.keys()].join(", ") || "no endpoints"} within 30 s`)), 30_000);
    readline.createInterface({ input: child.stderr! }).on("line", (l) => {
      const m = /^ {2}(\S+)\s+(http:\/\/\S+)/.exec(l);
      if (m) found.set(m[1]!, m[2]!);
      if (found.size === count) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.once("exit", (code) => reject(new Error(`pocket up exited with ${code}`)));
  });
}

test("pocket up prints where every actor serves its metrics and probes, and nats-server its monitoring", async () => {
  up = spawn(process.execPath, [cli, "up", "--dram", "1", "--shards", "1", "--data-dir", path.join(tmp, "cluster")], { stdio: ["ignore", "ignore", "pipe"] });
  const endpoints = await readEndpoints(up, 4);
  expect([...endpoints.keys()].sort()).toEqual(["controller", "dram-0", "nats-server", "s0"]);
  for (const name of ["controller", "dram-0", "s0"]) {
    const url = new URL(endpoints.get(name)!);
    expect(url.pathname).toBe("/metrics");
    expect((await fetch(new URL("/readyz", url))).status).toBe(200);
    const role = name === "controller" ? "controller" : name === "s0" ? "shard" : "node";
    expect((await scrape(url.host)).one("pocket_actor_info", { role, id: name })).toBe(1);
  }
  const varz = await (await fetch(endpoints.get("nats-server")!)).json() as { server_id: string };
  expect(varz.server_id).toMatch(/^N/);
}, 40_000);
