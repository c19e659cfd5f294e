import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { AlreadyExistsError, IntegrityError, InvalidArgumentError, TooLargeError, UnknownJobError } from "../../schemas/errors";
import { NodeOps, type NodeHeartbeat, type Tier } from "../../schemas/operations";
import type { ReplyOf, RequestOf } from "../../schemas/operation";
import { crc32 } from "../../lib/checksum";
import { encodeJson } from "../../bus/body";
import { serveOnNats } from "../../bus/nats-rpc";
import { connectAs } from "../../bus/nats-connect";
import { Role } from "../../bus/credentials";
import { newTransportIdentity, type TransportIdentity } from "../../bus/handshake";
import { Router, WithPayload } from "../../bus/router";
import { checkSubjectToken, Subjects } from "../../bus/subjects";
import { TcpServer } from "../../bus/tcp-server";
import { readServerTls, type ServerTlsFiles } from "../../bus/tls";
import { BoundedSet } from "../../lib/bounded-set";
import { systemClock, type Clock } from "../../lib/clock";
import { Defaults, type NatsSettings } from "../runtime/config";
import { logger } from "../../lib/log";
import { TokenAuthority, tokenScope } from "../../bus/tokens";
import { DramStore } from "./dram-store";
import { NvmeStore } from "./nvme-store";
import type { DeviceModel } from "../../native";
import type { ExtentStore } from "./extent-store";

export interface StorageNodeConfig extends NatsSettings {
  readonly nodeId: string;
  readonly tier: Tier;
  /** DRAM: bytes held at most. NVMe: the device file's size when `nvme.sizeBytes` is not given. */
  readonly capacityBytes: number;
  /** For tier "nvme": the device (a block device, or a file created under the data directory). */
  readonly nvme?: { readonly path: string; readonly sizeBytes?: number; readonly queueDepth?: number; readonly sqpoll?: boolean; readonly model?: DeviceModel };
  /** Interface for the direct transport; port 0 picks a free one. */
  readonly host?: string;
  readonly port?: number;
  /** The address clients are told to connect to (defaults to the bound one). */
  readonly advertiseAddr?: string;
  /** Serve the direct transport over TLS only, with this certificate (clients verify it with the cluster's CA). */
  readonly tls?: ServerTlsFiles;
  readonly extentBytesMax?: number;
  readonly heartbeatIntervalMs?: number;
}

/**
 * A storage node: holds extents in one tier and serves them over the direct
 * TCP transport (and over NATS as a fallback), with the same handlers.
 */
