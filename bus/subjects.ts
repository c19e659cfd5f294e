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
} as const;

/** The operation subject under a service prefix. */
export function operationSubject(prefix: string, operation: string): string {
  return `${prefix}.${operation}`;
}

/** NATS header names for errors carried in replies. */
export const ErrorHeaders = { code: "Pocket-Error", message: "Pocket-Message" } as const;
