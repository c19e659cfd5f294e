import { Type as T, type Static, type TInteger } from "@sinclair/typebox";
import { Tier } from "../../schemas/operations";
import { Defaults } from "./config";

/**
 * The JSON config of each actor process (`POCKET_ACTOR_CONFIG`), declared
 * once with TypeBox as the wire schemas are: every field with its type,
 * range and, where it has one, its embedded default (from `Defaults`, or
 * the controller's embedded policy). `actors/main.ts` checks a config
 * against these before the actor starts (`checkActorConfig`); unknown keys
 * are refused.
 *
 * @example
 *   const config = checkActorConfig(ActorKind.Shard, JSON.parse(text));   // throws ActorConfigError naming the field
 */

/** The actors a process can run, as `node dist/actors/main.js <kind>` names them. */
export const ActorKind = { Controller: "controller", Shard: "shard", Node: "node" } as const;
export type ActorKind = (typeof ActorKind)[keyof typeof ActorKind];

const KiB = 1024;
const MiB = 1024 * KiB;
/** Largest extent a config may ask for: an extent with its request fits one NATS message (nats-server's max_payload is 8 MiB here). */
export const extentBytesCeiling = 4 * MiB;
/** Largest inline object: one extent's worth (an inline object travels in one frame with its request). */
export const inlineBytesCeiling = 1 * MiB;

/** An integer in [minimum, maximum]; `def` is its embedded default, recorded in the schema. */
function int(minimum: number, maximum: number, description: string, def?: number): TInteger {
  return T.Integer({ minimum, maximum, description, ...(def !== undefined ? { default: def } : {}) });
}

/** A description that ends with its default. */
function withDefault(text: string, value: number | string | boolean): string {
  return `${text} Default ${String(value)}.`;
}

const Id = T.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_-]+$", description: "1-64 of A-Z a-z 0-9 _ - (it is part of NATS subjects)." });
const Port = T.Integer({ minimum: 0, maximum: 65535, description: "TCP port; 0 picks a free one." });
const Host = T.String({ minLength: 1, maxLength: 253, description: "Interface (IP address or host name) to listen on." });
const FilePath = T.String({ minLength: 1, maxLength: 4096 });

const ServerTlsFilesSchema = T.Object({
  certFile: T.String({ minLength: 1, maxLength: 4096, description: "PEM certificate the server presents." }),
  keyFile: T.String({ minLength: 1, maxLength: 4096, description: "PEM private key (0600: a key others can read is refused)." }),
}, { additionalProperties: false, description: "Serve over TLS only, with this certificate; clients verify it with the cluster's CA." });

/** What every actor carries: where the bus is, who it is on it, and the cluster secret. */
const natsSettings = {
  natsUrl: T.String({ minLength: 1, maxLength: 4096, description: "NATS URL(s) of the cluster, e.g. nats://127.0.0.1:4222." }),
  natsCreds: T.Optional(T.String({ ...FilePath, description: "This actor's NATS credentials file (0600); none: connect anonymously." })),
  natsTlsCa: T.Optional(T.String({ ...FilePath, description: "The cluster's CA certificate (PEM): reach NATS over TLS only, verifying the server with it." })),
  secret: T.String({
    minLength: 16, maxLength: 1024,
    description: "Cluster secret (at least 16 bytes) that signs tokens, grants and receipts; never sent on the wire. POCKET_SECRET fills it when the config has none.",
  }),
  httpPort: T.Optional(T.Integer({ minimum: 0, maximum: 65535, description: "Port of the actor's HTTP endpoint (metrics, health); none: no HTTP endpoint." })),
  httpHost: T.Optional(T.String({ minLength: 1, maxLength: 253, description: "Interface of the actor's HTTP endpoint." })),
};

const heartbeatIntervalMs = int(10, 60_000, withDefault("Milliseconds between heartbeats.", Defaults.heartbeatIntervalMs), Defaults.heartbeatIntervalMs);
const extentBytesMax = int(4 * KiB, extentBytesCeiling, withDefault("Largest extent in bytes; objects are split into extents of at most this size.", Defaults.extentBytesMax), Defaults.extentBytesMax);

