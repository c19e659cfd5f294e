import { Type as T, type Static } from "@sinclair/typebox";
import { ErrorCode as E } from "./errors";
import { defineOperation, PayloadDirection } from "./operation";

/** Wire-level limits that every implementation and client agrees on. */
export const WireLimits = {
  pathBytesMax: 1024,
  pathSegmentBytesMax: 255,
  nameBytesMax: 128,
  tokenBytesMax: 1024,
  listLimitMax: 10_000,
  extentIdsPerFreeMax: 4096,
  /** Largest object one put may declare (1 TiB); real limits come from capacity. */
  objectBytesMax: 2 ** 40,
  /** A write grant's length (what the shard issues is about 40 characters). */
  grantBytesMax: 512,
  /** Write receipts handed to a shard in one object.commit or object.written. */
  receiptsPerCallMax: 1024,
} as const;

const Id = T.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9._-]+$" });
const Token = T.String({ maxLength: WireLimits.tokenBytesMax });
const Path = T.String({ maxLength: WireLimits.pathBytesMax });
const Bytes = T.Integer({ minimum: 0, maximum: WireLimits.objectBytesMax });
const Millis = T.Integer({ minimum: 0 });
/**
 * A CRC-32/ISO-HDLC of bytes as zlib computes it (Python's `zlib.crc32` gives
 * the same value), as an unsigned 32-bit integer; 0 for no bytes.
 */
const Crc32 = T.Integer({ minimum: 0, maximum: 0xffff_ffff });
/** A shard's permission to write one extent (job, node, extent id, exact length, expiry), signed by the cluster. */
const Grant = T.String({ maxLength: WireLimits.grantBytesMax });
/** A node's signed statement that it stored an extent's bytes with this length and crc. */
const Receipt = T.String({ maxLength: 64 });
/** What a writer hands the shard for each extent it wrote: the node's receipt and the crc it covers. */
export const WriteReceiptSchema = T.Object({ extentId: Id, crc: Crc32, receipt: Receipt }, { additionalProperties: false });
export type WriteReceipt = Static<typeof WriteReceiptSchema>;
const Receipts = T.Array(WriteReceiptSchema, { maxItems: WireLimits.receiptsPerCallMax });

export const Tier = { Dram: "dram", Nvme: "nvme", Disk: "disk" } as const;
export type Tier = (typeof Tier)[keyof typeof Tier];
const TierSchema = T.Union([T.Literal("dram"), T.Literal("nvme"), T.Literal("disk")]);

export const JobHintsSchema = T.Object({
  lambdas: T.Optional(T.Integer({ minimum: 0, maximum: 1_000_000 })),
  capacityBytes: T.Optional(Bytes),
  throughputBps: T.Optional(T.Integer({ minimum: 0 })),
  latencySensitive: T.Optional(T.Boolean()),
  /** Share of the job's I/O that is reads (0..1): what a latency-critical reservation on NVMe is sized for (default 0.5). */
  readRatio: T.Optional(T.Number({ minimum: 0, maximum: 1 })),
}, { additionalProperties: false });
export type JobHints = Static<typeof JobHintsSchema>;

export const WeightSchema = T.Object({ nodeId: Id, weight: T.Number({ minimum: 0, maximum: 1 }) });
export type Weight = Static<typeof WeightSchema>;

/** An Ed25519 public key, raw 32 bytes in base64url: what a direct-transport server proves it holds. */
const TransportKey = T.String({ maxLength: 64 });

export const ExtentRefSchema = T.Object({
  nodeId: Id,
  /** host:port of the node's direct transport, as last heard. */
  addr: T.String({ maxLength: 256 }),
  /** The node's transport key, from its own heartbeat: a client talks only to a server that proves it holds it. */
  key: TransportKey,
  extentId: Id,
  length: Bytes,
  /** In read layouts: the committed CRC-32 of the whole extent, which every read of it is checked against. */
  crc: T.Optional(Crc32),
  /** In write layouts: the grant the node requires to store exactly `length` bytes under `extentId`. */
  grant: T.Optional(Grant),
});
export type ExtentRef = Static<typeof ExtentRefSchema>;

