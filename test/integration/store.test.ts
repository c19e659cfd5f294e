import { ControllerCore } from "../../actors/controller/core";
import type { ControllerInput } from "../../actors/controller/inputs";
import { policyWith } from "../../actors/controller/policy";
import { ControllerStore } from "../../actors/controller/store";
import { eventually } from "../harness/cluster";
import { StoreKinds, testStores } from "../harness/stores";

const GB = 1e9;
const policy = policyWith({
  nodeTypes: [{ tier: "dram", capacityBytes: 10 * GB, throughputBps: GB, cpuCores: 1, minNodes: 2, maxNodes: 6, pricePerHour: 0.3 }],
  startupGraceMs: 0,
});
const stores = testStores();
afterAll(() => stores.stop());

function busyCore(): ControllerCore {
  const core = new ControllerCore(policy);
  const t0 = 5_000_000;
  const inputs: ControllerInput[] = [
    { kind: "start", atMs: t0 },
    ...["dram-0", "dram-1"].map((nodeId, i): ControllerInput => ({
      kind: "node.heartbeat", atMs: t0 + 10 + i,
      hb: { nodeId, tier: "dram", addr: `127.0.0.1:${7000 + i}`, capacityBytes: 10 * GB, usedBytes: 0, extents: 0, cpu: 0.1, bytesInPerSec: 0, bytesOutPerSec: 0 },
    })),
    { kind: "job.register", atMs: t0 + 100, jobId: "j-a", name: "a", shardId: "s0", hints: { capacityBytes: 15 * GB } },
    { kind: "job.register", atMs: t0 + 200, jobId: "j-b", name: "b", shardId: "s1", hints: { lambdas: 20, latencySensitive: true }, leaseMs: 30_000 },
    { kind: "shard.usage", atMs: t0 + 1_000, shardId: "s0", jobs: [{ jobId: "j-a", bytes: 2 * GB, requests: 1234 }] },
    { kind: "tick", atMs: t0 + 1_000 },
    { kind: "tick", atMs: t0 + 2_000 },
    { kind: "job.register", atMs: t0 + 2_100, jobId: "j-c", name: "c", shardId: "s0", hints: {} },
    { kind: "job.deregister", atMs: t0 + 2_200, jobId: "j-c" },
  ];
  for (const i of inputs) core.apply(i);
  return core;
}

/** What must survive a restart, without the in-memory-only telemetry window. */
function books(core: ControllerCore) {
  return {
    meta: core.meta,
    nodes: core.nodes().map((n) => ({ ...n, samples: undefined, life: { value: n.life.value, context: n.life.context } })),
    jobs: core.liveJobs().map((j) => ({ ...j, life: { value: j.life.value, context: j.life.context } })),
  };
}

describe.each(StoreKinds)("controller store on %s", (kind) => {
  test("saves and loads jobs, hints, allocations, weight maps, nodes, states and the ledger", async () => {
    const location = await stores.location(kind);
    const core = busyCore();
    expect(core.nodes().some((n) => n.launched)).toBe(true); // demand beyond two nodes launched some
    const store = await ControllerStore.open(location);
    await store.save(core, core.takeDirty(), 1);
    await store.close();

    const again = await ControllerStore.open(location); // migrations run again: a no-op
    const state = await again.load();
    expect(state).toBeDefined();
    const restored = new ControllerCore(policy, state);
    expect(books(restored)).toEqual(books(core));
    expect(restored.job("j-a")!.usage.requests).toBe(1234);
    // 2 GB stored over the two ticks after the report: 4 GB·s.
    expect(restored.job("j-a")!.usage.byteSeconds).toBeCloseTo(4 * GB);
    // Ended jobs are not loaded as live, but their ledger is there for `pocket usage`.
    expect(state!.jobs.map((j) => j.jobId).sort()).toEqual(["j-a", "j-b"]);
    const ended = await again.job("j-c");
    expect(ended?.endedAtMs).toBe(5_002_200);
    await again.close();
  });

  test("only what changed is written; pruning drops old ended jobs", async () => {
    const location = await stores.location(kind);
    const core = busyCore();
    const store = await ControllerStore.open(location);
    await store.save(core, core.takeDirty(), 1);
    expect(core.takeDirty().jobs.size).toBe(0);
    core.apply({ kind: "job.renew", atMs: 5_003_000, jobId: "j-a" });
    const dirty = core.takeDirty();
    expect([...dirty.jobs]).toEqual(["j-a"]);
    await store.save(core, dirty, 2);
    expect((await store.load())!.jobs.find((j) => j.jobId === "j-a")!.life.context.leaseExpiresAtMs).toBe(5_003_000 + policy.leaseMs);
    expect(await store.prune(5_002_201)).toBe(1);
    expect(await store.job("j-c")).toBeUndefined();
    expect(await store.job("j-a")).toBeDefined();
    await store.close();
  });

  test("a store that cannot be opened is a clear error", async () => {
    const bad = kind === "sqlite" ? "/etc/hostname/under-a-file.sqlite" : "postgres://nobody@127.0.0.1:1/none";
    await expect(ControllerStore.open(bad)).rejects.toThrow();
  });
});

test("a PostgreSQL store outlives its connections being cut by the server", async () => {
  const location = await stores.location("postgres");
  const core = busyCore();
  const store = await ControllerStore.open(location);
  await store.save(core, core.takeDirty(), 1); // the pool now holds idle connections
  const { Client } = await import("pg");
  const admin = new Client({ connectionString: location });
  await admin.connect();
  try {
    // What a server restart or a dropped link does to idle connections: the server ends them.
    const cut = await admin.query(
      "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    expect(cut.rows.length).toBeGreaterThan(0);
    // The pool hears of it (an unheard pool error would end the process and fail this test), drops them,
    // and the store keeps working on fresh connections.
    core.apply({ kind: "job.renew", atMs: 5_003_000, jobId: "j-a" });
    await eventually(async () => {
      try {
        await store.save(core, core.takeDirty(), 2);
        return true;
      } catch {
        return false; // a query raced the cut on a connection not yet dropped: the next one gets a new connection
      }
    }, 10_000, "a save after the cut");
    const restored = new ControllerCore(policy, await store.load());
    expect(restored.job("j-a")).toBeDefined();
  } finally {
    await admin.end();
    await store.close();
  }
});