export const ShardConfigSchema = T.Object({
  ...natsSettings,
  shardId: Id,
  host: T.Optional(Host),
  port: T.Optional(Port),
  tls: T.Optional(ServerTlsFilesSchema),
  heartbeatIntervalMs: T.Optional(heartbeatIntervalMs),
  inlineBytesMax: T.Optional(int(0, inlineBytesCeiling, withDefault("Objects up to this many bytes live inline in the shard (one round trip per put or get).", Defaults.inlineBytesMax), Defaults.inlineBytesMax)),
  inlineCapacityBytes: T.Optional(int(0, 2 ** 40, withDefault("Inline bytes the shard holds at most, over all its jobs.", Defaults.inlineCapacityBytes), Defaults.inlineCapacityBytes)),
  extentBytesMax: T.Optional(extentBytesMax),
  pendingWriteTtlMs: T.Optional(int(100, 24 * 3600_000, withDefault("A put not committed within this many milliseconds is abandoned and its extents freed.", Defaults.pendingWriteTtlMs), Defaults.pendingWriteTtlMs)),
  pendingWritesPerJobMax: T.Optional(int(1, 10_000_000, withDefault("Uncommitted writes one job may hold.", Defaults.pendingWritesPerJobMax), Defaults.pendingWritesPerJobMax)),
  namespaceEntriesMax: T.Optional(int(1, 1_000_000_000, withDefault("Objects plus directories one job's namespace may hold.", Defaults.namespaceEntriesMax), Defaults.namespaceEntriesMax)),
}, { additionalProperties: false, description: "A metadata shard (`node dist/actors/main.js shard`)." });
export type ShardConfigFromSchema = Static<typeof ShardConfigSchema>;

const DeviceModelSchema = T.Object({
  tokensPerSec: T.Number({ exclusiveMinimum: 0, description: "Tokens per second within the latency limit (a 4 KiB read costs readCost)." }),
  readCost: T.Number({ exclusiveMinimum: 0 }),
  writeCost: T.Number({ exclusiveMinimum: 0 }),
  latencyLimitUs: T.Number({ exclusiveMinimum: 0 }),
}, { additionalProperties: false, description: "The device model the QoS scheduler works by (`pocket calibrate` writes one)." });

const NvmeSchema = T.Object({
  path: T.String({ ...FilePath, description: "A block device, or a file (created and preallocated to sizeBytes)." }),
  sizeBytes: T.Optional(T.Integer({ minimum: MiB, maximum: 2 ** 50, description: "Size of the file to create; default the node's capacityBytes." })),
  queueDepth: T.Optional(int(1, 4096, withDefault("io_uring queue depth.", 128), 128)),
  sqpoll: T.Optional(T.Boolean({ description: "Kernel-side submission polling. Default false.", default: false })),
  spinUs: T.Optional(int(0, 1000, withDefault("Above 0, the engine runs on a thread of its own that polls this many microseconds for work before sleeping, and the node's JavaScript thread as long for completions: for a device that answers in microseconds on cores of its own; it slows a disk a VM's host emulates. At 0 the engine runs on the node's JavaScript thread.", 0), 0)),
  model: T.Optional(DeviceModelSchema),
}, { additionalProperties: false, description: "The NVMe device of a node of tier nvme (required for it)." });

/** Tiers a storage node can run in this build (`disk` is planned, not built). */
const NodeTierSchema = T.Union([T.Literal(Tier.Dram), T.Literal(Tier.Nvme)], { description: "Storage tier: dram or nvme." });

export const StorageNodeConfigSchema = T.Object({
  ...natsSettings,
  nodeId: Id,
  tier: NodeTierSchema,
  capacityBytes: T.Integer({ minimum: 1, maximum: 2 ** 50, description: "DRAM: bytes held at most. NVMe: the device file's size when nvme.sizeBytes is not given." }),
  nvme: T.Optional(NvmeSchema),
  host: T.Optional(Host),
  port: T.Optional(Port),
  advertiseAddr: T.Optional(T.String({
    minLength: 1, maxLength: 256,
    description: "host:port clients are told to connect to; default the bound address. POCKET_ADVERTISE_HOST fills it (with port) when the config has none.",
  })),
  tls: T.Optional(ServerTlsFilesSchema),
  extentBytesMax: T.Optional(extentBytesMax),
  heartbeatIntervalMs: T.Optional(heartbeatIntervalMs),
}, { additionalProperties: false, description: "A storage node (`node dist/actors/main.js node`)." });
export type StorageNodeConfigFromSchema = Static<typeof StorageNodeConfigSchema>;

