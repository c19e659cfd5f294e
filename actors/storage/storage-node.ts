import fs from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { InvalidArgumentError, NodeUnavailableError } from "../../schemas/errors";
import { NodeOps, type Tier } from "../../schemas/operations";
import type { ReplyOf, RequestOf } from "../../schemas/operation";
import { systemClock, type Timer, type TimerClock } from "../../lib/clock";
import { errorFields, logger } from "../../lib/log";
import { closeInTurn } from "../../lib/shutdown";
import type { Bus, Closable } from "../../bus/bus";
import { NatsBus } from "../../bus/nats-bus";
import { connectAs } from "../../bus/nats-connect";
import { Role } from "../../bus/credentials";
import { newTransportIdentity, type TransportIdentity } from "../../bus/handshake";
import { Router } from "../../bus/router";
import { checkSubjectToken, Subjects } from "../../bus/subjects";
import type { TcpServer } from "../../bus/tcp-server";
import { TcpPool } from "../../bus/tcp-client";
import type { ServerTlsFiles } from "../../bus/tls";
import { TokenAuthority, tokenScope } from "../../bus/tokens";
import { Defaults, type NatsSettings } from "../runtime/config";
import { listenDirect } from "../runtime/direct-transport";
import { ActorOps, type OpsHttpConfig } from "../runtime/http-ops";
import type { ActorMetrics } from "../runtime/metrics";
import { BufferPool } from "../../lib/buffer-pool";
import { DramStore } from "./dram-store";
import { NvmeStore } from "./nvme-store";
import type { DeviceModel } from "../../native";
import type { ExtentStore } from "./extent-store";
import { NodeLogic, type NodeLoad } from "./node-logic";
import { registerNodeMetrics } from "./node-metrics";

