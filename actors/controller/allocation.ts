import type { JobHints, Tier, Weight } from "../../schemas/operations";
import type { NodeType, ScalingPolicy } from "./policy";

/** What a job needs: throughput and capacity, and which of the two binds it. */
export interface Demand {
  readonly throughputBps: number;
  readonly capacityBytes: number;
  readonly bound: "throughput" | "capacity";
}

/**
 * Pocket's rules (REFERENCE.md, "Allocation from hints"): lambdas × per-lambda
 * peak gives throughput, capacity follows in proportion to a node's
 * capacity/throughput, and the reverse; a hint of 0 or absent is unknown.
 *
 * @example
 *   // 10 lambdas on a 1 GB/s, 60 GB node type at 75 MB/s each:
 *   demandFromHints({ lambdas: 10 }, dram, policy)
 *   // → { throughputBps: 750e6, capacityBytes: 45e9, bound: "throughput" }
 */
export function demandFromHints(hints: JobHints, type: NodeType, policy: Pick<ScalingPolicy, "perLambdaBps" | "unhintedNodes">): Demand {
  const perByte = type.throughputBps / type.capacityBytes;
  let t = hints.throughputBps || (hints.lambdas ? hints.lambdas * policy.perLambdaBps : 0);
  let c = hints.capacityBytes || 0;
  if (t === 0 && c === 0) {
    t = policy.unhintedNodes * type.throughputBps;
    c = policy.unhintedNodes * type.capacityBytes;
  } else if (c === 0) {
    c = t / perByte;
  } else if (t === 0) {
    t = c * perByte;
  }
  return { throughputBps: t, capacityBytes: c, bound: t / type.throughputBps >= c / type.capacityBytes ? "throughput" : "capacity" };
}

/** Demand in nodes of the type: the binding dimension's count of node-fractions. */
export function demandInNodes(d: Demand, type: NodeType): number {
  return Math.max(d.throughputBps / type.throughputBps, d.capacityBytes / type.capacityBytes);
}

/** A node as the allocator sees it. */
export interface NodeSlot {
  readonly nodeId: string;
  readonly capacityBytes: number;
  readonly throughputBps: number;
  readonly reservedBytes: number;
  readonly reservedBps: number;
  /** Bytes stored now (a node holding more than it has reserved is that full). */
  readonly usedBytes: number;
}

/** A job's reservation on one node. */
export interface AllocationPart {
  readonly nodeId: string;
  readonly bytes: number;
  readonly bps: number;
}

export interface Allocation {
  readonly parts: AllocationPart[];
  /** Demand left over once every given node is full: new nodes of the type should take it. */
  readonly remainder: Demand;
}

const epsilon = 1e-9;

/**
 * Takes a demand from nodes, filling the fullest ones first (smallest gaps
 * first), up to each node's spare share of the binding dimension, and only as
 * much as the other dimension also has room for.
 */
export function allocate(demand: Demand, nodes: readonly NodeSlot[]): Allocation {
  const byCapacity = demand.bound === "capacity";
  const need = byCapacity ? demand.capacityBytes : demand.throughputBps;
  // The other dimension, per unit of the binding one.
  const ratio = need > 0 ? (byCapacity ? demand.throughputBps / need : demand.capacityBytes / need) : 0;
  const spare = (n: NodeSlot): { bind: number; other: number; fraction: number } => {
    const freeBytes = Math.max(0, n.capacityBytes - Math.max(n.reservedBytes, n.usedBytes));
    const freeBps = Math.max(0, n.throughputBps - n.reservedBps);
    return byCapacity
      ? { bind: freeBytes, other: freeBps, fraction: freeBytes / n.capacityBytes }
      : { bind: freeBps, other: freeBytes, fraction: freeBps / n.throughputBps };
  };
  const ordered = nodes
    .map((n) => ({ n, s: spare(n) }))
    .filter((x) => x.s.bind > epsilon)
    .sort((a, b) => a.s.fraction - b.s.fraction || (a.n.nodeId < b.n.nodeId ? -1 : a.n.nodeId > b.n.nodeId ? 1 : 0));
  const parts: AllocationPart[] = [];
  let left = need;
  for (const { n, s } of ordered) {
    if (left <= epsilon) break;
    let take = Math.min(s.bind, left);
    if (ratio > 0) take = Math.min(take, s.other / ratio);
    if (take <= epsilon) continue;
    parts.push(byCapacity ? { nodeId: n.nodeId, bytes: take, bps: take * ratio } : { nodeId: n.nodeId, bytes: take * ratio, bps: take });
    left -= take;
  }
  left = Math.max(0, left);
  const remainder: Demand = byCapacity
    ? { capacityBytes: left, throughputBps: left * ratio, bound: "capacity" }
    : { throughputBps: left, capacityBytes: left * ratio, bound: "throughput" };
  return { parts, remainder };
}

/** New nodes of a type needed for a remainder. */
export function nodesFor(remainder: Demand, type: NodeType): number {
  const n = demandInNodes(remainder, type);
  return n <= epsilon ? 0 : Math.ceil(n - epsilon);
}

/**
 * A weight map from reservation parts on the nodes that can take writes now.
 * A part's weight is its larger share of the job's reserved bytes or
 * throughput, so a part added for capacity alone (a job that grew) gets its
 * share of new data too. Weights sum to 1 (or the map is empty).
 */
export function weightsFromParts(parts: readonly AllocationPart[], writable: ReadonlySet<string>): Weight[] {
  const bytes = parts.reduce((s, p) => s + p.bytes, 0);
  const bps = parts.reduce((s, p) => s + p.bps, 0);
  const share = (p: AllocationPart): number => Math.max(bytes > 0 ? p.bytes / bytes : 0, bps > 0 ? p.bps / bps : 0);
  const merged = new Map<string, number>();
  for (const p of parts) if (writable.has(p.nodeId)) merged.set(p.nodeId, (merged.get(p.nodeId) ?? 0) + share(p));
  const total = [...merged.values()].reduce((s, x) => s + x, 0);
  if (total <= epsilon) return [];
  return [...merged.entries()]
    .map(([nodeId, x]) => ({ nodeId, weight: round(x / total) }))
    .filter((w) => w.weight > 0)
    .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
}

/** Weights in proportion to free bytes: for a job whose reserved nodes cannot take writes yet. */
export function freeSpaceWeights(nodes: readonly { nodeId: string; capacityBytes: number; usedBytes: number }[]): Weight[] {
  const free = nodes.map((n) => ({ nodeId: n.nodeId, free: Math.max(0, n.capacityBytes - n.usedBytes) })).filter((n) => n.free > 0)
    .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  const total = free.reduce((s, n) => s + n.free, 0);
  return total > 0 ? free.map((n) => ({ nodeId: n.nodeId, weight: round(n.free / total) })) : [];
}

/** Six decimals: enough for placement, and stable in recorded decisions. */
export function round(x: number, digits = 6): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Latency-sensitive → DRAM (NVMe when the cluster has no DRAM nodes: then it
 * becomes a latency-critical tenant there); otherwise NVMe when the cluster
 * has NVMe nodes, else DRAM.
 */
export function tierFor(hints: JobHints, tiersWithNodes: ReadonlySet<Tier>): Tier {
  if (hints.latencySensitive) return tiersWithNodes.has("dram") || !tiersWithNodes.has("nvme") ? "dram" : "nvme";
  return tiersWithNodes.has("nvme") ? "nvme" : "dram";
}