/** What a storage node reports of itself every heartbeat. */
const nodeReport = {
  nodeId: Id,
  tier: TierSchema,
  /** host:port of the node's direct transport. */
  addr: T.String({ maxLength: 256 }),
  capacityBytes: Bytes,
  usedBytes: Bytes,
  extents: T.Integer({ minimum: 0 }),
  /** CPU time used per wall-clock time over the last interval (1 = one core busy). */
  cpu: T.Number({ minimum: 0 }),
  bytesInPerSec: T.Number({ minimum: 0 }),
  bytesOutPerSec: T.Number({ minimum: 0 }),
};

const NodeStateSchema = T.Union([T.Literal("provisioning"), T.Literal("active"), T.Literal("draining"), T.Literal("failed"), T.Literal("removed")]);
const JobStateSchema = T.Union([T.Literal("registered"), T.Literal("active"), T.Literal("ended"), T.Literal("expired")]);

/** Utilisation as fractions of what a node (or tier) offers, averaged over the controller's window. */
export const UtilisationSchema = T.Object({ cpu: T.Number(), network: T.Number(), capacity: T.Number() });

export const NodeInfoSchema = T.Object({
  ...nodeReport,
  state: NodeStateSchema,
  /** Launched by the controller through its orchestrator. */
  launched: T.Boolean(),
  lastSeenMs: Millis,
  utilisation: UtilisationSchema,
  reservedBytes: T.Number({ minimum: 0 }),
  reservedBps: T.Number({ minimum: 0 }),
  /** The node's weight in each live job's weight map. */
  jobWeights: T.Array(T.Object({ jobId: Id, weight: T.Number({ minimum: 0, maximum: 1 }) })),
});
export type NodeInfo = Static<typeof NodeInfoSchema>;

/**
 * One tier's utilisation as the autoscaler judges it: serving (active) nodes,
 * their mean CPU, network and capacity use, and the share of the tier's
 * throughput and capacity that live jobs reserved, all as fractions.
 */
export const TierMeasurementsSchema = T.Object({
  nodes: T.Integer({ minimum: 0 }),
  cpu: T.Number(), network: T.Number(), capacity: T.Number(),
  reservedThroughput: T.Number(), reservedCapacity: T.Number(),
});

const Empty = T.Object({}, { additionalProperties: false });
/** Optional in the schema so that a request without one is `Unauthorized`, not `InvalidArgument`. */
const JobAuth = { token: T.Optional(Token) };
/*
 * Operations between cluster components carry no secret: they are served only
 * on NATS subjects that only the controller (or a shard) may publish to, so
 * the bus identity of the caller is what authorises them.
 */

// ---------------------------------------------------------------- controller