export interface StorageNodeConfig extends NatsSettings, OpsHttpConfig {
  readonly nodeId: string;
  readonly tier: Tier;
  /** DRAM: bytes held at most. NVMe: the device file's size when `nvme.sizeBytes` is not given. */
  readonly capacityBytes: number;
  /** For tier "nvme": the device (a block device, or a file created under the data directory). */
  readonly nvme?: { readonly path: string; readonly sizeBytes?: number; readonly queueDepth?: number; readonly sqpoll?: boolean; readonly spinUs?: number; readonly model?: DeviceModel };
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

/** What a storage node's shell runs on: a bus and a clock with timers. */
export interface NodeEnv {
  readonly bus: Bus;
  readonly clock: TimerClock;
}

const noBytes = new Uint8Array(0);
/** Connections to other nodes kept open at most (the least recently opened idle one goes past it). */
const peerConnectionsMax = 64;
const idle: NodeLoad = { cpu: 0, bytesInPerSec: 0, bytesOutPerSec: 0 };

/**
 * A storage node's shell: serves the NodeLogic's operations over the bus
 * (and the direct TCP transport, when started with one), publishes its
 * heartbeat with measured load on the clock, and stops when retired.
 */
export class StorageNode {
  readonly #log = logger("storage-node");
  readonly logic: NodeLogic;
  readonly #tokens: TokenAuthority;
  readonly #served: Closable[] = [];
  /** Metrics, readiness and the HTTP server operators scrape and probe. */
  readonly #ops: ActorOps;
  #timer: Timer | undefined;
  #tcp: TcpServer | undefined;
  /** Proves this node's identity to clients of its direct transport. */
  #identity: TransportIdentity | undefined;
  /** Connections to other nodes' direct transports, for the extents it copies to them (made at the first copy). */
  #peers: TcpPool | undefined;
  #last = { at: 0, cpu: process.cpuUsage(), bytesIn: 0, bytesOut: 0 };
  #retire: () => void = () => undefined;
  #stopped = false;
  /** Resolves when the controller has retired the node (it has stopped serving). */
  readonly retired = new Promise<void>((resolve) => { this.#retire = resolve; });

  private constructor(readonly config: StorageNodeConfig, store: ExtentStore, private readonly env: NodeEnv, ops = ActorOps.detached("node", config.nodeId)) {
    checkSubjectToken("node", config.nodeId);
    this.#ops = ops;
    this.#tokens = new TokenAuthority(config.secret, env.clock);
    this.logic = new NodeLogic(config.nodeId, store, this.#tokens, env.clock, config.extentBytesMax ?? Defaults.extentBytesMax);
    registerNodeMetrics(ops.metrics, { logic: this.logic, nvmePath: config.nvme?.path, tcp: () => this.#tcp?.stats });
  }

  /** A node on NATS and the direct transport, with the store its tier names: what an actor process runs. */
  static async start(config: StorageNodeConfig, clock: TimerClock = systemClock): Promise<StorageNode> {
    checkSubjectToken("node", config.nodeId);
    // Probes answer (not ready) while the node opens its store and connects.
    const ops = await ActorOps.start(config, "node", config.nodeId);
    let store: ExtentStore | undefined;
    let nc: NatsConnection | undefined;
    // A DRAM node keeps each extent in the frame it arrived in, and reuses that memory once the extent is freed.
    const pool = config.tier === "dram" ? new BufferPool(poolIdleBytes(config.capacityBytes)) : undefined;
    try {
      store = openStore(config, pool);
      nc = await connectAs(config, Role.Node, config.nodeId, { name: `pocket-node-${config.nodeId}` });
    } catch (e) {
      await store?.close();
      await ops.close();
      throw e;
    }
    ops.followNats(nc);
    const node = new StorageNode(config, store, { bus: new NatsBus(nc, Defaults.rpcTimeoutMs), clock }, ops);
    try {
      node.#identity = newTransportIdentity(config.nodeId);
      node.#tcp = await listenDirect(node.router(), config, node.logic.extentBytesMax + 64 * 1024, node.#identity, node.#tokens, pool && ((n) => pool.take(n)));
      node.#serve();
      // Ready only once the server has its subscriptions.
      await node.env.bus.flush();
    } catch (e) {
      await node.stop().catch(() => undefined);
      throw e;
    }
    ops.serving();
    node.#log.info("storage node up", { nodeId: node.nodeId, addr: node.addr, http: ops.httpAddr });
    return node;
  }

  /** A node on a bus only (no direct transport), over the given store: the simulation runs these. `ops`: its metrics, probes and their HTTP server. */
  static over(config: StorageNodeConfig, env: NodeEnv, store: ExtentStore, ops?: ActorOps): StorageNode {
    const node = new StorageNode(config, store, env, ops);
    node.#serve();
    return node;
  }

  get nodeId(): string { return this.config.nodeId; }
  /** host:port of the direct transport ("" without one). */
  get addr(): string { return this.config.advertiseAddr ?? this.#tcp?.address ?? ""; }
  /** host:port its direct transport listens on ("" without one): `addr` unless it advertises another (a proxy, a NAT). */
  get listenAddr(): string { return this.#tcp?.address ?? ""; }
  get extentBytesMax(): number { return this.logic.extentBytesMax; }
  /** host:port of the HTTP server for metrics and probes ("" without one). */
  get httpAddr(): string { return this.#ops.httpAddr; }
  get metrics(): ActorMetrics { return this.#ops.metrics; }

  /** A job's operations: on the direct transport and on the job's bus subjects. */
  router(): Router {
    return new Router(tokenScope(this.#tokens)).observe(this.metrics.requests)
      .on(NodeOps.extentWrite, (req, ctx) => this.logic.write(req, ctx.payload ?? noBytes, ctx.payloadOwned === true))
      .on(NodeOps.extentRead, (req) => this.logic.read(req));
  }

  /**
   * Cluster-only operations: served on the node's control subjects, which only
   * the controller (and shards, for frees) may publish to; never on the direct transport.
   */
  controlRouter(): Router {
    const store = this.logic.store;
    return new Router().observe(this.metrics.requests)
      .on(NodeOps.extentFree, (req) => this.logic.free(req))
      .on(NodeOps.extentCopy, (req) => this.#copyExtent(req))
      .on(NodeOps.jobDrop, (req) => this.logic.dropJob(req))
      .on(NodeOps.jobQos, (req) => {
        if (!(store instanceof NvmeStore)) return { reserved: false };
        store.reserve(req.jobId, { ...req.slo, p95Us: req.slo.p95Us > 0 ? req.slo.p95Us : store.engine.model.latencyLimitUs });
        return { reserved: true };
      })
      .on(NodeOps.retire, () => {
        this.#log.info("retired by the controller; stopping", { nodeId: this.nodeId });
        // After the reply is on its way.
        this.env.clock.after(50, () => { void this.stop().finally(() => this.#retire()); });
        return {};
      })
      .on(NodeOps.stats, () => this.logic.stats(store instanceof NvmeStore ? { latencyCriticalJobs: store.latencyCriticalJobs } : {}));
  }

  /**
   * Sends one extent to another node's direct transport as the job (with the
   * token and grant its shard gave), after checking it: migration's bytes go
   * node to node, once, not through the shard and NATS.
   */
  async #copyExtent(req: RequestOf<typeof NodeOps.extentCopy>): Promise<ReplyOf<typeof NodeOps.extentCopy>> {
    const bytes = await this.logic.copySource(req);
    const { to } = req;
    const r = await this.#peerPool().caller(to.addr, { id: to.nodeId, key: to.key }, req.token)
      .call(NodeOps.extentWrite, { token: req.token, extentId: to.extentId, grant: to.grant, crc: req.crc }, { payload: bytes });
    return r.reply;
  }

  /** The pool for copies; over TLS it verifies peers with the cluster's CA (the one the NATS connection trusts). */
  #peerPool(): TcpPool {
    if (this.#peers) return this.#peers;
    const { tls, natsTlsCa } = this.config;
    if (tls !== undefined && natsTlsCa === undefined) {
      throw new NodeUnavailableError(`node ${this.nodeId} serves TLS but has no CA (natsTlsCa) to verify other nodes with; it cannot copy extents to them`);
    }
    this.#peers = new TcpPool({
      connectionsMax: peerConnectionsMax,
      requestTimeoutMs: Defaults.rpcTimeoutMs,
      ...(tls !== undefined ? { tls: { ca: fs.readFileSync(natsTlsCa!, "utf8") } } : {}),
    });
    return this.#peers;
  }

  #serve(): void {
    const { bus, clock } = this.env;
    this.#served.push(bus.serve(Subjects.nodeJobs(this.nodeId), this.router(), { jobScoped: true }));
    this.#served.push(bus.serve(Subjects.nodeControl(this.nodeId), this.controlRouter()));
    this.#last = { at: clock.now(), cpu: process.cpuUsage(), bytesIn: 0, bytesOut: 0 };
    this.#heartbeat();
    this.#timer = clock.every(this.config.heartbeatIntervalMs ?? Defaults.heartbeatIntervalMs, () => this.#heartbeat());
  }

  /** CPU and direct-transport traffic since the last heartbeat (none measured without a direct transport). */
  #load(): NodeLoad {
    if (!this.#tcp) return idle;
    const now = this.env.clock.now();
    const elapsedMs = Math.max(1, now - this.#last.at);
    const cpu = process.cpuUsage(this.#last.cpu);
    const tcp = this.#tcp.stats;
    const load = {
      cpu: (cpu.user + cpu.system) / 1000 / elapsedMs,
      bytesInPerSec: ((tcp.bytesIn - this.#last.bytesIn) * 1000) / elapsedMs,
      bytesOutPerSec: ((tcp.bytesOut - this.#last.bytesOut) * 1000) / elapsedMs,
    };
    this.#last = { at: now, cpu: process.cpuUsage(), bytesIn: tcp.bytesIn, bytesOut: tcp.bytesOut };
    return load;
  }

  #heartbeat(): void {
    if (this.#stopped) return;
    this.env.bus.publish(Subjects.nodeHeartbeat(this.nodeId), this.logic.heartbeat(this.addr, this.#identity?.publicKey ?? "", this.#load()));
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#ops.stopping();
    this.#timer?.cancel();
    for (const s of this.#served) s.close();
    // Every step runs whatever failed before it: the store is closed and the HTTP port let go (inline, in a process that goes on).
    await closeInTurn([
      () => this.#tcp?.close(),
      () => this.#peers?.close(),
      () => this.env.bus.drain(),
      () => this.logic.store.close(),
      () => this.#ops.close(),
    ], (e) => this.#log.error("stopping: another step failed too", errorFields(e)));
  }
}

/**
 * Memory of freed extents a DRAM node keeps for reuse: enough for the writes
 * in flight at a time (a few dozen extents), never more than an eighth of the
 * node's capacity.
 */
function poolIdleBytes(capacityBytes: number): number {
  return Math.min(64 * 1024 * 1024, Math.floor(capacityBytes / 8));
}

/** The extent store of the node's tier. */
function openStore(config: StorageNodeConfig, pool: BufferPool | undefined): ExtentStore {
  if (config.tier === "dram") return new DramStore(config.capacityBytes, undefined, pool);
  if (config.tier === "nvme") {
    if (!config.nvme?.path) throw new InvalidArgumentError("an NVMe node needs nvme.path (a block device or a file)");
    return NvmeStore.open({ ...config.nvme, sizeBytes: config.nvme.sizeBytes ?? config.capacityBytes });
  }
  throw new InvalidArgumentError(`tier ${config.tier} is not available on this node build`);
}
