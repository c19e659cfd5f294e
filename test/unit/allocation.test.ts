import { allocate, demandFromHints, demandInNodes, nodesFor, weightsFromParts, type NodeSlot } from "../../actors/controller/allocation";
import { ControllerCore } from "../../actors/controller/core";
import type { ControllerInput } from "../../actors/controller/inputs";
import { NodeState } from "../../actors/controller/machines";
import { policyWith, type NodeType } from "../../actors/controller/policy";

const GB = 1e9;
/** Pocket's node: 8 Gb/s, 60 GB of DRAM; lambdas at 600 Mb/s. */
const dram: NodeType = { tier: "dram", capacityBytes: 60 * GB, throughputBps: 1 * GB, cpuCores: 1, minNodes: 2, maxNodes: 8, pricePerHour: 0.3 };
const rules = { perLambdaBps: 600e6 / 8, unhintedNodes: 2 };

describe("demand from hints (Pocket's rules)", () => {
  test("no hints: two nodes' worth of both", () => {
    expect(demandFromHints({}, dram, rules)).toEqual({ throughputBps: 2 * GB, capacityBytes: 120 * GB, bound: "throughput" });
  });
  test("lambdas: N × 600 Mb/s, capacity in proportion", () => {
    const d = demandFromHints({ lambdas: 100 }, dram, rules);
    expect(d.throughputBps).toBeCloseTo(7.5 * GB);
    expect(d.capacityBytes).toBeCloseTo(450 * GB); // 7.5 GB/s ÷ 1 GB/s × 60 GB
    expect(demandInNodes(d, dram)).toBeCloseTo(7.5);
  });
  test("peak throughput as given, capacity in proportion", () => {
    const d = demandFromHints({ throughputBps: 2.5 * GB }, dram, rules);
    expect(d.capacityBytes).toBeCloseTo(150 * GB);
  });
  test("capacity as given, throughput in proportion", () => {
    const d = demandFromHints({ capacityBytes: 30 * GB }, dram, rules);
    expect(d.throughputBps).toBeCloseTo(0.5 * GB);
  });
  test("both given: the larger share binds", () => {
    const d = demandFromHints({ capacityBytes: 300 * GB, lambdas: 10 }, dram, rules);
    expect(d).toEqual({ throughputBps: 0.75 * GB, capacityBytes: 300 * GB, bound: "capacity" });
    expect(demandInNodes(d, dram)).toBeCloseTo(5);
    expect(demandFromHints({ capacityBytes: 6 * GB, lambdas: 40 }, dram, rules).bound).toBe("throughput");
  });
  test("a hint of zero is unknown", () => {
    expect(demandFromHints({ lambdas: 0, capacityBytes: 0 }, dram, rules)).toEqual(demandFromHints({}, dram, rules));
  });
});

const slot = (nodeId: string, reservedFraction: number, extra: Partial<NodeSlot> = {}): NodeSlot => ({
  nodeId, capacityBytes: 60 * GB, throughputBps: 1 * GB, reservedBytes: reservedFraction * 60 * GB, reservedBps: reservedFraction * 1 * GB, usedBytes: 0, ...extra,
});

describe("allocation over nodes", () => {
  test("fills the smallest gaps first, up to each node's spare share", () => {
    // C has 20% spare, A 50%, B 100%: a 0.6-node capacity demand takes 0.2 of C and 0.4 of A.
    const d = demandFromHints({ capacityBytes: 36 * GB }, dram, rules);
    const { parts, remainder } = allocate(d, [slot("A", 0.5), slot("B", 0), slot("C", 0.8)]);
    expect(parts.map((p) => p.nodeId)).toEqual(["C", "A"]);
    expect(parts[0]!.bytes).toBeCloseTo(12 * GB);
    expect(parts[1]!.bytes).toBeCloseTo(24 * GB);
    expect(remainder.capacityBytes).toBeCloseTo(0);
    const w = weightsFromParts(parts, new Set(["A", "B", "C"]));
    expect(w).toEqual([{ nodeId: "A", weight: 0.666667 }, { nodeId: "C", weight: 0.333333 }]);
  });

  test("what does not fit is left for new nodes: ceil of the remainder in nodes", () => {
    const d = demandFromHints({ lambdas: 40 }, dram, rules); // 3 nodes of throughput
    const { parts, remainder } = allocate(d, [slot("A", 0.5)]);
    expect(parts[0]!.bps).toBeCloseTo(0.5 * GB);
    expect(remainder.throughputBps).toBeCloseTo(2.5 * GB);
    expect(nodesFor(remainder, dram)).toBe(3);
  });

  test("a node whose other dimension is taken gives only what that dimension allows", () => {
    const d = demandFromHints({ capacityBytes: 30 * GB }, dram, rules); // 0.5 GB/s along with it
    const busy = slot("A", 0, { reservedBps: 0.9 * GB }); // 0.1 GB/s left: room for 6 GB
    const { parts } = allocate(d, [busy]);
    expect(parts[0]!.bytes).toBeCloseTo(6 * GB);
    expect(parts[0]!.bps).toBeCloseTo(0.1 * GB);
  });

  test("bytes already stored count as taken, even beyond reservations", () => {
    const { parts } = allocate(demandFromHints({ capacityBytes: 60 * GB }, dram, rules), [slot("A", 0, { usedBytes: 45 * GB })]);
    expect(parts[0]!.bytes).toBeCloseTo(15 * GB);
  });
});

