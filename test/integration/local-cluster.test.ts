import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { isActorPid } from "../../actors/actor-process";
import { LocalCluster } from "../../deploy/local-cluster";

/*
 * The local launcher's own failures: what it started is stopped even when
 * starting goes wrong.
 */

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-local-cluster-")); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `fn` with POCKET_ACTOR_NODE_ARGS set (flags for node in every actor process), then puts it back. */
async function withActorNodeArgs<T>(args: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env["POCKET_ACTOR_NODE_ARGS"];
  process.env["POCKET_ACTOR_NODE_ARGS"] = args;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env["POCKET_ACTOR_NODE_ARGS"];
    else process.env["POCKET_ACTOR_NODE_ARGS"] = saved;
  }
}

test("an actor process whose first line is not its ready line is stopped, and the start fails saying what it printed", async () => {
  // A module node loads before the actor (--require) that prints a banner first and notes the process's pid.
  const pids = path.join(tmp, "pids");
  const preload = path.join(tmp, "banner.js");
  fs.writeFileSync(preload, `require("node:fs").appendFileSync(${JSON.stringify(pids)}, process.pid + "\\n");\nprocess.stdout.write("a banner before the ready line\\n");\n`);
  const failure = await withActorNodeArgs(`--require ${preload}`, () => LocalCluster.start({ shards: 1, dram: 0, dataDir: path.join(tmp, "cluster") }))
    .then((c) => c.stop().then(() => undefined), (e: unknown) => e);
  const launched = fs.readFileSync(pids, "utf8").trim().split("\n").map(Number);
  try {
    expect(launched).toHaveLength(1);
    expect(isActorPid(launched[0]!)).toBe(false);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(/^s0 printed "a banner before the ready line" where its ready line \(a JSON object\) belongs/);
  } finally {
    // Whatever the outcome, no process outlives the test.
    for (const pid of launched) if (isActorPid(pid)) process.kill(pid, "SIGKILL");
  }
}, 30_000);