export class StorageNode {
  readonly #log = logger("storage-node");
  readonly #droppedJobs = new BoundedSet<string>(Defaults.droppedJobsRemembered);
  /**
   * Extents freed while a grant for them may still be valid (`job/extent` →
   * when their grants have all expired), so a grant cannot write a freed extent
   * again outside the shard's accounting. Insertion order is time order.
   */
  readonly #freed = new Map<string, number>();
  #nats: NatsConnection | undefined;
  #subs: Subscription[] = [];
  /** Proves this node's identity to clients of its direct transport. */
  readonly #identity: TransportIdentity;
  #tcp: TcpServer | undefined;
  #timer: NodeJS.Timeout | undefined;
  #last = { at: 0, cpu: process.cpuUsage(), bytesIn: 0, bytesOut: 0 };
  #retire: () => void = () => undefined;
  #stopped = false;
  /** Resolves when the controller has retired the node (it has stopped serving). */
  readonly retired = new Promise<void>((resolve) => { this.#retire = resolve; });

  private constructor(
    readonly config: StorageNodeConfig,
    private readonly store: ExtentStore,
    private readonly tokens: TokenAuthority,
    private readonly clock: Clock,
  ) {
    this.#identity = newTransportIdentity(config.nodeId);
  }

  static async start(config: StorageNodeConfig, clock: Clock = systemClock): Promise<StorageNode> {
    checkSubjectToken("node", config.nodeId);
    let store: ExtentStore;
    if (config.tier === "dram") {
      store = new DramStore(config.capacityBytes);
    } else if (config.tier === "nvme") {
      if (!config.nvme?.path) throw new InvalidArgumentError("an NVMe node needs nvme.path (a block device or a file)");
      store = NvmeStore.open({ ...config.nvme, sizeBytes: config.nvme.sizeBytes ?? config.capacityBytes });
    } else {
      throw new InvalidArgumentError(`tier ${config.tier} is not available on this node build`);
    }
    const node = new StorageNode(config, store, new TokenAuthority(config.secret, clock), clock);
    try {
      await node.#start();
    } catch (e) {
      await node.stop().catch(() => undefined);
      throw e;
    }
    return node;
  }

  get nodeId(): string { return this.config.nodeId; }
  /** host:port of the direct transport. */
  get addr(): string { return this.config.advertiseAddr ?? this.#tcp!.address; }

  get extentBytesMax(): number {
    return this.config.extentBytesMax ?? Defaults.extentBytesMax;
  }

  /** A job's operations: on the direct transport and on the job's NATS subjects. */
  router(): Router {
    return new Router(tokenScope(this.tokens))
      .on(NodeOps.extentWrite, async (req, ctx) => this.#write(req, ctx.payload ?? new Uint8Array(0)))
      .on(NodeOps.extentRead, async (req) => {
        const { jobId } = this.tokens.verifyJob(req.token);
        return this.#read(jobId, req.extentId, req.offset ?? 0, req.length);
      });
  }

  /**
   * Stores an extent only inside a shard's grant (this job, this node, this
   * extent id, exactly this many bytes) and only if the bytes match the
   * sender's crc; answers with a receipt the shard requires at commit.
   * Bounds first, then the grant, then the bytes: nothing is stored on any failure.
   */
  #rememberFreed(jobId: string, extentIds: readonly string[]): void {
    const now = this.clock.now();
    for (const [key, until] of this.#freed) {
      if (until > now && this.#freed.size < Defaults.freedExtentsRemembered) break;
      this.#freed.delete(key);
    }
    // A grant lives as long as the write it was made for.
    const until = now + Defaults.pendingWriteTtlMs;
    for (const id of extentIds) this.#freed.set(`${jobId}/${id}`, until);
  }

  async #write(req: RequestOf<typeof NodeOps.extentWrite>, bytes: Uint8Array): Promise<ReplyOf<typeof NodeOps.extentWrite>> {
    const { jobId } = this.tokens.verifyJob(req.token);
    if (this.#droppedJobs.has(jobId)) throw new UnknownJobError(`job ${jobId} has been deregistered`);
    if (this.#freed.has(`${jobId}/${req.extentId}`)) throw new AlreadyExistsError(`extent ${req.extentId} was written and freed; extents are never reused`);
    if (bytes.byteLength > this.extentBytesMax) throw new TooLargeError(`extent of ${bytes.byteLength} bytes exceeds ${this.extentBytesMax}`);
    if (bytes.byteLength === 0) throw new InvalidArgumentError("an extent holds at least one byte");
    const claims = { jobId, nodeId: this.nodeId, extentId: req.extentId, length: bytes.byteLength };
    this.tokens.verifyGrant(req.grant, claims);
    if (req.crc === undefined) throw new InvalidArgumentError(`extent.write of ${req.extentId} carries no crc of its payload`);
    const crc = crc32(bytes);
    if (crc !== req.crc) {
      throw new IntegrityError(`extent ${req.extentId}: the ${bytes.byteLength} bytes received have crc ${crc}, the sender's is ${req.crc}; nothing stored`);
    }
    await this.store.write(jobId, req.extentId, bytes);
    return { length: bytes.byteLength, crc, receipt: this.tokens.issueReceipt({ ...claims, crc }) };
  }

  /**
   * Reads an extent, or a range with the CRC-32 of the extent's bytes before
   * and after it, so the reader checks the range against the committed
   * whole-extent crc. A range costs a read of the whole extent: nothing more
   * on DRAM (the bytes are in memory), but on NVMe every block of the extent
   * is fetched, not only those under the range (read amplification of up to
   * extent size / range length; whole-extent reads, the common case, cost
   * nothing extra).
   */
  async #read(jobId: string, extentId: string, offset: number, length: number | undefined): Promise<WithPayload<ReplyOf<typeof NodeOps.extentRead>>> {
    const all = await this.store.read(jobId, extentId, 0, undefined);
    if (offset === 0 && length === undefined) return new WithPayload({ length: all.byteLength, prefixCrc: 0, suffixCrc: 0 }, all);
    const end = length === undefined ? all.byteLength : offset + length;
    if (offset > all.byteLength || end > all.byteLength) {
      throw new InvalidArgumentError(`range [${offset}, ${end}) is outside extent ${extentId} of ${all.byteLength} bytes`);
    }
    const bytes = all.subarray(offset, end);
    return new WithPayload({ length: bytes.byteLength, prefixCrc: crc32(all.subarray(0, offset)), suffixCrc: crc32(all.subarray(end)) }, bytes);
  }

  /**
   * Cluster-only operations: served on the node's control subjects, which only
   * the controller (and shards, for frees) may publish to; never on the direct transport.
   */
  controlRouter(): Router {
    return new Router()
      .on(NodeOps.extentFree, async (req) => {
        this.#rememberFreed(req.jobId, req.extentIds);
        return { freedBytes: await this.store.free(req.jobId, req.extentIds) };
      })
      .on(NodeOps.jobDrop, async (req) => {
        this.#droppedJobs.add(req.jobId);
        return { freedBytes: await this.store.dropJob(req.jobId) };
      })
      .on(NodeOps.jobQos, (req) => {
        if (!(this.store instanceof NvmeStore)) return { reserved: false };
        const p95Us = req.slo.p95Us > 0 ? req.slo.p95Us : this.store.engine.model.latencyLimitUs;
        this.store.reserve(req.jobId, { ...req.slo, p95Us });
        return { reserved: true };
      })
      .on(NodeOps.retire, () => {
        this.#log.info("retired by the controller; stopping", { nodeId: this.nodeId });
        // After the reply is on its way.
        setTimeout(() => { void this.stop().finally(() => this.#retire()); }, 50);
        return {};
      })
      .on(NodeOps.stats, () => ({
        nodeId: this.nodeId,
        tier: this.store.tier,
        capacityBytes: this.store.capacityBytes,
        usedBytes: this.store.usedBytes,
        extents: this.store.extentCount,
        jobs: this.store.jobCount,
        ...(this.store instanceof NvmeStore ? { latencyCriticalJobs: this.store.latencyCriticalJobs } : {}),
      }));
  }

  async #start(): Promise<void> {
    const router = this.router();
    this.#tcp = await TcpServer.listen(router, {
      host: this.config.host ?? "127.0.0.1",
      port: this.config.port ?? 0,
      frameBytesMax: this.extentBytesMax + 64 * 1024,
      identity: this.#identity,
      authenticate: (token) => { this.tokens.verifyJob(token); },
      tls: this.config.tls ? readServerTls(this.config.tls) : undefined,
    });
    this.#nats = await connectAs(this.config, Role.Node, this.nodeId, { name: `pocket-node-${this.nodeId}` });
    this.#subs.push(serveOnNats(this.#nats, Subjects.nodeJobs(this.nodeId), router, { jobScoped: true }));
    this.#subs.push(serveOnNats(this.#nats, Subjects.nodeControl(this.nodeId), this.controlRouter()));
    this.#last = { at: this.clock.now(), cpu: process.cpuUsage(), bytesIn: 0, bytesOut: 0 };
    this.#heartbeat();
    this.#timer = setInterval(() => this.#heartbeat(), this.config.heartbeatIntervalMs ?? Defaults.heartbeatIntervalMs);
    this.#log.info("storage node up", { nodeId: this.nodeId, addr: this.addr });
  }

  #heartbeat(): void {
    const now = this.clock.now();
    const elapsedMs = Math.max(1, now - this.#last.at);
    const cpu = process.cpuUsage(this.#last.cpu);
    const tcp = this.#tcp!.stats;
    const hb: NodeHeartbeat = {
      nodeId: this.nodeId,
      tier: this.store.tier,
      addr: this.addr,
      key: this.#identity.publicKey,
      capacityBytes: this.store.capacityBytes,
      usedBytes: this.store.usedBytes,
      extents: this.store.extentCount,
      cpu: (cpu.user + cpu.system) / 1000 / elapsedMs,
      bytesInPerSec: ((tcp.bytesIn - this.#last.bytesIn) * 1000) / elapsedMs,
      bytesOutPerSec: ((tcp.bytesOut - this.#last.bytesOut) * 1000) / elapsedMs,
      sentAtMs: now,
    };
    this.#last = { at: now, cpu: process.cpuUsage(), bytesIn: tcp.bytesIn, bytesOut: tcp.bytesOut };
    this.#nats?.publish(Subjects.nodeHeartbeat(this.nodeId), encodeJson(hb));
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const sub of this.#subs) sub.unsubscribe();
    await this.#tcp?.close();
    await this.#nats?.drain().catch(() => undefined);
    await this.store.close();
  }
}
