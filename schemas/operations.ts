import { Type as T, type Static, type TSchema } from "@sinclair/typebox";
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

/**
 * `schema` as the type of one field, with that field's description (a copy:
 * the shared schema is unchanged). Every field of every operation has one;
 * the JSON Schema export carries them to clients in other languages.
 *
 * @example
 *   T.Object({ path: field(Path, "The object's path in the job's namespace.") })
 */
export function field<S extends TSchema>(schema: S, description: string): S {
  return { ...schema, description };
}

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
export const WriteReceiptSchema = T.Object({
  extentId: field(Id, "The extent written (as in the write layout)."),
  crc: field(Crc32, "CRC-32 of the extent's bytes, as the node's extent.write reply gave it."),
  receipt: field(Receipt, "The node's receipt from its extent.write reply, unchanged."),
}, { additionalProperties: false });
export type WriteReceipt = Static<typeof WriteReceiptSchema>;
const Receipts = T.Array(WriteReceiptSchema, { maxItems: WireLimits.receiptsPerCallMax });

export const Tier = { Dram: "dram", Nvme: "nvme", Disk: "disk" } as const;
export type Tier = (typeof Tier)[keyof typeof Tier];
const TierSchema = T.Union([T.Literal("dram"), T.Literal("nvme"), T.Literal("disk")]);

export const JobHintsSchema = T.Object({
  lambdas: field(T.Optional(T.Integer({ minimum: 0, maximum: 1_000_000 })), "Lambdas of the job running at once, at most: sizes its throughput demand when throughputBps is absent."),
  capacityBytes: field(T.Optional(Bytes), "Bytes the job expects to hold at its peak."),
  throughputBps: field(T.Optional(T.Integer({ minimum: 0 })), "Peak throughput the job expects, in bytes per second, all its lambdas together."),
  latencySensitive: field(T.Optional(T.Boolean()), "The job wants low latency: DRAM, or a latency-critical reservation on NVMe."),
  /** Share of the job's I/O that is reads (0..1): what a latency-critical reservation on NVMe is sized for (default 0.5). */
  readRatio: field(T.Optional(T.Number({ minimum: 0, maximum: 1 })), "Share of the job's I/O that is reads (0..1), for sizing a latency-critical reservation on NVMe (default 0.5)."),
}, { additionalProperties: false });
export type JobHints = Static<typeof JobHintsSchema>;

export const WeightSchema = T.Object({
  nodeId: field(Id, "A storage node."),
  weight: field(T.Number({ minimum: 0, maximum: 1 }), "Share of the job's new extents placed on that node; a job's weights sum to 1 (to six decimals)."),
});
export type Weight = Static<typeof WeightSchema>;

/** An Ed25519 public key, raw 32 bytes in base64url: what a direct-transport server proves it holds. */
const TransportKey = T.String({ maxLength: 64 });

export const ExtentRefSchema = T.Object({
  nodeId: field(Id, "The storage node holding the extent; over NATS its operations are on pocket.node.<nodeId>.job.<jobId>.<operation>."),
  /** host:port of the node's direct transport, as last heard. */
  addr: field(T.String({ maxLength: 256 }), "host:port of the node's direct transport, as last heard (empty when not known)."),
  /** The node's transport key, from its own heartbeat: a client talks only to a server that proves it holds it. */
  key: field(TransportKey, "The node's Ed25519 transport key (raw 32 bytes, base64url): the direct transport's hello must verify with it."),
  extentId: field(Id, "The extent's id on that node; never reused for other bytes."),
  length: field(Bytes, "The extent's length in bytes; an object's extents, in order, hold its bytes end to end."),
  /** In read layouts: the committed CRC-32 of the whole extent, which every read of it is checked against. */
  crc: field(T.Optional(Crc32), "In read layouts: the committed CRC-32 of the whole extent; every read of it (or of a range, with the crcs around it) is checked against it."),
  /** In write layouts: the grant the node requires to store exactly `length` bytes under `extentId`. */
  grant: field(T.Optional(Grant), "In write layouts: the grant to pass to extent.write, allowing exactly `length` bytes under `extentId` on this node."),
});
export type ExtentRef = Static<typeof ExtentRefSchema>;

/** What a storage node reports of itself every heartbeat. */
const nodeReport = {
  nodeId: field(Id, "The storage node."),
  tier: field(TierSchema, "The node's storage tier."),
  /** host:port of the node's direct transport. */
  addr: field(T.String({ maxLength: 256 }), "host:port of the node's direct transport."),
  capacityBytes: field(Bytes, "Bytes the node may hold."),
  usedBytes: field(Bytes, "Bytes the node holds now."),
  extents: field(T.Integer({ minimum: 0 }), "Extents the node holds now."),
  /** CPU time used per wall-clock time over the last interval (1 = one core busy). */
  cpu: field(T.Number({ minimum: 0 }), "CPU time used per wall-clock time over the last interval (1 = one core busy)."),
  bytesInPerSec: field(T.Number({ minimum: 0 }), "Bytes received on the direct transport per second over the last interval."),
  bytesOutPerSec: field(T.Number({ minimum: 0 }), "Bytes sent on the direct transport per second over the last interval."),
};

