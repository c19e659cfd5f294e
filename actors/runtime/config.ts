/** Embedded defaults. Every one can be overridden per actor. */
export const Defaults = {
  heartbeatIntervalMs: 1_000,
  /** A node or shard not heard for this many intervals is failed. */
  heartbeatsMissedMax: 3,
  /** Largest extent; objects are split into extents of at most this size. */
  extentBytesMax: 1024 * 1024,
  /** Largest direct-transport frame: one extent plus room for the header. */
  frameBytesMax: 1024 * 1024 + 64 * 1024,
  jobTokenTtlMs: 24 * 3600_000,
  /** A put not committed within this time is abandoned and its extents freed. */
  pendingWriteTtlMs: 120_000,
  pendingWritesPerJobMax: 16_384,
  dramCapacityBytes: 1024 ** 3,
  /** Size of the file an NVMe node creates when it is given none. */
  nvmeCapacityBytes: 1024 ** 3,
  /** Objects up to this size live inline in their shard: one round trip per put or get. */
  inlineBytesMax: 4096,
  inlineCapacityBytes: 512 * 1024 * 1024,
  /** Objects plus directories one job's namespace may hold. */
  namespaceEntriesMax: 5_000_000,
  /** Storage nodes, and shards, one process keeps track of. */
  clusterMembersMax: 10_000,
  /** Jobs the controller keeps registered at once. */
  jobsMax: 100_000,
  rpcTimeoutMs: 10_000,
  /** Frees sent to nodes at once by one shard; more wait in a bounded queue. */
  freeInflightMax: 16,
  /** How long a shard holds a free for others to the same node and job (one request for many, under a high rate of overwrites and deletes). */
  freeLingerMs: 2,
  freeQueueMax: 100_000,
  /** Freed extents a node remembers while their grants may still be valid (refused if written again). */
  freedExtentsRemembered: 250_000,
  /** Deregistered jobs a node remembers, to refuse late writes with their tokens. */
  droppedJobsRemembered: 100_000,
} as const;

export interface NatsSettings {
  readonly natsUrl: string;
  /**
   * Path of this component's NATS credentials (a `.creds` file, 0600): its
   * identity on the bus, which decides what it may publish and receive.
   * Without one the component connects anonymously (a bus without authentication).
   */
  readonly natsCreds?: string;
  /**
   * Path of the cluster's CA certificate (PEM, `ClusterTls`): the component
   * then reaches NATS over TLS only, verifying the server with it.
   */
  readonly natsTlsCa?: string;
  /**
   * Cluster secret that signs capability tokens, extent grants and write
   * receipts; shared by the cluster's components, never sent on the wire.
   */
  readonly secret: string;
}
