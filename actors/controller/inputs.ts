import type { JobHints, NodeHeartbeat, Tier, Weight } from "../../schemas/operations";
import type { Demand } from "./allocation";
import type { ScalingPolicy } from "./policy";

/**
 * Everything the controller's decisions depend on. The live controller
 * records each input (with its time) before applying it; replaying the
 * recorded inputs gives the same decisions.
 */
export type ControllerInput =
  /** The controller process started (or restarted) at this time. */
  | { kind: "start"; atMs: number; policy?: ScalingPolicy }
  | { kind: "tick"; atMs: number }
  | { kind: "node.heartbeat"; atMs: number; hb: Omit<NodeHeartbeat, "sentAtMs" | "key"> }
  /** A shard's per-job usage: bytes stored now, requests served so far (a counter). */
  | { kind: "shard.usage"; atMs: number; shardId: string; jobs: Array<{ jobId: string; bytes: number; requests: number }> }
  | { kind: "job.register"; atMs: number; jobId: string; name: string; shardId: string; hints: JobHints; leaseMs?: number }
  | { kind: "job.renew"; atMs: number; jobId: string }
  | { kind: "job.deregister"; atMs: number; jobId: string }
  /** An operator asks for a node to be drained and removed. */
  | { kind: "node.retire"; atMs: number; nodeId: string }
  /** The shards moved a draining node's live extents elsewhere. */
  | { kind: "node.migrated"; atMs: number; nodeId: string };

export type InputKind = ControllerInput["kind"];

/** Utilisation of one tier, as fractions of what its serving nodes offer. */
export interface TierMeasurements {
  readonly nodes: number;
  readonly cpu: number;
  readonly network: number;
  readonly capacity: number;
  readonly reservedThroughput: number;
  readonly reservedCapacity: number;
}

/**
 * What the controller decided. Each one is published on the event stream;
 * the actor shell carries out the ones with effects (launch, remove, push
 * weights, reclaim a job, move extents).
 */
export type Decision =
  | { kind: "node.launch"; atMs: number; nodeId: string; tier: Tier; reason: string }
  | { kind: "node.active"; atMs: number; nodeId: string; tier: Tier; launched: boolean }
  | { kind: "node.draining"; atMs: number; nodeId: string; tier: Tier; reason: string }
  | { kind: "node.migrate"; atMs: number; nodeId: string; usedBytes: number }
  | { kind: "node.removed"; atMs: number; nodeId: string; tier: Tier; reason: string }
  | { kind: "node.failed"; atMs: number; nodeId: string; tier: Tier; lastSeenMs: number }
  | { kind: "job.registered"; atMs: number; jobId: string; name: string; tier: Tier; demand: Demand; weights: Weight[] }
  | { kind: "job.active"; atMs: number; jobId: string }
  | { kind: "job.weights"; atMs: number; jobId: string; shardId: string; weights: Weight[]; reason: string }
  | { kind: "job.deregistered"; atMs: number; jobId: string }
  | { kind: "job.expired"; atMs: number; jobId: string; shardId: string; leaseExpiresAtMs: number }
  | { kind: "job.grown"; atMs: number; jobId: string; demand: Demand; reason: string }
  | { kind: "scale.out"; atMs: number; tier: Tier; reason: string; measurements: TierMeasurements; launch: number }
  | { kind: "scale.in"; atMs: number; tier: Tier; reason: string; measurements: TierMeasurements; nodeId: string };

export type DecisionKind = Decision["kind"];