const NodeStateSchema = T.Union([T.Literal("provisioning"), T.Literal("active"), T.Literal("draining"), T.Literal("failed"), T.Literal("removed")]);
const JobStateSchema = T.Union([T.Literal("registered"), T.Literal("active"), T.Literal("ended"), T.Literal("expired")]);

/** Utilisation as fractions of what a node (or tier) offers, averaged over the controller's window. */
export const UtilisationSchema = T.Object({
  cpu: field(T.Number(), "CPU used as a fraction of the node's cores."),
  network: field(T.Number(), "Network used as a fraction of the node type's throughput."),
  capacity: field(T.Number(), "Bytes held as a fraction of the node's capacity."),
});

export const NodeInfoSchema = T.Object({
  ...nodeReport,
  state: field(NodeStateSchema, "Where the node is in its lifecycle: provisioning → active → draining → removed, or failed on missed heartbeats."),
  /** Launched by the controller through its orchestrator. */
  launched: field(T.Boolean(), "Launched by the controller through its orchestrator (else started by an operator)."),
  lastSeenMs: field(Millis, "When the controller last heard the node's heartbeat (ms since the epoch)."),
  utilisation: field(UtilisationSchema, "The node's use, averaged over the controller's window."),
  reservedBytes: field(T.Number({ minimum: 0 }), "Capacity reserved on the node for jobs' demands, in bytes."),
  reservedBps: field(T.Number({ minimum: 0 }), "Throughput reserved on the node for jobs' demands, in bytes per second."),
  /** The node's weight in each live job's weight map. */
  jobWeights: field(T.Array(T.Object({
    jobId: field(Id, "A live job."),
    weight: field(T.Number({ minimum: 0, maximum: 1 }), "The node's weight in that job's weight map."),
  })), "The node's weight in each live job's weight map."),
});
export type NodeInfo = Static<typeof NodeInfoSchema>;

/**
 * One tier's utilisation as the autoscaler judges it: serving (active) nodes,
 * their mean CPU, network and capacity use, and the share of the tier's
 * throughput and capacity that live jobs reserved, all as fractions.
 */
export const TierMeasurementsSchema = T.Object({
  nodes: field(T.Integer({ minimum: 0 }), "Active nodes of the tier the measurements are over."),
  cpu: field(T.Number(), "Mean CPU use of the tier's nodes, as a fraction of their cores."),
  network: field(T.Number(), "Bytes in and out per second over the tier's throughput, as a fraction."),
  capacity: field(T.Number(), "Bytes stored over the tier's capacity, as a fraction."),
  reservedThroughput: field(T.Number(), "Throughput the registered jobs' hints reserve over the tier's, as a fraction."),
  reservedCapacity: field(T.Number(), "Capacity the registered jobs' hints reserve over the tier's, as a fraction."),
});

