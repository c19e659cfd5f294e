/**
 * Every NATS subject Pocket uses, spelled here and nowhere else.
 * A subject for an operation is `<service prefix>.<operation name>`.
 */
export const SubjectRoot = "pocket";

export const Subjects = {
  /** The controller's operations. */
  controller: `${SubjectRoot}.ctl`,
  /** One metadata shard's operations. */
  shard: (shardId: string): string => `${SubjectRoot}.shard.${shardId}`,
  /** One storage node's operations (its NATS fallback; bytes normally use the direct transport). */
  node: (nodeId: string): string => `${SubjectRoot}.node.${nodeId}`,
  /** Heartbeats with stats, published every heartbeat interval. */
  nodeHeartbeat: (nodeId: string): string => `${SubjectRoot}.hb.node.${nodeId}`,
  nodeHeartbeatAll: `${SubjectRoot}.hb.node.*`,
  shardHeartbeat: (shardId: string): string => `${SubjectRoot}.hb.shard.${shardId}`,
  shardHeartbeatAll: `${SubjectRoot}.hb.shard.*`,
  /** Lifecycle notices, for anything that wants to follow the cluster. */
  event: (kind: string): string => `${SubjectRoot}.evt.${kind}`,
  eventAll: `${SubjectRoot}.evt.>`,
  /** Inputs to the controller's decisions, recorded for replay. */
  trace: (kind: string): string => `${SubjectRoot}.trace.${kind}`,
  traceAll: `${SubjectRoot}.trace.>`,
  /** Per-job usage a shard reports every interval. */
  shardUsage: (shardId: string): string => `${SubjectRoot}.usage.shard.${shardId}`,
  shardUsageAll: `${SubjectRoot}.usage.shard.*`,
} as const;

/**
 * Checks an actor id used in subjects: one subject token, no dots or wildcards
 * (a shard "a" must not receive shard "a.b"'s requests).
 */
export function checkSubjectToken(kind: string, id: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new Error(`${kind} id ${JSON.stringify(id)} must be 1-64 of A-Z a-z 0-9 _ -`);
  return id;
}

/** The operation subject under a service prefix. */
export function operationSubject(prefix: string, operation: string): string {
  return `${prefix}.${operation}`;
}

/** NATS header names for errors carried in replies. */
export const ErrorHeaders = { code: "Pocket-Error", message: "Pocket-Message" } as const;