/** xorshift32: the same cases every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

describe("properties over random clusters and jobs", () => {
  const policy = policyWith({
    nodeTypes: [{ ...dram, capacityBytes: 10 * GB, minNodes: 1, maxNodes: 12 }, { tier: "nvme", capacityBytes: 100 * GB, throughputBps: GB, cpuCores: 1, minNodes: 0, maxNodes: 4, pricePerHour: 0.1 }],
    startupGraceMs: 0, cooldownMs: 2_000, sustainMs: 1_000, windowMs: 2_000,
  });

  test.each(Array.from({ length: 40 }, (_, i) => i + 1))("seed %i: weights sum to 1, no node over-committed, no draining or failed node chosen", (seed) => {
    const r = rng(seed * 7919);
    const core = new ControllerCore(policy);
    let t = 1_000_000;
    const apply = (i: ControllerInput): void => { core.apply(i); check(); };
    const heard = new Map<string, number>();
    // Checked after every input; plain comparisons (thousands per seed), one expect at the end.
    const violations: string[] = [];
    const check = (): void => {
      for (const n of core.nodes()) {
        const res = core.reservedOn(n.nodeId);
        if (res.bytes > n.capacityBytes * (1 + 1e-9)) violations.push(`t=${t}: ${n.nodeId} has ${res.bytes} bytes reserved of ${n.capacityBytes}`);
        if (res.bps > n.throughputBps * (1 + 1e-9)) violations.push(`t=${t}: ${n.nodeId} has ${res.bps} B/s reserved of ${n.throughputBps}`);
      }
      for (const j of core.liveJobs()) {
        const sum = j.weights.reduce((s, w) => s + w.weight, 0);
        if (j.weights.length > 0 && Math.abs(sum - 1) > 1e-4) violations.push(`t=${t}: ${j.jobId}'s weights sum to ${sum}`);
        for (const w of j.weights) {
          const state = core.nodeState(core.node(w.nodeId)!);
          if (state !== NodeState.Active) violations.push(`t=${t}: ${j.jobId} has weight ${w.weight} on ${w.nodeId}, which is ${state}`);
        }
      }
      if (violations.length > 0) throw new Error(violations.join("\n"));
    };
    apply({ kind: "start", atMs: t });
    const nodeIds: string[] = [];
    for (let i = 0; i < 2 + Math.floor(r() * 5); i++) nodeIds.push(`n${i}`);
    let jobSeq = 0;
    for (let step = 0; step < 120; step++) {
      t += 250;
      const live = core.nodes().filter((n) => core.nodeState(n) !== NodeState.Removed).map((n) => n.nodeId);
      for (const id of new Set([...nodeIds, ...live])) {
        if ((heard.get(id) ?? 0) < 0) continue; // crashed
        if (core.node(id) && core.nodeState(core.node(id)!) === NodeState.Removed) continue;
        const cap = 10 * GB;
        apply({
          kind: "node.heartbeat", atMs: t,
          hb: { nodeId: id, tier: "dram", addr: "x:1", capacityBytes: cap, usedBytes: Math.floor(r() * cap), extents: 1, cpu: r(), bytesInPerSec: r() * GB / 2, bytesOutPerSec: r() * GB / 2 },
        });
      }
      const x = r();
      if (x < 0.15) {
        const hints = r() < 0.3 ? {} : r() < 0.5 ? { lambdas: 1 + Math.floor(r() * 40) } : { capacityBytes: Math.floor(r() * 40 * GB) + 1, latencySensitive: r() < 0.5 };
        apply({ kind: "job.register", atMs: t, jobId: `j${jobSeq++}`, name: "p", shardId: "s0", hints });
      } else if (x < 0.25 && core.liveJobs().length > 0) {
        const jobs = core.liveJobs();
        apply({ kind: "job.deregister", atMs: t, jobId: jobs[Math.floor(r() * jobs.length)]!.jobId });
      } else if (x < 0.3) {
        const active = core.nodes().filter((n) => core.nodeState(n) === NodeState.Active);
        if (active.length > 0) apply({ kind: "node.retire", atMs: t, nodeId: active[Math.floor(r() * active.length)]!.nodeId });
      } else if (x < 0.33 && nodeIds.length > 0) {
        heard.set(nodeIds[Math.floor(r() * nodeIds.length)]!, -1);
      } else if (x < 0.5 && core.liveJobs().length > 0) {
        apply({ kind: "shard.usage", atMs: t, shardId: "s0", jobs: core.liveJobs().map((j) => ({ jobId: j.jobId, bytes: Math.floor(r() * 20 * GB), requests: Math.floor(r() * 1e6) })) });
      }
      apply({ kind: "tick", atMs: t });
    }
    expect(violations).toEqual([]);
    // The run went through the interesting states.
    expect(core.jobs().length).toBeGreaterThan(0);
  });
});
