import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { InvalidArgumentError, TooLargeError, UnknownJobError } from "../../schemas/errors";
import { NodeOps, type NodeHeartbeat, type Tier } from "../../schemas/operations";
import { encodeJson } from "../../bus/body";
import { serveOnNats } from "../../bus/nats-rpc";
import { Router, WithPayload } from "../../bus/router";
import { checkSubjectToken, Subjects } from "../../bus/subjects";
import { TcpServer } from "../../bus/tcp-server";
import { BoundedSet } from "../runtime/bounded-set";
import { systemClock, type Clock } from "../runtime/clock";
import { Defaults, type NatsSettings } from "../runtime/config";
import { logger } from "../runtime/log";
import { TokenAuthority } from "../runtime/tokens";
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
  #nats: NatsConnection | undefined;
  #sub: Subscription | undefined;
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
  ) {}

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

  router(): Router {
    return new Router()
      .on(NodeOps.extentWrite, async (req, ctx) => {
        const { jobId } = this.tokens.verifyJob(req.token);
        if (this.#droppedJobs.has(jobId)) throw new UnknownJobError(`job ${jobId} has been deregistered`);
        const bytes = ctx.payload ?? new Uint8Array(0);
        if (bytes.byteLength > this.extentBytesMax) throw new TooLargeError(`extent of ${bytes.byteLength} bytes exceeds ${this.extentBytesMax}`);
        await this.store.write(jobId, req.extentId, bytes);
        return { length: bytes.byteLength };
      })
      .on(NodeOps.extentRead, async (req) => {
        const { jobId } = this.tokens.verifyJob(req.token);
        const bytes = await this.store.read(jobId, req.extentId, req.offset ?? 0, req.length);
        return new WithPayload({ length: bytes.byteLength }, bytes);
      })
      .on(NodeOps.extentFree, async (req) => {
        this.tokens.verifyCluster(req.auth);
        return { freedBytes: await this.store.free(req.jobId, req.extentIds) };
      })
      .on(NodeOps.jobDrop, async (req) => {
        this.tokens.verifyCluster(req.auth);
        this.#droppedJobs.add(req.jobId);
        return { freedBytes: await this.store.dropJob(req.jobId) };
      })
      .on(NodeOps.jobQos, (req) => {
        this.tokens.verifyCluster(req.auth);
        if (!(this.store instanceof NvmeStore)) return { reserved: false };
        const p95Us = req.slo.p95Us > 0 ? req.slo.p95Us : this.store.engine.model.latencyLimitUs;
        this.store.reserve(req.jobId, { ...req.slo, p95Us });
        return { reserved: true };
      })
      .on(NodeOps.retire, (req) => {
        this.tokens.verifyCluster(req.auth);
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
    });
    this.#nats = await connect({ servers: this.config.natsUrl, name: `pocket-node-${this.nodeId}`, maxReconnectAttempts: -1 });
    this.#sub = serveOnNats(this.#nats, Subjects.node(this.nodeId), router);
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
    this.#sub?.unsubscribe();
    await this.#tcp?.close();
    await this.#nats?.drain().catch(() => undefined);
    await this.store.close();
  }
}