const Empty = T.Object({}, { additionalProperties: false });
/** Optional in the schema so that a request without one is `Unauthorized`, not `InvalidArgument`. */
const JobAuth = {
  token: field(T.Optional(Token), "The job's capability token (job.register's `token`). Required; on the direct transport it may be left out after transport.auth (the session's token is used)."),
};
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
      name: field(T.String({ minLength: 1, maxLength: WireLimits.nameBytesMax }), "A name for the job, for people (need not be unique)."),
      hints: field(T.Optional(JobHintsSchema), "What the job expects to need; the controller picks its tier and nodes from them."),
      /** How long the job lives without a renewal (the controller's default otherwise). */
      leaseMs: field(T.Optional(T.Integer({ minimum: 1_000, maximum: 7 * 24 * 3600_000 })), "How long the job lives without a renewal, in ms (the controller's default when absent)."),
    }, { additionalProperties: false }),
    reply: T.Object({
      jobId: field(Id, "The job's id: its subjects, its namespace and its inbox prefix (_INBOX.job.<jobId>) are named by it."),
      token: field(Token, "The job's capability token, for every request its lambdas make; it names the job and its shard (see protocol.lambda)."),
      shardId: field(Id, "The metadata shard that holds the job's namespace."),
      expiresAtMs: field(Millis, "When the token expires (ms since the epoch)."),
      /** The job is reclaimed unless renewed (job.renew) before this. */
      leaseExpiresAtMs: field(Millis, "The job is reclaimed, and everything it stored freed, unless renewed (job.renew) before this (ms since the epoch)."),
      leaseMs: field(Millis, "The lease's length: renew well within it (the SDK renews every third of it)."),
      tier: field(TierSchema, "The storage tier the job's extents go to."),
      weights: field(T.Array(WeightSchema), "The job's weight map: how its new extents spread over nodes."),
      /**
       * The NATS credential (creds file text) the job's lambdas connect with:
       * it may send only this job's operations and receive only its own replies.
       * Absent when the cluster's bus has no authentication.
       */
      credentials: field(T.Optional(T.String({ maxLength: 16_384 })), "The NATS credential (creds file text: user JWT and nkey seed) the job's lambdas connect with; it may send only this job's operations and receive only under _INBOX.job.<jobId>. Absent when the bus has no authentication."),
    }),
    errors: [E.InvalidArgument, E.CapacityExceeded, E.NodeUnavailable],
  }),
  jobRenew: defineOperation({
    name: "job.renew",
    summary: "Renews a job's lease (the SDK does this while the driver is connected).",
    request: T.Object({ ...JobAuth }, { additionalProperties: false }),
    reply: T.Object({ jobId: field(Id, "The job renewed."), leaseExpiresAtMs: field(Millis, "The lease's new end (ms since the epoch).") }),
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  jobUsage: defineOperation({
    name: "job.usage",
    summary: "What a job used (live or ended): byte-seconds per tier, reserved throughput, requests, and its cost.",
    request: T.Object({ jobId: field(Id, "The job, live or ended.") }, { additionalProperties: false }),
    reply: T.Object({
      jobId: field(Id, "The job."),
      name: field(T.String(), "The name it registered with."),
      tier: field(TierSchema, "Its storage tier."),
      state: field(JobStateSchema, "Where it is in its lifecycle: registered → active → ended, or expired when its lease ran out."),
      registeredAtMs: field(Millis, "When it registered (ms since the epoch)."),
      endedAtMs: field(T.Union([Millis, T.Null()]), "When it ended or expired (ms since the epoch); null while live."),
      demand: field(T.Object({
        throughputBps: field(T.Number(), "Throughput the controller reserved for it, in bytes per second."),
        capacityBytes: field(T.Number(), "Capacity the controller reserved for it, in bytes."),
        bound: field(T.String(), "Which of the two decided its node count: \"throughput\" or \"capacity\"."),
        nodes: field(T.Number(), "Nodes of its tier the demand amounts to (fractional)."),
      }), "What the controller reserved for the job from its hints."),
      bytes: field(T.Number(), "Bytes it holds now (0 once ended)."),
      byteSeconds: field(T.Number(), "Bytes held, integrated over time (byte-seconds)."),
      reservedBpsSeconds: field(T.Number(), "Reserved throughput integrated over time (bytes per second × seconds)."),
      reservedByteSeconds: field(T.Number(), "Reserved capacity integrated over time (byte-seconds)."),
      requests: field(T.Number(), "Requests its lambdas made of its shard."),
      /** Node-hours reserved (the binding dimension) and used (bytes stored), and their price at the tier's node-hour price. */
      reservedNodeHours: field(T.Number(), "Node-hours reserved, in the binding dimension (capacity or throughput)."),
      usedNodeHours: field(T.Number(), "Node-hours of bytes actually stored."),
      pricePerNodeHour: field(T.Number(), "The tier's price of one node-hour."),
      cost: field(T.Number(), "reservedNodeHours × pricePerNodeHour."),
    }),
    errors: [E.UnknownJob],
  }),
  nodeRetire: defineOperation({
    name: "node.retire",
    summary: "Drains a storage node: no new data, removed once it holds none (or its extents are moved at the drain deadline).",
    request: T.Object({ nodeId: field(Id, "The node to drain.") }, { additionalProperties: false }),
    reply: T.Object({ nodeId: field(Id, "The node."), state: field(NodeStateSchema, "Its state now (draining, or removed if it held nothing).") }),
    errors: [E.NotFound, E.InvalidArgument],
  }),
  jobDeregister: defineOperation({
    name: "job.deregister",
    summary: "Ends a job: its namespace is dropped and every byte it stored is freed.",
    request: T.Object({ ...JobAuth }, { additionalProperties: false }),
    reply: T.Object({ jobId: field(Id, "The job ended."), freedBytes: field(Bytes, "Bytes of the job's objects freed.") }),
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  jobList: defineOperation({
    name: "job.list",
    summary: "Lists registered jobs.",
    request: Empty,
    reply: T.Object({
      jobs: field(T.Array(T.Object({
        jobId: field(Id, "The job."),
        name: field(T.String(), "The name it registered with."),
        shardId: field(Id, "The shard holding its namespace."),
        registeredAtMs: field(Millis, "When it registered (ms since the epoch)."),
        hints: field(JobHintsSchema, "The hints it registered with."),
        weights: field(T.Array(WeightSchema), "Its weight map now."),
        state: field(JobStateSchema, "Where it is in its lifecycle."),
        tier: field(TierSchema, "Its storage tier."),
        leaseExpiresAtMs: field(Millis, "When its lease runs out unless renewed (ms since the epoch)."),
      })), "Every job the controller knows."),
    }),
    errors: [],
  }),
  nodeList: defineOperation({
    name: "node.list",
    summary: "Lists storage nodes with their state and last reported stats.",
    request: Empty,
    reply: T.Object({ nodes: field(T.Array(NodeInfoSchema), "Every storage node the controller knows.") }),
    errors: [],
  }),
  scalingStatus: defineOperation({
    name: "scaling.status",
    summary: "The autoscaling band and, per tier, the utilisation the controller judges against it and the tier's node bounds.",
    request: Empty,
    reply: T.Object({
      atMs: field(Millis, "When the controller measured (ms since the epoch)."),
      scaling: field(T.Boolean(), "Whether the controller adds and drains nodes on utilisation (false: it keeps only each tier's minimum)."),
      bandLow: field(T.Number(), "Lower edge of the target band, as a fraction: a tier below it for sustainMs shrinks."),
      bandHigh: field(T.Number(), "Upper edge of the target band, as a fraction: a tier above it for sustainMs grows."),
      windowMs: field(Millis, "Utilisation is averaged over this window."),
      sustainMs: field(Millis, "How long a tier must stay out of the band before the controller acts."),
      cooldownMs: field(Millis, "No other scaling decision in a tier for this long after one."),
      tiers: field(T.Array(T.Object({
        tier: field(TierSchema, "The tier."),
        minNodes: field(T.Integer({ minimum: 0 }), "Fewest nodes the controller keeps in it."),
        maxNodes: field(T.Integer({ minimum: 0 }), "Most nodes the controller runs in it."),
        measurements: field(TierMeasurementsSchema, "What the controller judges against the band."),
      })), "Each tier with nodes or bounds."),
    }),
    errors: [],
  }),
  shardList: defineOperation({
    name: "shard.list",
    summary: "Lists metadata shards.",
    request: Empty,
    reply: T.Object({
      shards: field(T.Array(T.Object({
        shardId: field(Id, "The shard."),
        state: field(T.String(), "\"active\", or \"failed\" on missed heartbeats."),
        jobs: field(T.Integer(), "Jobs whose namespaces it holds, as last reported."),
        objects: field(T.Integer(), "Objects it holds over all its jobs, as last reported."),
        lastSeenMs: field(Millis, "When the controller last heard its heartbeat (ms since the epoch)."),
      })), "Every metadata shard the controller knows."),
    }),
    errors: [],
  }),
} as const;

// ---------------------------------------------------------------- metadata shard

const WriteId = field(Id, "The pending write, for object.extend, object.written, object.commit and object.abort.");
const WriteExtents = field(T.Array(ExtentRefSchema), "The write layout: the object's extents in order, each with the grant to write it under. Byte i of the object goes to the extent whose range covers it.");
const ObjectWrite = T.Object({ writeId: WriteId, extents: WriteExtents });
/** Writes reserved ahead at once, at most. */
export const writesAheadMax = 4;
/**
 * Writes of the same size reserved ahead (laid out, with grants, but bound to
 * no path yet): the next puts of that size skip object.create and name their
 * path at commit. Unused ones expire like any pending write.
 */
const Ahead = T.Integer({ minimum: 0, maximum: writesAheadMax });
const AheadWrites = field(T.Optional(T.Array(ObjectWrite, { maxItems: writesAheadMax })), "Writes reserved ahead for the next puts of the same size, bound to no path: commit one with its `path`. Unused ones expire like any pending write.");
const ObjectWriteAhead = T.Object({ writeId: WriteId, extents: WriteExtents, ahead: AheadWrites });
/** The path field of a request. */
const PathField = (what: string): typeof Path => field(Path, `${what} Relative to the job; see protocol.paths (\"/a/b\" and \"a/b\" are the same).`);
const Version = field(T.Integer({ minimum: 1 }), "The object's version: 1 for its first put, one more for each put that replaced it.");

export const ShardOps = {
  attachJob: defineOperation({
    name: "shard.attach",
    summary: "Controller → shard: the shard now owns this job's namespace.",
    request: T.Object({
      jobId: field(Id, "The job."),
      name: field(T.String(), "The job's name."),
      weights: field(T.Array(WeightSchema), "The job's weight map."),
    }, { additionalProperties: false }),
    reply: Empty,
    errors: [E.Unauthorized, E.InvalidArgument],
  }),
  detachJob: defineOperation({
    name: "shard.detach",
    summary: "Controller → shard: drops a job's namespace and frees its extents.",
    request: T.Object({ jobId: field(Id, "The job that ended.") }, { additionalProperties: false }),
    reply: T.Object({ objects: field(T.Integer({ minimum: 0 }), "Objects the job held."), bytes: field(Bytes, "Bytes the job held.") }),
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  setWeights: defineOperation({
    name: "shard.weights",
    summary: "Controller → shard: a job's new weight map.",
    request: T.Object({ jobId: field(Id, "The job."), weights: field(T.Array(WeightSchema), "Its new weight map.") }, { additionalProperties: false }),
    reply: Empty,
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  migrate: defineOperation({
    name: "shard.migrate",
    summary: "Controller → shard: moves every extent this shard's jobs have on a node to their other nodes.",
    request: T.Object({ nodeId: field(Id, "The node being drained.") }, { additionalProperties: false }),
    reply: T.Object({
      extents: field(T.Integer({ minimum: 0 }), "Extents moved."),
      bytes: field(Bytes, "Bytes moved."),
      failed: field(T.Integer({ minimum: 0 }), "Extents that could not be moved."),
      directBytes: field(T.Optional(Bytes), "Of the bytes moved, those the draining node sent straight to another node (extent.copy); the rest went through the shard."),
    }),
    errors: [E.Unauthorized],
  }),
  info: defineOperation({
    name: "shard.info",
    summary: "Where to reach this shard on the direct transport, and its limits.",
    request: Empty,
    reply: T.Object({
      shardId: field(Id, "The shard."),
      addr: field(T.String({ maxLength: 256 }), "host:port of the shard's direct transport (empty when it has none: use NATS)."),
      key: field(TransportKey, "The shard's Ed25519 transport key (raw 32 bytes, base64url): the direct transport's hello must verify with it."),
      inlineBytesMax: field(Bytes, "Objects of at most this many bytes are put with object.put (inline in the shard); larger ones with object.create."),
      extentBytesMax: field(Bytes, "The largest extent; object.create lays a declared size out in extents of this size (the last one shorter)."),
    }),
    errors: [],
  }),
  objectPut: defineOperation({
    name: "object.put",
    summary: "Stores a small object inline in the shard (the payload), visible at once: a put in one round trip.",
    request: T.Object({
      ...JobAuth,
      path: PathField("The object's path."),
      createOnly: field(T.Optional(T.Boolean()), "Refuse (AlreadyExists) if the object exists, instead of replacing it."),
      /** CRC-32 of the payload; the shard refuses bytes that do not match (Integrity). Required (optional in the schema so that a missing token is reported first). */
      crc: field(T.Optional(Crc32), "CRC-32 of the payload; the shard stores nothing if its own differs (Integrity). Required (optional in the schema only so that a missing token is reported first)."),
    }, { additionalProperties: false }),
    reply: T.Object({
      path: field(Path, "The object's path, normalised (no leading or trailing \"/\")."),
      version: Version,
      size: field(Bytes, "The object's size in bytes."),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.AlreadyExists, E.TooLarge, E.CapacityExceeded, E.Integrity],
    payload: PayloadDirection.Request,
  }),
  objectGet: defineOperation({
    name: "object.get",
    summary: "Reads an object: an inline object's bytes (or a range of them) come back as the payload; otherwise its extents.",
    request: T.Object({
      ...JobAuth,
      path: PathField("The object's path."),
      offset: field(T.Optional(Bytes), "Inline objects: the first byte of the range to return (0 when absent; past the end gives no bytes)."),
      length: field(T.Optional(Bytes), "Inline objects: how many bytes to return from `offset` (to the end when absent; cut at the end)."),
    }, { additionalProperties: false }),
    reply: T.Object({
      path: field(Path, "The object's path, normalised."),
      size: field(Bytes, "The object's whole size in bytes."),
      version: Version,
      inline: field(T.Boolean(), "True: the payload holds the object's bytes (the range asked for). False: no payload; read `extents` from their nodes (see protocol.ranges)."),
      extents: field(T.Array(ExtentRefSchema), "Objects on nodes: the read layout, the object's extents in order, each with its committed crc. Empty for inline objects."),
      /** Inline objects: the committed CRC-32 of the whole object. */
      crc: field(T.Optional(Crc32), "Inline objects: the committed CRC-32 of the whole object."),
      /** Inline objects: CRC-32 of the object's bytes before the returned range (0 if none), to check a range against `crc`. */
      prefixCrc: field(T.Optional(Crc32), "Inline objects: CRC-32 of the object's bytes before the returned range (0 if none), to check the range against `crc` (see protocol.checksums)."),
      /** Inline objects: CRC-32 of the object's bytes after the returned range (0 if none). */
      suffixCrc: field(T.Optional(Crc32), "Inline objects: CRC-32 of the object's bytes after the returned range (0 if none)."),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
    payload: PayloadDirection.Reply,
  }),
  objectCreate: defineOperation({
    name: "object.create",
    summary: "Starts a put: lays out extents on storage nodes; the object is visible only after commit. Without `size`, a streamed put: extents come from object.extend.",
    request: T.Object({
      ...JobAuth,
      path: PathField("The object's path (checked now: not a directory, no object among its parents, absent with createOnly)."),
      size: field(T.Optional(Bytes), "The object's size: the layout is made at once, in extents of extentBytesMax. Absent: a streamed put, whose extents come from object.extend."),
      createOnly: field(T.Optional(T.Boolean()), "Refuse (AlreadyExists) if the object exists, now and again at commit."),
      /** Also reserve this many writes of the same `size` ahead (a declared size only). */
      ahead: field(T.Optional(Ahead), "Also reserve this many writes of the same `size` ahead (a declared size only; as many as there is room for)."),
    }, { additionalProperties: false }),
    reply: ObjectWriteAhead,
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.AlreadyExists, E.CapacityExceeded, E.Busy],
  }),
  objectExtend: defineOperation({
    name: "object.extend",
    summary: "Adds extents of the given lengths to a streamed put, in order.",
    request: T.Object({
      ...JobAuth,
      writeId: field(Id, "The streamed put (object.create without `size`)."),
      lengths: field(T.Array(T.Integer({ minimum: 1 }), { minItems: 1, maxItems: 64 }), "Lengths of the extents to add, in order, each at most extentBytesMax."),
    }, { additionalProperties: false }),
    reply: T.Object({ extents: field(T.Array(ExtentRefSchema), "The added extents, in the order asked, with their grants; they follow the write's earlier extents in the object.") }),
    errors: [E.Unauthorized, E.UnknownJob, E.NotFound, E.InvalidArgument, E.CapacityExceeded, E.TooLarge],
  }),
  objectCommit: defineOperation({
    name: "object.commit",
    summary: "Makes a written object visible, atomically replacing any earlier version. Every extent needs a node's receipt (here or from object.written); otherwise the write stays pending.",
    request: T.Object({
      ...JobAuth,
      writeId: field(Id, "The pending write."),
      /** Receipts not yet handed in with object.written (all of them, for a put of up to 1024 extents). */
      receipts: field(T.Optional(Receipts), "Receipts not yet handed in with object.written (all of them, for a put of up to 1024 extents)."),
      /** The object's path, for a write reserved ahead (it has none yet); for any other write, absent or the same as at create. */
      path: field(T.Optional(Path), "The object's path, for a write reserved ahead (it has none yet); for any other write, absent or the same as at create."),
      /** For a write reserved ahead: refuse if the object exists. */
      createOnly: field(T.Optional(T.Boolean()), "For a write reserved ahead: refuse (AlreadyExists) if the object exists."),
      /** Reserve this many writes of `size` ahead, returned with the reply (none if the cluster has no room: the commit still stands). */
      ahead: field(T.Optional(Ahead), "Reserve this many writes of `size` ahead, returned with the reply (none if there is no room: the commit still stands)."),
      size: field(T.Optional(Bytes), "The size of the writes to reserve ahead (with `ahead`)."),
    }, { additionalProperties: false }),
    reply: T.Object({
      path: field(Path, "The object's path, normalised."),
      version: Version,
      size: field(Bytes, "The object's size: the sum of its extents' lengths."),
      ahead: AheadWrites,
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.NotFound, E.AlreadyExists, E.InvalidArgument],
  }),
  objectWritten: defineOperation({
    name: "object.written",
    summary: "Hands the shard a batch of receipts for extents of a pending put (puts of more extents than one commit carries).",
    request: T.Object({
      ...JobAuth,
      writeId: field(Id, "The pending write."),
      receipts: field(Receipts, "Receipts of extents of the write, from the nodes' extent.write replies."),
    }, { additionalProperties: false }),
    /** `written`: extents of the put whose receipts the shard now holds. */
    reply: T.Object({ written: field(T.Integer({ minimum: 0 }), "Extents of the write whose receipts the shard now holds.") }),
    errors: [E.Unauthorized, E.UnknownJob, E.NotFound, E.InvalidArgument],
  }),
  objectAbort: defineOperation({
    name: "object.abort",
    summary: "Abandons a put; its extents are freed.",
    request: T.Object({ ...JobAuth, writeId: field(Id, "The pending write (unknown ones are ignored).") }, { additionalProperties: false }),
    reply: Empty,
    errors: [E.Unauthorized, E.UnknownJob],
  }),
  objectLookup: defineOperation({
    name: "object.lookup",
    summary: "Returns an object's extents, for a get.",
    request: T.Object({ ...JobAuth, path: PathField("The object's path.") }, { additionalProperties: false }),
    reply: T.Object({
      path: field(Path, "The object's path, normalised."),
      size: field(Bytes, "The object's size in bytes."),
      version: Version,
      extents: field(T.Array(ExtentRefSchema), "The read layout: the object's extents in order, each with its committed crc (empty for an inline object: read it with object.get)."),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
  }),
  stat: defineOperation({
    name: "object.stat",
    summary: "Describes an object or a directory.",
    request: T.Object({ ...JobAuth, path: PathField("The object's or directory's path (\"\" or \"/\": the job's root).") }, { additionalProperties: false }),
    reply: T.Object({
      path: field(Path, "The path, normalised."),
      type: field(T.Union([T.Literal("object"), T.Literal("directory")]), "What is there."),
      size: field(Bytes, "An object's size in bytes; 0 for a directory."),
      version: field(T.Integer({ minimum: 0 }), "An object's version; 0 for a directory."),
      modifiedAtMs: field(Millis, "When the object was put, or the directory's entries last changed (the shard's clock, ms since the epoch)."),
      children: field(T.Integer({ minimum: 0 }), "A directory's direct entries; 0 for an object."),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
  }),
  delete: defineOperation({
    name: "object.delete",
    summary: "Deletes an object, or a directory (recursively with `recursive`), freeing its bytes.",
    request: T.Object({
      ...JobAuth,
      path: PathField("The object or directory to delete (the root: everything)."),
      recursive: field(T.Optional(T.Boolean()), "Delete a directory with everything under it (without: NotEmpty unless it is empty)."),
    }, { additionalProperties: false }),
    reply: T.Object({ objects: field(T.Integer({ minimum: 0 }), "Objects deleted."), bytes: field(Bytes, "Bytes of the objects deleted (freed on their nodes soon after).") }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound, E.NotEmpty],
  }),
  mkdir: defineOperation({
    name: "dir.make",
    summary: "Creates a directory and its missing parents.",
    request: T.Object({ ...JobAuth, path: PathField("The directory to create.") }, { additionalProperties: false }),
    reply: Empty,
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.AlreadyExists],
  }),
  list: defineOperation({
    name: "dir.list",
    summary: "Lists a directory's entries in name order, a page at a time.",
    request: T.Object({
      ...JobAuth,
      path: PathField("The directory to list."),
      after: field(T.Optional(T.String({ maxLength: WireLimits.pathSegmentBytesMax })), "Start after this name (the last name of the previous page); from the first when absent."),
      limit: field(T.Optional(T.Integer({ minimum: 1, maximum: WireLimits.listLimitMax })), "Entries per page, at most (1000 when absent)."),
    }, { additionalProperties: false }),
    reply: T.Object({
      entries: field(T.Array(T.Object({
        name: field(T.String(), "The entry's name (one path segment)."),
        type: field(T.Union([T.Literal("object"), T.Literal("directory")]), "What it is."),
        size: field(Bytes, "An object's size in bytes; 0 for a directory."),
      })), "The directory's entries after `after`, in name order (JavaScript string order: by UTF-16 code unit)."),
      more: field(T.Boolean(), "More entries follow: ask again with `after` set to the last name."),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
  }),
  count: defineOperation({
    name: "dir.count",
    summary: "Counts a directory's objects and subdirectories (all levels with `recursive`).",
    request: T.Object({
      ...JobAuth,
      path: PathField("The directory to count."),
      recursive: field(T.Optional(T.Boolean()), "Count everything below it, not only its direct entries."),
    }, { additionalProperties: false }),
    reply: T.Object({
      objects: field(T.Integer({ minimum: 0 }), "Objects counted."),
      directories: field(T.Integer({ minimum: 0 }), "Directories counted (not the one asked about)."),
      bytes: field(Bytes, "Bytes of the objects counted."),
    }),
    errors: [E.Unauthorized, E.UnknownJob, E.InvalidArgument, E.NotFound],
  }),
} as const;

// ---------------------------------------------------------------- storage node

export const NodeStatsSchema = T.Object({
  nodeId: field(Id, "The node."),
  tier: field(TierSchema, "Its storage tier."),
  capacityBytes: field(Bytes, "Bytes it may hold."),
  usedBytes: field(Bytes, "Bytes it holds."),
  extents: field(T.Integer({ minimum: 0 }), "Extents it holds."),
  jobs: field(T.Integer({ minimum: 0 }), "Jobs it holds extents of."),
  /** NVMe: jobs that are latency-critical tenants (with a reservation) on the device. */
  latencyCriticalJobs: field(T.Optional(T.Integer({ minimum: 0 })), "NVMe: jobs that are latency-critical tenants (with a reservation) on the device."),
});

export const NodeOps = {
  extentWrite: defineOperation({
    name: "extent.write",
    summary: "Stores one extent's bytes (the payload) within a shard's grant; returns the node's receipt. Extents are written once and never reused.",
    request: T.Object({
      ...JobAuth,
      extentId: field(Id, "The extent, as in the write layout."),
      /** The grant from the write layout: this node, this extent id, exactly the payload's length. */
      grant: field(T.Optional(Grant), "The extent's grant from the write layout: this job, this node, this extent id, exactly the payload's length, until the write expires. Required."),
      /** CRC-32 of the payload; the node stores nothing if its own differs (Integrity). Required (optional in the schema so that a missing token or grant is reported first). */
      crc: field(T.Optional(Crc32), "CRC-32 of the payload; the node stores nothing if its own differs (Integrity). Required (optional in the schema only so that a missing token or grant is reported first)."),
    }, { additionalProperties: false }),
    reply: T.Object({
      length: field(Bytes, "Bytes stored: check it is the payload's length."),
      /** CRC-32 of the bytes stored. */
      crc: field(Crc32, "CRC-32 of the bytes stored: check it is the one sent."),
      /** For object.commit: the node's signed statement that it stored `length` bytes with `crc`. */
      receipt: field(Receipt, "The node's signed statement that it stored `length` bytes with `crc`: hand it to the shard (object.commit or object.written)."),
    }),
    errors: [E.Unauthorized, E.InvalidArgument, E.AlreadyExists, E.CapacityExceeded, E.TooLarge, E.Integrity, E.UnknownJob],
    payload: PayloadDirection.Request,
  }),
  extentRead: defineOperation({
    name: "extent.read",
    summary: "Returns an extent's bytes, or a range of them, as the payload.",
    request: T.Object({
      ...JobAuth,
      extentId: field(Id, "The extent, as in the read layout."),
      offset: field(T.Optional(Bytes), "First byte of the range, from the extent's start (0 when absent). A range past the extent's end is InvalidArgument."),
      length: field(T.Optional(Bytes), "Bytes to read from `offset` (to the extent's end when absent). Leave both out to read the whole extent."),
    }, { additionalProperties: false }),
    reply: T.Object({
      length: field(Bytes, "Bytes returned in the payload."),
      /** CRC-32 of the extent's bytes before the returned range (0 if none): a reader checks the range against the committed crc with crc32Combine. */
      prefixCrc: field(Crc32, "CRC-32 of the extent's bytes before the returned range (0 if none): crc32Combine(crc32Combine(prefixCrc, crc(range), length), suffixCrc, bytes after) must equal the committed crc."),
      /** CRC-32 of the extent's bytes after the returned range (0 if none). */
      suffixCrc: field(Crc32, "CRC-32 of the extent's bytes after the returned range (0 if none)."),
    }),
    errors: [E.Unauthorized, E.InvalidArgument, E.NotFound],
    payload: PayloadDirection.Reply,
  }),
  extentFree: defineOperation({
    name: "extent.free",
    summary: "Shard → node: frees extents of a job.",
    request: T.Object({
      jobId: field(Id, "The job whose extents to free."),
      extentIds: field(T.Array(Id, { maxItems: WireLimits.extentIdsPerFreeMax }), "The extents to free (unknown ones are skipped)."),
    }, { additionalProperties: false }),
    reply: T.Object({ freedBytes: field(Bytes, "Bytes freed.") }),
    errors: [E.Unauthorized],
  }),
  extentCopy: defineOperation({
    name: "extent.copy",
    summary: "Shard → node (migration): sends one of a job's extents straight to another node's direct transport, after checking it against its committed crc; returns that node's extent.write reply.",
    request: T.Object({
      jobId: field(Id, "The job the extent belongs to."),
      extentId: field(Id, "The extent on this node."),
      crc: field(Crc32, "Its committed CRC-32: bytes that do not match are not sent (Integrity)."),
      token: field(Token, "A job token for the destination's direct transport, issued by the job's shard."),
      to: field(T.Object({
        nodeId: field(Id, "The destination node."),
        addr: field(T.String({ minLength: 1, maxLength: 256 }), "host:port of its direct transport."),
        key: field(TransportKey, "Its transport key: the copy goes only to a server that proves it holds it."),
        extentId: field(Id, "The copy's extent id there."),
        grant: field(Grant, "The shard's grant for the copy: this job, that node, that extent id, the extent's length."),
      }, { additionalProperties: false }), "Where the copy goes."),
    }, { additionalProperties: false }),
    reply: T.Object({
      length: field(Bytes, "Bytes the destination stored."),
      crc: field(Crc32, "CRC-32 of the bytes it stored."),
      receipt: field(Receipt, "Its receipt for them."),
    }),
    errors: [E.Unauthorized, E.NotFound, E.Integrity, E.NodeUnavailable, E.Timeout, E.InvalidArgument, E.AlreadyExists, E.CapacityExceeded, E.TooLarge, E.UnknownJob],
  }),
  jobDrop: defineOperation({
    name: "job.drop",
    summary: "Controller → node: frees every extent of a job.",
    request: T.Object({ jobId: field(Id, "The job that ended.") }, { additionalProperties: false }),
    reply: T.Object({ freedBytes: field(Bytes, "Bytes freed.") }),
    errors: [E.Unauthorized],
  }),
  jobQos: defineOperation({
    name: "job.qos",
    summary: "Controller → node: a job becomes a latency-critical tenant with this SLO (NVMe; a no-op on DRAM). p95Us 0: the device model's limit.",
    request: T.Object({
      jobId: field(Id, "The job."),
      slo: field(T.Object({
        iops: field(T.Number({ exclusiveMinimum: 0 }), "4 KiB operations per second to reserve."),
        readRatio: field(T.Number({ minimum: 0, maximum: 1 }), "Share of them that are reads."),
        p95Us: field(T.Number({ minimum: 0 }), "95th-percentile latency to hold, in µs (0: the device model's limit)."),
      }), "The job's service-level objective."),
    }, { additionalProperties: false }),
    reply: T.Object({ reserved: field(T.Boolean(), "The reservation was made (false on a DRAM node).") }),
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
  key: field(TransportKey, "The node's Ed25519 transport key (the direct transport's hello proves it)."),
  /**
   * Some of the jobs the node holds bytes for, a window that moves on each
   * heartbeat: the controller drops any that has ended (a drop the node
   * missed while cut off, or sent by a controller that restarted before it
   * was confirmed).
   */
  jobIds: field(T.Optional(T.Array(Id, { maxItems: heartbeatJobIdsMax })), "Some of the jobs the node holds bytes for, a window that moves each heartbeat; the controller drops any that has ended."),
  sentAtMs: field(Millis, "When the node sent it (its clock, ms since the epoch)."),
});
export type NodeHeartbeat = Static<typeof NodeHeartbeatSchema>;

export const ShardHeartbeatSchema = T.Object({
  shardId: field(Id, "The shard."),
  /** host:port of the shard's direct transport. */
  addr: field(T.String({ maxLength: 256 }), "host:port of the shard's direct transport."),
  /** The shard's transport key. */
  key: field(TransportKey, "The shard's Ed25519 transport key."),
  jobs: field(T.Integer({ minimum: 0 }), "Jobs whose namespaces it holds."),
  objects: field(T.Integer({ minimum: 0 }), "Objects it holds over all its jobs."),
  sentAtMs: field(Millis, "When the shard sent it (its clock, ms since the epoch)."),
});
export type ShardHeartbeat = Static<typeof ShardHeartbeatSchema>;

/** Per-job usage a shard publishes every interval (in chunks). */
export const ShardUsageSchema = T.Object({
  shardId: field(Id, "The shard reporting."),
  jobs: field(T.Array(T.Object({
    jobId: field(Id, "A job on the shard."),
    bytes: field(Bytes, "Bytes the job holds."),
    requests: field(T.Integer({ minimum: 0 }), "Requests the job has made of the shard so far."),
  }), { maxItems: 1000 }), "Some of the shard's jobs (a report comes in messages of up to 1000)."),
  sentAtMs: field(Millis, "When the shard sent it (its clock, ms since the epoch)."),
});
export type ShardUsage = Static<typeof ShardUsageSchema>;

export const AllOperations = [
  ...Object.values(ControllerOps),
  ...Object.values(ShardOps),
  ...Object.values(NodeOps),
] as const;