const NodeTypeSchema = T.Object({
  tier: T.Union([T.Literal(Tier.Dram), T.Literal(Tier.Nvme), T.Literal(Tier.Disk)]),
  capacityBytes: T.Number({ exclusiveMinimum: 0, description: "Bytes one node of this type stores." }),
  throughputBps: T.Number({ exclusiveMinimum: 0, description: "Network bytes per second one node serves." }),
  cpuCores: T.Number({ exclusiveMinimum: 0, description: "CPU cores one node may use." }),
  minNodes: T.Integer({ minimum: 0, maximum: Defaults.clusterMembersMax }),
  maxNodes: T.Integer({ minimum: 0, maximum: Defaults.clusterMembersMax }),
  pricePerHour: T.Number({ minimum: 0, description: "Price of one node-hour, for `pocket usage`." }),
}, { additionalProperties: false, description: "What one storage node of a kind offers; replaces the embedded type of its tier." });

/** Milliseconds from 0 to a day. */
function ms(description: string, def: number): TInteger {
  return int(0, 24 * 3600_000, withDefault(description, def), def);
}

/** The controller's sizing and scaling; every field defaults to the embedded policy (actors/controller/policy.ts). */
export const ScalingPolicySchema = T.Object({
  nodeTypes: T.Optional(T.Array(NodeTypeSchema, { maxItems: 16 })),
  perLambdaBps: T.Optional(T.Number({ exclusiveMinimum: 0, description: withDefault("Peak bytes per second one lambda draws (Pocket: 600 Mb/s).", 75_000_000), default: 75_000_000 })),
  unhintedNodes: T.Optional(T.Number({ exclusiveMinimum: 0, maximum: 1000, description: withDefault("Demand of a job without hints, in nodes.", 2), default: 2 })),
  bandLow: T.Optional(T.Number({ exclusiveMinimum: 0, maximum: 1, description: withDefault("Low edge of the target utilisation band (a fraction).", 0.6), default: 0.6 })),
  bandHigh: T.Optional(T.Number({ exclusiveMinimum: 0, maximum: 1, description: withDefault("High edge of the target utilisation band (a fraction).", 0.8), default: 0.8 })),
  windowMs: T.Optional(ms("Utilisation is averaged over this window.", 5_000)),
  sustainMs: T.Optional(ms("A dimension stays outside the band this long before the controller acts.", 3_000)),
  cooldownMs: T.Optional(ms("No other scaling decision in a tier for this long after one.", 10_000)),
  startupGraceMs: T.Optional(ms("Nodes and jobs are not judged until this long after the controller starts.", 3_000)),
  heartbeatIntervalMs: T.Optional(heartbeatIntervalMs),
  heartbeatsMissedMax: T.Optional(int(1, 100, withDefault("A node not heard for this many intervals is failed.", Defaults.heartbeatsMissedMax), Defaults.heartbeatsMissedMax)),
  launchTimeoutMs: T.Optional(ms("A launched node that has not reported within this long is failed.", 30_000)),
  failedRetentionMs: T.Optional(ms("A failed node not back within this long is removed from the books.", 600_000)),
  drainDeadlineMs: T.Optional(ms("A draining node still holding data this long after draining began has its extents moved.", 60_000)),
  leaseMs: T.Optional(ms("A job whose lease is not renewed within this long is reclaimed.", 60_000)),
  endedJobsRetained: T.Optional(int(0, 10_000_000, withDefault("Ended jobs kept in memory for `pocket usage`.", 10_000), 10_000)),
  scaling: T.Optional(T.Boolean({ description: withDefault("Whether the controller adds and drains nodes.", true), default: true })),
}, { additionalProperties: false });