export const ControllerOps = {
  jobRegister: defineOperation({
    name: "job.register",
    summary: "Registers a job with its hints; returns its id, capability token, shard and weight map.",
    request: T.Object({
      name: T.String({ minLength: 1, maxLength: WireLimits.nameBytesMax }),
      hints: T.Optional(JobHintsSchema),
      /** How long the job lives without a renewal (the controller's default otherwise). */
      leaseMs: T.Optional(T.Integer({ minimum: 1_000, maximum: 7 * 24 * 3600_000 })),
    }, { additionalProperties: false }),
    reply: T.Object({
      jobId: Id,
      token: Token,
      shardId: Id,
      expiresAtMs: Millis,
      /** The job is reclaimed unless renewed (job.renew) before this. */
      leaseExpiresAtMs: Millis,
      leaseMs: Millis,
      tier: TierSchema,
      weights: T.Array(WeightSchema),
      /**
       * The NATS credential (creds file text) the job's lambdas connect with:
       * it may send only this job's operations and receive only its own replies.
       * Absent when the cluster's bus has no authentication.
       */
      credentials: T.Optional(T.String({ maxLength: 16_384 })),
    }),
    errors: [E.InvalidArgument, E.CapacityExceeded, E.NodeUnavailable],
  }),
  jobRenew: defineOperation({
    name: "job.renew",
    summary: "Renews a job's lease (the SDK does this while the driver is connected).",
    request: T.Object({ ...JobAuth }, { additionalProperties: false }),
    reply: T.Object({ jobId: Id, leaseExpiresAtMs: Millis }),
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  jobUsage: defineOperation({
    name: "job.usage",
    summary: "What a job used (live or ended): byte-seconds per tier, reserved throughput, requests, and its cost.",
    request: T.Object({ jobId: Id }, { additionalProperties: false }),
    reply: T.Object({
      jobId: Id, name: T.String(), tier: TierSchema, state: JobStateSchema,
      registeredAtMs: Millis, endedAtMs: T.Union([Millis, T.Null()]),
      demand: T.Object({ throughputBps: T.Number(), capacityBytes: T.Number(), bound: T.String(), nodes: T.Number() }),
      bytes: T.Number(), byteSeconds: T.Number(), reservedBpsSeconds: T.Number(), reservedByteSeconds: T.Number(), requests: T.Number(),
      /** Node-hours reserved (the binding dimension) and used (bytes stored), and their price at the tier's node-hour price. */
      reservedNodeHours: T.Number(), usedNodeHours: T.Number(), pricePerNodeHour: T.Number(), cost: T.Number(),
    }),
    errors: [E.UnknownJob],
  }),
  nodeRetire: defineOperation({
    name: "node.retire",
    summary: "Drains a storage node: no new data, removed once it holds none (or its extents are moved at the drain deadline).",
    request: T.Object({ nodeId: Id }, { additionalProperties: false }),
    reply: T.Object({ nodeId: Id, state: NodeStateSchema }),
    errors: [E.NotFound, E.InvalidArgument],
  }),
  jobDeregister: defineOperation({
    name: "job.deregister",
    summary: "Ends a job: its namespace is dropped and every byte it stored is freed.",
    request: T.Object({ ...JobAuth }, { additionalProperties: false }),
    reply: T.Object({ jobId: Id, freedBytes: Bytes }),
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  jobList: defineOperation({
    name: "job.list",
    summary: "Lists registered jobs.",
    request: Empty,
    reply: T.Object({
      jobs: T.Array(T.Object({
        jobId: Id, name: T.String(), shardId: Id, registeredAtMs: Millis,
        hints: JobHintsSchema, weights: T.Array(WeightSchema),
        state: JobStateSchema, tier: TierSchema, leaseExpiresAtMs: Millis,
      })),
    }),
    errors: [],
  }),
  nodeList: defineOperation({
    name: "node.list",
    summary: "Lists storage nodes with their state and last reported stats.",
    request: Empty,
    reply: T.Object({ nodes: T.Array(NodeInfoSchema) }),
    errors: [],
  }),
  scalingStatus: defineOperation({
    name: "scaling.status",
    summary: "The autoscaling band and, per tier, the utilisation the controller judges against it and the tier's node bounds.",
    request: Empty,
    reply: T.Object({
      atMs: Millis,
      /** Whether the controller adds and drains nodes on utilisation (false: it keeps only each tier's minimum). */
      scaling: T.Boolean(),
      /** The target band, as fractions: above bandHigh for sustainMs a tier grows, below bandLow it shrinks. */
      bandLow: T.Number(), bandHigh: T.Number(),
      windowMs: Millis, sustainMs: Millis, cooldownMs: Millis,
      tiers: T.Array(T.Object({
        tier: TierSchema, minNodes: T.Integer({ minimum: 0 }), maxNodes: T.Integer({ minimum: 0 }), measurements: TierMeasurementsSchema,
      })),
    }),
    errors: [],
  }),
  shardList: defineOperation({
    name: "shard.list",
    summary: "Lists metadata shards.",
    request: Empty,
    reply: T.Object({
      shards: T.Array(T.Object({ shardId: Id, state: T.String(), jobs: T.Integer(), objects: T.Integer(), lastSeenMs: Millis })),
    }),
    errors: [],
  }),
} as const;

// ---------------------------------------------------------------- metadata shard

const ObjectWrite = T.Object({ writeId: Id, extents: T.Array(ExtentRefSchema) });
/** Writes reserved ahead at once, at most. */
export const writesAheadMax = 4;
/**
 * Writes of the same size reserved ahead (laid out, with grants, but bound to
 * no path yet): the next puts of that size skip object.create and name their
 * path at commit. Unused ones expire like any pending write.
 */
const Ahead = T.Integer({ minimum: 0, maximum: writesAheadMax });
const ObjectWriteAhead = T.Object({ writeId: Id, extents: T.Array(ExtentRefSchema), ahead: T.Optional(T.Array(ObjectWrite, { maxItems: writesAheadMax })) });

export const ShardOps = {
  attachJob: defineOperation({
    name: "shard.attach",
    summary: "Controller → shard: the shard now owns this job's namespace.",
    request: T.Object({ jobId: Id, name: T.String(), weights: T.Array(WeightSchema) }, { additionalProperties: false }),
    reply: Empty,
    errors: [E.Unauthorized, E.InvalidArgument],
  }),
  detachJob: defineOperation({
    name: "shard.detach",
    summary: "Controller → shard: drops a job's namespace and frees its extents.",
    request: T.Object({ jobId: Id }, { additionalProperties: false }),
    reply: T.Object({ objects: T.Integer({ minimum: 0 }), bytes: Bytes }),
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  setWeights: defineOperation({
    name: "shard.weights",
    summary: "Controller → shard: a job's new weight map.",
    request: T.Object({ jobId: Id, weights: T.Array(WeightSchema) }, { additionalProperties: false }),
    reply: Empty,
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  migrate: defineOperation({
    name: "shard.migrate",
    summary: "Controller → shard: moves every extent this shard's jobs have on a node to their other nodes.",
    request: T.Object({ nodeId: Id }, { additionalProperties: false }),
    reply: T.Object({ extents: T.Integer({ minimum: 0 }), bytes: Bytes, failed: T.Integer({ minimum: 0 }) }),
    errors: [E.Unauthorized],
  }),
  info: defineOperation({
    name: "shard.info",
    summary: "Where to reach this shard on the direct transport, and its limits.",
    request: Empty,
    reply: T.Object({ shardId: Id, addr: T.String({ maxLength: 256 }), key: TransportKey, inlineBytesMax: Bytes, extentBytesMax: Bytes }),
    errors: [],
  }),
  objectPut: defineOperation({
    name: "object.put",
    summary: "Stores a small object inline in the shard (the payload), visible at once: a put in one round trip.",
    request: T.Object({
      ...JobAuth, path: Path, createOnly: T.Optional(T.Boolean()),
      /** CRC-32 of the payload; the shard refuses bytes that do not match (Integrity). Required (optional in the schema so that a missing token is reported first). */
      crc: T.Optional(Crc32),
    }, { additionalProperties: false }),
    reply: T.Object({ path: Path, version: T.Integer({ minimum: 1 }), size: Bytes }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.AlreadyExists, E.TooLarge, E.CapacityExceeded, E.Integrity],
    payload: PayloadDirection.Request,
  }),
  objectGet: defineOperation({
    name: "object.get",
    summary: "Reads an object: an inline object's bytes (or a range of them) come back as the payload; otherwise its extents.",
    request: T.Object({
      ...JobAuth, path: Path,
      offset: T.Optional(Bytes),
      length: T.Optional(Bytes),
    }, { additionalProperties: false }),
    reply: T.Object({
      path: Path, size: Bytes, version: T.Integer({ minimum: 1 }),
      inline: T.Boolean(),
      extents: T.Array(ExtentRefSchema),
      /** Inline objects: the committed CRC-32 of the whole object. */
      crc: T.Optional(Crc32),
      /** Inline objects: CRC-32 of the object's bytes before the returned range (0 if none), to check a range against `crc`. */
      prefixCrc: T.Optional(Crc32),
      /** Inline objects: CRC-32 of the object's bytes after the returned range (0 if none). */
      suffixCrc: T.Optional(Crc32),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
    payload: PayloadDirection.Reply,
  }),
  objectCreate: defineOperation({
    name: "object.create",
    summary: "Starts a put: lays out extents on storage nodes; the object is visible only after commit. Without `size`, a streamed put: extents come from object.extend.",
    request: T.Object({
      ...JobAuth, path: Path, size: T.Optional(Bytes), createOnly: T.Optional(T.Boolean()),
      /** Also reserve this many writes of the same `size` ahead (a declared size only). */
      ahead: T.Optional(Ahead),
    }, { additionalProperties: false }),
    reply: ObjectWriteAhead,
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.AlreadyExists, E.CapacityExceeded, E.Busy],
  }),
  objectExtend: defineOperation({
    name: "object.extend",
    summary: "Adds extents of the given lengths to a streamed put, in order.",
    request: T.Object({
      ...JobAuth, writeId: Id,
      lengths: T.Array(T.Integer({ minimum: 1 }), { minItems: 1, maxItems: 64 }),
    }, { additionalProperties: false }),
    reply: T.Object({ extents: T.Array(ExtentRefSchema) }),
    errors: [E.Unauthorized, E.UnknownJob, E.NotFound, E.InvalidArgument, E.CapacityExceeded, E.TooLarge],
  }),
  objectCommit: defineOperation({
    name: "object.commit",
    summary: "Makes a written object visible, atomically replacing any earlier version. Every extent needs a node's receipt (here or from object.written); otherwise the write stays pending.",
    request: T.Object({
      ...JobAuth, writeId: Id,
      /** Receipts not yet handed in with object.written (all of them, for a put of up to 1024 extents). */
      receipts: T.Optional(Receipts),
      /** The object's path, for a write reserved ahead (it has none yet); for any other write, absent or the same as at create. */
      path: T.Optional(Path),
      /** For a write reserved ahead: refuse if the object exists. */
      createOnly: T.Optional(T.Boolean()),
      /** Reserve this many writes of `size` ahead, returned with the reply (none if the cluster has no room: the commit still stands). */
      ahead: T.Optional(Ahead),
      size: T.Optional(Bytes),
    }, { additionalProperties: false }),
    reply: T.Object({ path: Path, version: T.Integer({ minimum: 1 }), size: Bytes, ahead: T.Optional(T.Array(ObjectWrite, { maxItems: writesAheadMax })) }),
    errors: [E.Unauthorized, E.UnknownJob, E.NotFound, E.AlreadyExists, E.InvalidArgument],
  }),
  objectWritten: defineOperation({
    name: "object.written",
    summary: "Hands the shard a batch of receipts for extents of a pending put (puts of more extents than one commit carries).",
    request: T.Object({ ...JobAuth, writeId: Id, receipts: Receipts }, { additionalProperties: false }),
    /** `written`: extents of the put whose receipts the shard now holds. */
    reply: T.Object({ written: T.Integer({ minimum: 0 }) }),
    errors: [E.Unauthorized, E.UnknownJob, E.NotFound, E.InvalidArgument],
  }),
  objectAbort: defineOperation({
    name: "object.abort",
    summary: "Abandons a put; its extents are freed.",
    request: T.Object({ ...JobAuth, writeId: Id }, { additionalProperties: false }),
    reply: Empty,
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  objectLookup: defineOperation({
    name: "object.lookup",
    summary: "Returns an object's extents, for a get.",
    request: T.Object({ ...JobAuth, path: Path }, { additionalProperties: false }),
    reply: T.Object({ path: Path, size: Bytes, version: T.Integer({ minimum: 1 }), extents: T.Array(ExtentRefSchema) }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
  }),
  stat: defineOperation({
    name: "object.stat",
    summary: "Describes an object or a directory.",
    request: T.Object({ ...JobAuth, path: Path }, { additionalProperties: false }),
    reply: T.Object({
      path: Path,
      type: T.Union([T.Literal("object"), T.Literal("directory")]),
      size: Bytes,
      version: T.Integer({ minimum: 0 }),
      modifiedAtMs: Millis,
      children: T.Integer({ minimum: 0 }),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
  }),
  delete: defineOperation({
    name: "object.delete",
    summary: "Deletes an object, or a directory (recursively with `recursive`), freeing its bytes.",
    request: T.Object({ ...JobAuth, path: Path, recursive: T.Optional(T.Boolean()) }, { additionalProperties: false }),
    reply: T.Object({ objects: T.Integer({ minimum: 0 }), bytes: Bytes }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound, E.NotEmpty],
  }),
  mkdir: defineOperation({
    name: "dir.make",
    summary: "Creates a directory and its missing parents.",
    request: T.Object({ ...JobAuth, path: Path }, { additionalProperties: false }),
    reply: Empty,
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.AlreadyExists],
  }),
  list: defineOperation({
    name: "dir.list",
    summary: "Lists a directory's entries in name order, a page at a time.",
    request: T.Object({
      ...JobAuth, path: Path,
      after: T.Optional(T.String({ maxLength: WireLimits.pathSegmentBytesMax })),
      limit: T.Optional(T.Integer({ minimum: 1, maximum: WireLimits.listLimitMax })),
    }, { additionalProperties: false }),
    reply: T.Object({
      entries: T.Array(T.Object({ name: T.String(), type: T.Union([T.Literal("object"), T.Literal("directory")]), size: Bytes })),
      more: T.Boolean(),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
  }),
  count: defineOperation({
    name: "dir.count",
    summary: "Counts a directory's objects and subdirectories (all levels with `recursive`).",
    request: T.Object({ ...JobAuth, path: Path, recursive: T.Optional(T.Boolean()) }, { additionalProperties: false }),
    reply: T.Object({ objects: T.Integer({ minimum: 0 }), directories: T.Integer({ minimum: 0 }), bytes: Bytes }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
  }),
} as const;

// ---------------------------------------------------------------- storage node

export const NodeStatsSchema = T.Object({
  nodeId: Id,
  tier: TierSchema,
  capacityBytes: Bytes,
  usedBytes: Bytes,
  extents: T.Integer({ minimum: 0 }),
  jobs: T.Integer({ minimum: 0 }),
  /** NVMe: jobs that are latency-critical tenants (with a reservation) on the device. */
  latencyCriticalJobs: T.Optional(T.Integer({ minimum: 0 })),
});

export const NodeOps = {
  extentWrite: defineOperation({
    name: "extent.write",
    summary: "Stores one extent's bytes (the payload) within a shard's grant; returns the node's receipt. Extents are written once and never reused.",
    request: T.Object({
      ...JobAuth, extentId: Id,
      /** The grant from the write layout: this node, this extent id, exactly the payload's length. */
      grant: T.Optional(Grant),
      /** CRC-32 of the payload; the node stores nothing if its own differs (Integrity). Required (optional in the schema so that a missing token or grant is reported first). */
      crc: T.Optional(Crc32),
    }, { additionalProperties: false }),
    reply: T.Object({
      length: Bytes,
      /** CRC-32 of the bytes stored. */
      crc: Crc32,
      /** For object.commit: the node's signed statement that it stored `length` bytes with `crc`. */
      receipt: Receipt,
    }),
    errors: [E.Unauthorized, E.InvalidArgument, E.AlreadyExists, E.CapacityExceeded, E.TooLarge, E.Integrity, E.UnknownJob],
    payload: PayloadDirection.Request,
  }),
  extentRead: defineOperation({
    name: "extent.read",
    summary: "Returns an extent's bytes, or a range of them, as the payload.",
    request: T.Object({
      ...JobAuth, extentId: Id,
      offset: T.Optional(Bytes),
      length: T.Optional(Bytes),
    }, { additionalProperties: false }),
    reply: T.Object({
      length: Bytes,
      /** CRC-32 of the extent's bytes before the returned range (0 if none): a reader checks the range against the committed crc with crc32Combine. */
      prefixCrc: Crc32,
      /** CRC-32 of the extent's bytes after the returned range (0 if none). */
      suffixCrc: Crc32,
    }),
    errors: [E.Unauthorized, E.InvalidArgument, E.NotFound],
    payload: PayloadDirection.Reply,
  }),
  extentFree: defineOperation({
    name: "extent.free",
    summary: "Shard → node: frees extents of a job.",
    request: T.Object({
      jobId: Id,
      extentIds: T.Array(Id, { maxItems: WireLimits.extentIdsPerFreeMax }),
    }, { additionalProperties: false }),
    reply: T.Object({ freedBytes: Bytes }),
    errors: [E.Unauthorized],
  }),
  jobDrop: defineOperation({
    name: "job.drop",
    summary: "Controller → node: frees every extent of a job.",
    request: T.Object({ jobId: Id }, { additionalProperties: false }),
    reply: T.Object({ freedBytes: Bytes }),
    errors: [E.Unauthorized],
  }),
  jobQos: defineOperation({
    name: "job.qos",
    summary: "Controller → node: a job becomes a latency-critical tenant with this SLO (NVMe; a no-op on DRAM). p95Us 0: the device model's limit.",
    request: T.Object({
      jobId: Id,
      slo: T.Object({ iops: T.Number({ exclusiveMinimum: 0 }), readRatio: T.Number({ minimum: 0, maximum: 1 }), p95Us: T.Number({ minimum: 0 }) }),
    }, { additionalProperties: false }),
    reply: T.Object({ reserved: T.Boolean() }),
    errors: [E.Unauthorized, E.CapacityExceeded],
  }),
  retire: defineOperation({
    name: "node.retire",
    summary: "Controller → node: the node was removed; it stops serving and exits.",
    request: Empty,
    reply: Empty,
    errors: [E.Unauthorized],
  }),
  stats: defineOperation({
    name: "node.stats",
    summary: "The node's capacity and use, now.",
    request: Empty,
    reply: NodeStatsSchema,
    errors: [],
  }),
} as const;

// ---------------------------------------------------------------- heartbeats (published, not requested)

/** Jobs a node names per heartbeat (it names them all over successive heartbeats). */
export const heartbeatJobIdsMax = 256;

export const NodeHeartbeatSchema = T.Object({
  ...nodeReport,
  /** The node's transport key (the direct transport's handshake proves it). */
  key: TransportKey,
  /**
   * Some of the jobs the node holds bytes for, a window that moves on each
   * heartbeat: the controller drops any that has ended (a drop the node
   * missed while cut off, or sent by a controller that restarted before it
   * was confirmed).
   */
  jobIds: T.Optional(T.Array(Id, { maxItems: heartbeatJobIdsMax })),
  sentAtMs: Millis,
});
export type NodeHeartbeat = Static<typeof NodeHeartbeatSchema>;

export const ShardHeartbeatSchema = T.Object({
  shardId: Id,
  /** host:port of the shard's direct transport. */
  addr: T.String({ maxLength: 256 }),
  /** The shard's transport key. */
  key: TransportKey,
  jobs: T.Integer({ minimum: 0 }),
  objects: T.Integer({ minimum: 0 }),
  sentAtMs: Millis,
});
export type ShardHeartbeat = Static<typeof ShardHeartbeatSchema>;

/** Per-job usage a shard publishes every interval (in chunks). */
export const ShardUsageSchema = T.Object({
  shardId: Id,
  jobs: T.Array(T.Object({ jobId: Id, bytes: Bytes, requests: T.Integer({ minimum: 0 }) }), { maxItems: 1000 }),
  sentAtMs: Millis,
});
export type ShardUsage = Static<typeof ShardUsageSchema>;

export const AllOperations = [
  ...Object.values(ControllerOps),
  ...Object.values(ShardOps),
  ...Object.values(NodeOps),
] as const;
