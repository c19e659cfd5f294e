import { ErrorCode } from "../../schemas/errors";
import { Namespace, parsePath } from "../../actors/metadata/namespace";
import { WeightedPicker } from "../../actors/metadata/placement";
import { freeSpaceWeights, tierFor } from "../../actors/controller/allocation";
import { ControllerCore } from "../../actors/controller/core";
import type { ControllerInput, Decision } from "../../actors/controller/inputs";
import { NodeState } from "../../actors/controller/machines";
import { policyWith } from "../../actors/controller/policy";
import type { Tier } from "../../schemas/operations";
import { parseBytes, parseRate, formatBytes, UnitError } from "../../lib/units";

const ext = (id: string, length: number) => ({ nodeId: "n", extentId: id, length, crc: 0 });

test("paths", () => {
  expect(parsePath("/a/b/")).toEqual(["a", "b"]);
  expect(parsePath("")).toEqual([]);
  for (const bad of ["a//b", "a/../b", ".", "x\0y", "a/" + "y".repeat(256)]) {
    expect(() => parsePath(bad)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  }
});

test("put, replace, delete and counts keep totals exact and return extents to free", () => {
  const ns = new Namespace(() => 5);
  ns.put(["a", "x"], 10, [ext("1", 10)], false);
  const r = ns.put(["a", "x"], 20, [ext("2", 20)], false);
  expect(r.replaced).toEqual([ext("1", 10)]);
  expect(r.entry.version).toBe(2);
  expect(() => ns.put(["a", "x"], 1, [], true)).toThrow(expect.objectContaining({ code: ErrorCode.AlreadyExists }));
  ns.put(["a", "b", "y"], 5, [ext("3", 5)], false);
  expect(ns.objects).toBe(2);
  expect(ns.bytes).toBe(25);
  expect(ns.count([], true)).toEqual({ objects: 2, directories: 2, bytes: 25 });
  expect(ns.count(["a"], false)).toEqual({ objects: 1, directories: 1, bytes: 20 });
  expect(() => ns.delete(["a"], false)).toThrow(expect.objectContaining({ code: ErrorCode.NotEmpty }));
  expect(() => ns.put(["a"], 1, [], false)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  expect(() => ns.put(["a", "x", "z"], 1, [], false)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  const d = ns.delete([], true);
  expect(d.totals).toEqual({ objects: 2, directories: 2, bytes: 25 });
  expect(d.extents.map((e) => e.extentId).sort()).toEqual(["2", "3"]);
  expect(ns.objects).toBe(0);
  expect(ns.bytes).toBe(0);
});

test("weighted picking follows the weights and skips nodes that do not fit", () => {
  const p = new WeightedPicker([{ nodeId: "a", weight: 0.75 }, { nodeId: "b", weight: 0.25 }, { nodeId: "c", weight: 0 }]);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const n = p.pick(() => true)!;
    counts[n] = (counts[n] ?? 0) + 1;
  }
  expect(counts).toEqual({ a: 300, b: 100 });
  expect(p.pick((id) => id === "b")).toBe("b");
  expect(p.pick(() => false)).toBeUndefined();
});

describe("the controller's tier choice and free-space weights", () => {
  const MB = 1e6;
  const policy = policyWith({
    nodeTypes: [
      { tier: "dram", capacityBytes: 100 * MB, throughputBps: 1e9, cpuCores: 1, minNodes: 0, maxNodes: 8, pricePerHour: 0.3 },
      { tier: "nvme", capacityBytes: 100 * MB, throughputBps: 1e9, cpuCores: 1, minNodes: 0, maxNodes: 4, pricePerHour: 0.1 },
    ],
    startupGraceMs: 0, scaling: false,
  });
  const silenceMs = policy.heartbeatIntervalMs * policy.heartbeatsMissedMax;
  const heartbeat = (atMs: number, nodeId: string, tier: Tier, usedBytes: number): ControllerInput => ({
    kind: "node.heartbeat", atMs,
    hb: { nodeId, tier, addr: "127.0.0.1:1", capacityBytes: 100 * MB, usedBytes, extents: 0, cpu: 0, bytesInPerSec: 0, bytesOutPerSec: 0 },
  });
  const registered = (decisions: readonly Decision[]): Extract<Decision, { kind: "job.registered" }> => {
    const d = decisions.find((x): x is Extract<Decision, { kind: "job.registered" }> => x.kind === "job.registered");
    if (!d) throw new Error(`no job.registered among ${decisions.map((x) => x.kind).join(", ")}`);
    return d;
  };

  test.each([
    // [latency-sensitive, tiers that have nodes, tier chosen]
    [true, ["dram", "nvme"], "dram"],
    [true, ["nvme"], "nvme"], // no DRAM at all: a latency-critical tenant on NVMe
    [true, [], "dram"],
    [false, ["dram", "nvme"], "nvme"],
    [false, ["dram"], "dram"],
    [false, ["nvme"], "nvme"],
    [false, [], "dram"],
  ] as const)("tierFor(latencySensitive: %s, nodes in %j) is %s", (latencySensitive, tiers, want) => {
    expect(tierFor({ latencySensitive }, new Set<Tier>(tiers))).toBe(want);
  });

  test("the core registers a latency-sensitive job on NVMe when the cluster has no DRAM node", () => {
    const core = new ControllerCore(policy);
    core.apply({ kind: "start", atMs: 1_000 });
    core.apply(heartbeat(1_000, "nvme-0", "nvme", 0));
    const d = registered(core.apply({ kind: "job.register", atMs: 1_010, jobId: "j-fast", name: "fast", shardId: "s0", hints: { latencySensitive: true, capacityBytes: 10 * MB } }));
    expect(d.tier).toBe("nvme");
    expect(d.weights).toEqual([{ nodeId: "nvme-0", weight: 1 }]);
  });

  test("freeSpaceWeights: in proportion to free bytes, full nodes left out, sum 1, six decimals, ordered by node", () => {
    const w = freeSpaceWeights([
      { nodeId: "c", capacityBytes: 100, usedBytes: 100 },
      { nodeId: "b", capacityBytes: 100, usedBytes: 50 },
      { nodeId: "a", capacityBytes: 100, usedBytes: 0 },
      { nodeId: "d", capacityBytes: 100, usedBytes: 120 }, // holds more than it offers: no room, not negative room
    ]);
    expect(w).toEqual([{ nodeId: "a", weight: 0.666667 }, { nodeId: "b", weight: 0.333333 }]);
    expect(w.reduce((s, x) => s + x.weight, 0)).toBeCloseTo(1, 5);
    expect(freeSpaceWeights([{ nodeId: "a", capacityBytes: 100, usedBytes: 100 }])).toEqual([]);
    expect(freeSpaceWeights([])).toEqual([]);
  });

  test("a job whose reservation is on nodes still starting writes by free space over its tier's active nodes, then any tier's", () => {
    const core = new ControllerCore(policy);
    let t = 1_000;
    core.apply({ kind: "start", atMs: t });
    core.apply(heartbeat(t, "dram-a", "dram", 0));
    core.apply(heartbeat(t, "dram-b", "dram", 0));
    core.apply(heartbeat(t, "dram-c", "dram", 100 * MB)); // full
    core.apply(heartbeat(t, "dram-d", "dram", 0)); // goes silent: failed
    core.apply(heartbeat(t, "dram-e", "dram", 0)); // retired: draining
    core.apply(heartbeat(t, "nvme-x", "nvme", 0)); // another tier
    t += silenceMs + 1;
    for (const [id, tier, used] of [["dram-a", "dram", 0], ["dram-b", "dram", 0], ["dram-c", "dram", 100 * MB], ["dram-e", "dram", 0], ["nvme-x", "nvme", 0]] as const) {
      core.apply(heartbeat(t, id, tier, used));
    }
    core.apply({ kind: "tick", atMs: t });
    core.apply({ kind: "node.retire", atMs: t, nodeId: "dram-e" });
    expect(Object.fromEntries(core.nodes().map((n) => [n.nodeId, core.nodeState(n)]))).toEqual({
      "dram-a": NodeState.Active, "dram-b": NodeState.Active, "dram-c": NodeState.Active,
      "dram-d": NodeState.Failed, "dram-e": NodeState.Draining, "nvme-x": NodeState.Active,
    });

    // The first job reserves every byte the active DRAM nodes have spare, and writes over its own reservation.
    const first = registered(core.apply({ kind: "job.register", atMs: t, jobId: "j-1", name: "first", shardId: "s0", hints: { latencySensitive: true, capacityBytes: 200 * MB } }));
    expect(first.tier).toBe("dram");
    expect(first.weights).toEqual([{ nodeId: "dram-a", weight: 0.5 }, { nodeId: "dram-b", weight: 0.5 }]);
    t += 10;
    core.apply(heartbeat(t, "dram-b", "dram", 50 * MB)); // it has stored 50 MB there so far

    // The second is reserved on a node launched for it; until that node reports, it writes where bytes are free:
    // dram-a (100 MB free) and dram-b (50 MB); not the full, failed, draining or NVMe nodes.
    const out = core.apply({ kind: "job.register", atMs: t, jobId: "j-2", name: "second", shardId: "s0", hints: { latencySensitive: true, capacityBytes: 50 * MB } });
    const launched = out.filter((x) => x.kind === "node.launch").map((x) => x.nodeId);
    expect(launched).toHaveLength(1);
    expect(core.job("j-2")!.parts.map((p) => p.nodeId)).toEqual(launched);
    expect(registered(out).weights).toEqual([{ nodeId: "dram-a", weight: 0.666667 }, { nodeId: "dram-b", weight: 0.333333 }]);

    // With no DRAM byte free anywhere, another tier's active nodes take the writes.
    t += 10;
    core.apply(heartbeat(t, "dram-a", "dram", 100 * MB));
    core.apply(heartbeat(t, "dram-b", "dram", 100 * MB));
    const third = core.apply({ kind: "job.register", atMs: t, jobId: "j-3", name: "third", shardId: "s0", hints: { latencySensitive: true, capacityBytes: 50 * MB } });
    expect(registered(third).tier).toBe("dram");
    expect(registered(third).weights).toEqual([{ nodeId: "nvme-x", weight: 1 }]);
  });
});

test("units", () => {
  expect(parseBytes("10GiB")).toBe(10 * 2 ** 30);
  expect(parseBytes("1.5 KB")).toBe(1500);
  expect(parseBytes("512")).toBe(512);
  expect(parseRate("8Gbps")).toBe(1e9);
  expect(parseRate("100MB/s")).toBe(1e8);
  expect(() => parseBytes("lots")).toThrow(UnitError);
  expect(formatBytes(1536)).toBe("1.50 KiB");
});

test("a namespace holds a bounded number of entries, empty objects and directories included", () => {
  const ns = new Namespace(() => 0, 3);
  ns.put(["a", "b"], 0, [], false); // directory a + object b
  ns.mkdir(["c"]);
  expect(() => ns.put(["d"], 0, [], false)).toThrow(expect.objectContaining({ code: ErrorCode.CapacityExceeded }));
  expect(() => ns.mkdir(["e"])).toThrow(expect.objectContaining({ code: ErrorCode.CapacityExceeded }));
  ns.put(["a", "b"], 5, [], false); // overwriting takes no new entry
  ns.delete(["c"], false);
  ns.put(["d"], 0, [], false);
  expect(ns.count([], true)).toEqual({ objects: 2, directories: 1, bytes: 5 });
});