const OrchestratorSchema = T.Union([
  T.Object({
    kind: T.Literal("local"),
    dataDir: T.String({ ...FilePath, description: "Where launched nodes keep logs, credentials and NVMe files." }),
    inline: T.Optional(T.Boolean({ description: "Run launched nodes in the controller's process (tests). Default false." })),
    host: T.Optional(Host),
  }, { additionalProperties: false }),
  T.Object({
    kind: T.Literal("kubernetes"),
    namespace: T.Optional(T.String({ minLength: 1, maxLength: 63 })),
    manifests: T.Optional(T.Object({
      dram: T.Optional(T.String({ ...FilePath, description: "The DRAM node pod template; default deploy/kubernetes/storage-node-dram.yaml." })),
      nvme: T.Optional(T.String({ ...FilePath, description: "The NVMe node pod template; default deploy/kubernetes/storage-node-nvme.yaml." })),
    }, { additionalProperties: false, description: "Pod manifest template per tier (`${NAME}` placeholders)." })),
    image: T.Optional(T.String({ minLength: 1, maxLength: 1024 })),
    natsUrl: T.Optional(T.String({ minLength: 1, maxLength: 4096, description: "NATS URL as seen from inside the cluster; default the controller's." })),
    kubeconfig: T.Optional(FilePath),
  }, { additionalProperties: false }),
  T.Object({ kind: T.Literal("events-only") }, { additionalProperties: false }),
], { description: "Who starts and stops storage nodes: local, kubernetes or events-only. Default events-only." });

export const ControllerConfigSchema = T.Object({
  ...natsSettings,
  heartbeatIntervalMs: T.Optional(heartbeatIntervalMs),
  heartbeatsMissedMax: T.Optional(int(1, 100, withDefault("A node or shard not heard for this many intervals is failed.", Defaults.heartbeatsMissedMax), Defaults.heartbeatsMissedMax)),
  jobTokenTtlMs: T.Optional(int(1_000, 30 * 24 * 3600_000, withDefault("Lifetime of a job's capability token in milliseconds.", Defaults.jobTokenTtlMs), Defaults.jobTokenTtlMs)),
  jobsMax: T.Optional(int(1, 10_000_000, withDefault("Jobs registered at once.", Defaults.jobsMax), Defaults.jobsMax)),
  store: T.Optional(T.String({ minLength: 1, maxLength: 4096, description: "Durable state: a SQLite file or a postgres:// URL. Default pocket-controller.sqlite." })),
  policy: T.Optional(ScalingPolicySchema),
  orchestrator: T.Optional(OrchestratorSchema),
  traceFile: T.Optional(T.String({ ...FilePath, description: "Every input is appended here as NDJSON, for `pocket replay`." })),
  extentBytesMax: T.Optional(extentBytesMax),
  nodeHttpPort: T.Optional(T.Integer({ minimum: 0, maximum: 65535, description: "Port the storage nodes it launches serve metrics and probes on (0: a free one); none: no HTTP endpoint." })),
  credentialIssuer: T.Optional(T.Object({
    account: T.String({ minLength: 1, maxLength: 128, description: "The account's public key." }),
    signingSeedFile: T.String({ ...FilePath, description: "File holding one of the account's signing seeds (0600)." }),
  }, { additionalProperties: false, description: "How the controller mints lambda and node credentials; none on a bus without authentication." })),
  nodeTls: T.Optional(ServerTlsFilesSchema),
}, { additionalProperties: false, description: "The controller (`node dist/actors/main.js controller`)." });
export type ControllerConfigFromSchema = Static<typeof ControllerConfigSchema>;

/** Each actor kind's config schema. */
export const ActorConfigSchemas = {
  [ActorKind.Controller]: ControllerConfigSchema,
  [ActorKind.Shard]: ShardConfigSchema,
  [ActorKind.Node]: StorageNodeConfigSchema,
} as const;

/** The config type each kind's schema checks. */
export interface ActorConfigOf {
  readonly controller: ControllerConfigFromSchema;
  readonly shard: ShardConfigFromSchema;
  readonly node: StorageNodeConfigFromSchema;
}
