import { spawn } from "node:child_process";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { freePort } from "../../lib/ports";

/**
 * An actor process checks its config (POCKET_ACTOR_CONFIG) against its
 * kind's schema before it starts anything: a wrong config exits 2 and its
 * last line on stderr names the actor kind and the field's path.
 */

const main = path.join(projectRoot(), "dist", "actors", "main.js");
const secret = "0123456789abcdef0123456789abcdef";
let natsUrl: string;

beforeAll(async () => {
  // A port nothing listens on: a config that passes goes on to connect, and fails there (exit 1, not 2).
  natsUrl = `nats://127.0.0.1:${await freePort()}`;
});

/** Runs `node dist/actors/main.js KIND` with this config and environment; its exit code and the last line of its stderr. */
function runActor(kind: string, config: unknown, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; last: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, kind], {
      env: { ...process.env, POCKET_LOG: "silent", ...(config === undefined ? {} : { POCKET_ACTOR_CONFIG: typeof config === "string" ? config : JSON.stringify(config) }), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    child.once("error", reject);
    child.once("exit", (code) => {
      if (stdout.includes("ready")) reject(new Error(`the ${kind} started: ${stdout}`));
      resolve({ code, last: stderr.trim().split("\n").at(-1) ?? "" });
    });
  });
}

const shard = (): Record<string, unknown> => ({ natsUrl, secret, shardId: "s0" });
const node = (): Record<string, unknown> => ({ natsUrl, secret, nodeId: "dram-0", tier: "dram", capacityBytes: 64 * 1024 * 1024 });
const controller = (): Record<string, unknown> => ({ natsUrl, secret, orchestrator: { kind: "events-only" } });

test.each([
  { kind: "shard", config: () => ({ ...shard(), frobnicate: 1 }), says: "shard config: /frobnicate is not a known field" },
  { kind: "shard", config: () => ({ ...shard(), inlineBytesMax: 64 * 1024 * 1024 }), says: "shard config: /inlineBytesMax must be ≤ 1048576" },
  { kind: "shard", config: () => ({ ...shard(), shardId: "s 0" }), says: "shard config: /shardId must match ^[A-Za-z0-9_-]+$" },
  { kind: "node", config: () => ({ ...node(), tier: undefined }), says: "node config: /tier is required" },
  { kind: "node", config: () => ({ ...node(), tier: "disk" }), says: "node config: /tier must be one of dram, nvme" },
  { kind: "node", config: () => ({ ...node(), capacityBytes: "1GiB" }), says: "node config: /capacityBytes must be an integer" },
  { kind: "node", config: () => ({ ...node(), tier: "nvme" }), says: "node config: /nvme is required for tier nvme (the device)" },
  { kind: "node", config: () => ({ ...node(), tls: { certFile: "c.pem" } }), says: "node config: /tls/keyFile is required" },
  { kind: "node", config: () => ({ ...node(), secret: "short" }), says: "node config: /secret must be at least 16 characters" },
  { kind: "controller", config: () => ({ ...controller(), orchestrator: { kind: "nomad" } }), says: "controller config: /orchestrator/kind must be one of local, kubernetes, events-only" },
  { kind: "controller", config: () => ({ ...controller(), orchestrator: { kind: "local" } }), says: "controller config: /orchestrator/dataDir is required" },
  { kind: "controller", config: () => ({ ...controller(), policy: { bandLow: 0.9 } }), says: "controller config: /policy/bandLow must be < bandHigh (0.8)" },
  { kind: "controller", config: () => ({
    ...controller(),
    policy: { nodeTypes: [{ tier: "dram", capacityBytes: 1e9, throughputBps: 1e9, cpuCores: 1, minNodes: 4, maxNodes: 2, pricePerHour: 0.3 }] },
  }), says: "controller config: /policy/nodeTypes/0/minNodes must be ≤ maxNodes (2)" },
  { kind: "controller", config: () => ({ ...controller(), heartbeatIntervalMs: 1.5, jobsMax: 0 }), says: "controller config: /heartbeatIntervalMs must be an integer; /jobsMax must be ≥ 1" },
])("$kind: $says", async ({ kind, config, says }) => {
  const r = await runActor(kind, config());
  expect(r).toEqual({ code: 2, last: says });
});

test("a missing config, one that is not JSON and an unknown kind exit 2 and say so", async () => {
  expect(await runActor("shard", undefined)).toEqual({ code: 2, last: "shard config: POCKET_ACTOR_CONFIG is not set (the actor's JSON config)" });
  expect(await runActor("node", "{nope")).toMatchObject({ code: 2, last: expect.stringMatching(/^node config: POCKET_ACTOR_CONFIG is not JSON \(/) });
  expect(await runActor("node", "[1]")).toEqual({ code: 2, last: "node config: / must be an object" });
  expect(await runActor("gateway", shard())).toEqual({ code: 2, last: "unknown actor \"gateway\": use controller, shard or node" });
});

test("a valid config goes on to start (and fails at the bus it cannot reach, exit 1); POCKET_SECRET and POCKET_ADVERTISE_HOST fill it in", async () => {
  const failed = /failed to start: .*(ECONNREFUSED|CONNECTION_REFUSED|connection refused)/i;
  const { secret: _s, ...noSecret } = node();
  expect(await runActor("node", noSecret)).toEqual({ code: 2, last: "node config: /secret is required" });
  expect(await runActor("node", noSecret, { POCKET_SECRET: secret })).toMatchObject({ code: 1, last: expect.stringMatching(failed) });
  // A node with a port gets host:port advertised; a shard, which advertises nothing, is left as it is.
  expect(await runActor("node", { ...node(), port: 7400 }, { POCKET_ADVERTISE_HOST: "10.1.2.3" })).toMatchObject({ code: 1, last: expect.stringMatching(failed) });
  expect(await runActor("shard", { ...shard(), port: 7401 }, { POCKET_ADVERTISE_HOST: "10.1.2.3" })).toMatchObject({ code: 1, last: expect.stringMatching(failed) });
});
