import { Tier } from "../../schemas/operations";
import { Defaults } from "../runtime/config";

/** What one storage node of a kind offers, and what the cluster may have of it. */
export interface NodeType {
  readonly tier: Tier;
  /** Bytes one node of this type stores (a node's own heartbeat overrides it for that node). */
  readonly capacityBytes: number;
  /** Network bytes per second one node serves. */
  readonly throughputBps: number;
  /** CPU cores one node may use (CPU utilisation = busy cores / this). */
  readonly cpuCores: number;
  readonly minNodes: number;
  readonly maxNodes: number;
  /** Price of one node-hour, for `pocket usage`. */
  readonly pricePerHour: number;
}

/** How the controller sizes jobs and the cluster. Every field has an embedded default. */
export interface ScalingPolicy {
  readonly nodeTypes: readonly NodeType[];
  /** Peak throughput one lambda draws (Pocket: 600 Mb/s). */
  readonly perLambdaBps: number;
  /** Demand of a job without hints, in nodes of its tier (Pocket: 2). */
  readonly unhintedNodes: number;
  /** Target utilisation band, as fractions. */
  readonly bandLow: number;
  readonly bandHigh: number;
  /** Utilisation is averaged over this window of heartbeats. */
  readonly windowMs: number;
  /** A dimension must stay outside the band this long before the controller acts. */
  readonly sustainMs: number;
  /** No other scaling decision in a tier for this long after one. */
  readonly cooldownMs: number;
  /** Nodes and jobs are not judged until this long after the controller starts (nodes announce themselves). */
  readonly startupGraceMs: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatsMissedMax: number;
  /** A launched node that has not reported within this long is failed. */
  readonly launchTimeoutMs: number;
  /** A failed node not back within this long is removed from the books. */
  readonly failedRetentionMs: number;
  /** A draining node still holding live data this long after draining began has its extents moved. */
  readonly drainDeadlineMs: number;
  /** A job whose lease is not renewed within this long is reclaimed. */
  readonly leaseMs: number;
  /** Ended jobs kept in memory for `pocket usage` (older ones are read from the store). */
  readonly endedJobsRetained: number;
  readonly scaling: boolean;
}

const GB = 1e9;

/** Pocket's constants (REFERENCE.md), with node sizes that fit one machine for the local cluster. */
export function defaultNodeTypes(dramCapacityBytes: number = Defaults.dramCapacityBytes): NodeType[] {
  return [
    { tier: Tier.Dram, capacityBytes: dramCapacityBytes, throughputBps: 1 * GB, cpuCores: 1, minNodes: 2, maxNodes: 8, pricePerHour: 0.3 },
    { tier: Tier.Nvme, capacityBytes: 111 * GB, throughputBps: 1 * GB, cpuCores: 1, minNodes: 0, maxNodes: 8, pricePerHour: 0.16 },
  ];
}

export const DefaultPolicy: ScalingPolicy = {
  nodeTypes: defaultNodeTypes(),
  perLambdaBps: 600e6 / 8,
  unhintedNodes: 2,
  bandLow: 0.6,
  bandHigh: 0.8,
  windowMs: 5_000,
  sustainMs: 3_000,
  cooldownMs: 10_000,
  startupGraceMs: 3_000,
  heartbeatIntervalMs: Defaults.heartbeatIntervalMs,
  heartbeatsMissedMax: Defaults.heartbeatsMissedMax,
  launchTimeoutMs: 30_000,
  failedRetentionMs: 10 * 60_000,
  drainDeadlineMs: 60_000,
  leaseMs: 60_000,
  endedJobsRetained: 10_000,
  scaling: true,
};

/** A policy from defaults and overrides; node types given replace the defaults of their tier. */
export function policyWith(overrides: Partial<ScalingPolicy> = {}): ScalingPolicy {
  const types = new Map(DefaultPolicy.nodeTypes.map((t) => [t.tier, t] as const));
  for (const t of overrides.nodeTypes ?? []) types.set(t.tier, t);
  const p: ScalingPolicy = { ...DefaultPolicy, ...overrides, nodeTypes: [...types.values()] };
  if (!(p.bandLow > 0 && p.bandLow < p.bandHigh && p.bandHigh <= 1)) throw new RangeError(`band ${p.bandLow}–${p.bandHigh} must satisfy 0 < low < high ≤ 1`);
  for (const t of p.nodeTypes) {
    if (t.capacityBytes <= 0 || t.throughputBps <= 0 || t.cpuCores <= 0) throw new RangeError(`node type ${t.tier}: capacity, throughput and cores must be positive`);
    if (t.minNodes < 0 || t.maxNodes < t.minNodes) throw new RangeError(`node type ${t.tier}: need 0 ≤ minNodes ≤ maxNodes`);
  }
  return p;
}

export function nodeTypeOf(policy: ScalingPolicy, tier: Tier): NodeType | undefined {
  return policy.nodeTypes.find((t) => t.tier === tier);
}
