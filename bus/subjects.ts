/**
 * Every NATS subject Pocket uses, spelled here and nowhere else.
 * A subject for an operation is `<service prefix>.<operation name>`.
 */
export const SubjectRoot = "pocket";

export const Subjects = {
  /** The controller's operations for job drivers (register, renew, deregister). */
  controllerDriver: `${SubjectRoot}.ctl.driver`,
  /** The controller's operations for operators (lists, usage, retire). */
  controllerAdmin: `${SubjectRoot}.ctl.admin`,
  /** Everything the controller serves. */
  controllerAll: `${SubjectRoot}.ctl.>`,
  /** One metadata shard: `<shard>.job.<jobId>.<op>` for a job's lambdas, `<shard>.ctl.<op>` for the controller. */
  shard: (shardId: string): string => `${SubjectRoot}.shard.${shardId}`,
  /** A job's operations on its shard. */
  shardJob: (shardId: string, jobId: string): string => `${SubjectRoot}.shard.${shardId}.job.${jobId}`,
  /** The prefix of every job's operations on a shard (served as `<prefix>.<jobId>.<op>`). */
  shardJobs: (shardId: string): string => `${SubjectRoot}.shard.${shardId}.job`,
  /** Cluster-only operations on a shard (attach, detach, weights, migrate). */
  shardControl: (shardId: string): string => `${SubjectRoot}.shard.${shardId}.ctl`,
  /** One storage node (its NATS fallback; bytes normally use the direct transport). */
  node: (nodeId: string): string => `${SubjectRoot}.node.${nodeId}`,
  /** A job's operations on a node (extent reads and writes). */
  nodeJob: (nodeId: string, jobId: string): string => `${SubjectRoot}.node.${nodeId}.job.${jobId}`,
  /** The prefix of every job's operations on a node (served as `<prefix>.<jobId>.<op>`). */
  nodeJobs: (nodeId: string): string => `${SubjectRoot}.node.${nodeId}.job`,
  /** Cluster-only operations on a node (free, drop, QoS, retire, stats). */
  nodeControl: (nodeId: string): string => `${SubjectRoot}.node.${nodeId}.ctl`,
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

/**
 * The inbox prefix of each identity: replies to a connection's requests come
 * under it, and its credential may subscribe to nothing else of the kind, so
 * no client receives another's replies.
 */
export const Inboxes = {
  controller: "_INBOX.ctl",
  shard: (shardId: string): string => `_INBOX.shard.${shardId}`,
  node: (nodeId: string): string => `_INBOX.node.${nodeId}`,
  operator: (name: string): string => `_INBOX.op.${name}`,
  driver: (name: string): string => `_INBOX.drv.${name}`,
  job: (jobId: string): string => `_INBOX.job.${jobId}`,
} as const;

/** Controller operations that job drivers call; every other controller operation is an operator's. */
export const DriverOperations: ReadonlySet<string> = new Set(["job.register", "job.renew", "job.deregister"]);

/** NATS header names for errors carried in replies. */
export const ErrorHeaders = { code: "Pocket-Error", message: "Pocket-Message" } as const;

/**
 * NATS header names of chunked messages (bus/nats-chunks.ts): a body longer
 * than the connection's `max_payload` minus `chunkHeadroomBytes` travels as
 * several requests, and a reply that long is fetched a chunk at a time.
 */
export const ChunkHeaders = {
  /** On each request chunk: `<streamId>;<index>;<count>;<totalBytes>`. */
  chunk: "Pocket-Chunk",
  /** On the server's answer to request chunks 0 .. count-2: `<index>`. */
  chunkAck: "Pocket-Chunk-Ack",
  /** On a reply that carries only its first chunk: `<streamId>;<count>;<totalBytes>`. */
  replyChunks: "Pocket-Reply-Chunks",
  /** On a request for a held reply's chunk: `<streamId>;<index>`. */
  replyChunk: "Pocket-Reply-Chunk",
} as const;
