import { ErrorCode, IntegrityError, isPocketError } from "../../schemas/errors";
import { NodeOps, ShardOps, WireLimits } from "../../schemas/operations";
import type { NatsConnection } from "@nats-io/transport-node";
import { crc32 } from "../../lib/checksum";
import { systemClock, type Timer, type TimerClock } from "../../lib/clock";
import { mapLimit } from "../../lib/concurrency";
import { systemEntropy, type Entropy } from "../../lib/entropy";
import { errorFields, logger } from "../../lib/log";
import { closeInTurn } from "../../lib/shutdown";
import type { Bus, Closable } from "../../bus/bus";
import { NatsBus } from "../../bus/nats-bus";
import { connectAs } from "../../bus/nats-connect";
import { Role } from "../../bus/credentials";
import { newTransportIdentity, type TransportIdentity } from "../../bus/handshake";
import { Router } from "../../bus/router";
import type { TcpServer } from "../../bus/tcp-server";
import type { ServerTlsFiles } from "../../bus/tls";
import { checkSubjectToken, Subjects } from "../../bus/subjects";
import { TokenAuthority, tokenScope } from "../../bus/tokens";
import { Defaults, type NatsSettings } from "../runtime/config";
import { listenDirect } from "../runtime/direct-transport";
import { ActorOps, type OpsHttpConfig } from "../runtime/http-ops";
import type { ActorMetrics } from "../runtime/metrics";
import { NodeDirectory } from "../runtime/node-directory";
import { FreeQueue } from "./free-queue";
import { registerShardMetrics } from "./shard-metrics";
import { ShardLogic, type MoveWork, type ShardLimits } from "./shard-logic";
import type { Extent } from "./namespace";

export interface ShardConfig extends NatsSettings, ShardLimits, OpsHttpConfig {
  /** Interface and port of the direct transport (port 0 picks a free one). */
  readonly host?: string;
  readonly port?: number;
  /** Serve the direct transport over TLS only, with this certificate (clients verify it with the cluster's CA). */
  readonly tls?: ServerTlsFiles;
  readonly heartbeatIntervalMs?: number;
}

/** What a shard's shell runs on: a bus, a clock with timers, and entropy for ids. */
export interface ShardEnv {
  readonly bus: Bus;
  readonly clock: TimerClock;
  readonly entropy: Entropy;
}

/** Extents one shard moves at once when a node is drained. */
const migrateInflightMax = 4;
/** Room in a request frame for a full batch of receipts (object.commit, object.written): 256 bytes of JSON each, more than the longest takes. */
const receiptsFrameBytesMax = WireLimits.receiptsPerCallMax * 256;
const noBytes = new Uint8Array(0);
/** How long the job token a migration run hands the nodes lasts (the run's connections authenticate with it). */
const moveTokenMs = 10 * 60_000;

/** How an extent was moved, if it was. */
const Moved = { No: 0, Direct: 1, Relayed: 2 } as const;
type Moved = (typeof Moved)[keyof typeof Moved];

/**
 * A metadata shard's shell: serves the ShardLogic's operations over the bus
 * (and the direct transport, when started with one), publishes its
 * heartbeat and usage, sweeps expired writes on the clock, frees extents on
 * nodes through a bounded queue, and moves extents off draining nodes.
 */
export class MetadataShard {
  readonly #log = logger("shard");
  readonly logic: ShardLogic;
  readonly nodes: NodeDirectory;
  readonly #frees: FreeQueue;
  readonly #served: Closable[] = [];
  readonly #timers: Timer[] = [];
  readonly #tokens: TokenAuthority;
  /** Metrics, readiness and the HTTP server operators scrape and probe. */
  readonly #ops: ActorOps;
  #tcp: TcpServer | undefined;
  /** Proves this shard's identity to clients of its direct transport. */
  #identity: TransportIdentity | undefined;
  #stopped = false;

  private constructor(readonly config: ShardConfig, private readonly env: ShardEnv, ops = ActorOps.detached("shard", config.shardId)) {
    checkSubjectToken("shard", config.shardId);
    this.#ops = ops;
    this.#tokens = new TokenAuthority(config.secret, env.clock);
    this.nodes = new NodeDirectory(env.clock, this.heartbeatIntervalMs);
    this.#frees = new FreeQueue((nodeId) => env.bus.caller(Subjects.nodeControl(nodeId), Defaults.rpcTimeoutMs), Defaults.freeInflightMax, Defaults.freeQueueMax,
      (nodeId) => this.nodes.freedSince(nodeId), { ms: Defaults.freeLingerMs, after: (ms, fn) => env.clock.after(ms, fn) });
    this.logic = new ShardLogic(config, this.#tokens, env.clock, this.nodes, (jobId, extents) => this.#frees.enqueue(jobId, extents), env.entropy);
    registerShardMetrics(ops.metrics, { logic: this.logic, frees: this.#frees, nodes: this.nodes, tcp: () => this.#tcp?.stats });
  }

  /** A shard on NATS and the direct transport: what an actor process runs. */
  static async start(config: ShardConfig, clock: TimerClock = systemClock): Promise<MetadataShard> {
    checkSubjectToken("shard", config.shardId);
    // Probes answer (not ready) while the shard connects.
    const ops = await ActorOps.start(config, "shard", config.shardId);
    let nc: NatsConnection;
    try {
      nc = await connectAs(config, Role.Shard, config.shardId, { name: `pocket-shard-${config.shardId}` });
    } catch (e) {
      await ops.close();
      throw e;
    }
    ops.followNats(nc);
    const shard = new MetadataShard(config, { bus: new NatsBus(nc, Defaults.rpcTimeoutMs), clock, entropy: systemEntropy }, ops);
    try {
      shard.#identity = newTransportIdentity(config.shardId);
      const frameBytesMax = shard.logic.inlineBytesMax + 64 * 1024 + receiptsFrameBytesMax;
      shard.#tcp = await listenDirect(shard.router(), config, frameBytesMax, shard.#identity, shard.#tokens);
      shard.#serve();
      // Ready only once the server has its subscriptions.
      await shard.env.bus.flush();
    } catch (e) {
      await shard.stop();
      throw e;
    }
    ops.serving();
    return shard;
  }

  /** A shard on a bus only (no direct transport): the simulation runs these. */
  static over(config: ShardConfig, env: ShardEnv, ops?: ActorOps): MetadataShard {
    const shard = new MetadataShard(config, env, ops);
    shard.#serve();
    return shard;
  }

  get shardId(): string { return this.config.shardId; }
  get heartbeatIntervalMs(): number { return this.config.heartbeatIntervalMs ?? Defaults.heartbeatIntervalMs; }
  /** host:port of the direct transport ("" without one). */
  get addr(): string { return this.#tcp?.address ?? ""; }
  /** host:port of the HTTP server for metrics and probes ("" without one). */
  get httpAddr(): string { return this.#ops.httpAddr; }
  get metrics(): ActorMetrics { return this.#ops.metrics; }

  #serve(): void {
    const { bus, clock } = this.env;
    this.nodes.follow(bus);
    // Lambdas' requests on their job's subjects; the controller's on the shard's control subjects (bus only).
    this.#served.push(bus.serve(Subjects.shardJobs(this.shardId), this.router(), { jobScoped: true }));
    this.#served.push(bus.serve(Subjects.shardControl(this.shardId), this.controlRouter()));
    this.#report();
    this.#timers.push(clock.every(this.heartbeatIntervalMs, () => this.#report()));
    this.#timers.push(clock.every(Math.min(5_000, this.logic.pendingWriteTtlMs), () => this.logic.sweepExpiredWrites()));
  }

  /** Cluster-only operations: served on the shard's control subjects, which only the controller may publish to. */
  controlRouter(): Router {
    const l = this.logic;
    return new Router().observe(this.metrics.requests)
      .on(ShardOps.attachJob, (req) => l.attachJob(req))
      .on(ShardOps.detachJob, (req) => l.detachJob(req))
      .on(ShardOps.setWeights, (req) => l.setWeights(req))
      .on(ShardOps.migrate, (req) => this.migrateFrom(req.nodeId));
  }

  /** A job's operations: on the direct transport and on the job's bus subjects. */
  router(): Router {
    const l = this.logic;
    return new Router(tokenScope(this.#tokens)).observe(this.metrics.requests)
      .on(ShardOps.info, () => ({
        shardId: this.shardId, addr: this.addr, key: this.#identity?.publicKey ?? "", inlineBytesMax: l.inlineBytesMax, extentBytesMax: l.extentBytesMax,
      }))
      .on(ShardOps.objectPut, (req, ctx) => l.putInline(req, ctx.payload ?? noBytes))
      .on(ShardOps.objectGet, (req) => l.get(req))
      .on(ShardOps.objectCreate, (req) => l.create(req))
      .on(ShardOps.objectExtend, (req) => l.extend(req))
      .on(ShardOps.objectWritten, (req) => l.written(req))
      .on(ShardOps.objectCommit, (req) => l.commit(req))
      .on(ShardOps.objectAbort, (req) => l.abort(req))
      .on(ShardOps.objectLookup, (req) => l.lookup(req))
      .on(ShardOps.stat, (req) => l.stat(req))
      .on(ShardOps.delete, (req) => l.delete(req))
      .on(ShardOps.mkdir, (req) => l.mkdir(req))
      .on(ShardOps.list, (req) => l.list(req))
      .on(ShardOps.count, (req) => l.count(req));
  }

  /** Abandons puts that were not committed in time, freeing their extents. */
  sweepExpiredWrites(): number {
    return this.logic.sweepExpiredWrites();
  }

  /** Resolves once every queued free has been sent. */
  freesIdle(): Promise<void> {
    return this.#frees.idle();
  }

  /** Frees queued or in flight. */
  get freesPending(): number {
    return this.#frees.pending;
  }

  #report(): void {
    if (this.#stopped) return;
    const { heartbeat, usage } = this.logic.reports(this.addr, this.#identity?.publicKey ?? "");
    this.env.bus.publish(Subjects.shardHeartbeat(this.shardId), heartbeat);
    for (const u of usage) this.env.bus.publish(Subjects.shardUsage(this.shardId), u);
  }

  /**
   * Moves every extent on `nodeId` (a draining node past its deadline) to the
   * job's other nodes: copy, swap the object's layout to the copy, free the
   * original. An object overwritten or deleted meanwhile keeps its new state
   * and the copy is freed. Readers holding the old layout still read the old
   * extent until the node goes away, then re-read the layout. Source bytes
   * that do not match the committed crc are not copied (counted as failed):
   * the object keeps pointing at them, and readers get Integrity errors
   * rather than a copy that looks sound.
   */
  async migrateFrom(nodeId: string): Promise<{ extents: number; bytes: number; failed: number; directBytes: number }> {
    let extents = 0, bytes = 0, failed = 0, directBytes = 0;
    // One token per job for the run (the draining node keeps one connection per destination for a job's copies),
    // made anew once half its life is gone, so a long run never hands out an expired one.
    const tokens = new Map<string, { readonly token: string; readonly atMs: number }>();
    const tokenFor = (jobId: string): string => {
      const now = this.env.clock.now();
      let t = tokens.get(jobId);
      if (t === undefined || now - t.atMs > moveTokenMs / 2) tokens.set(jobId, (t = { token: this.#tokens.issueJob(jobId, this.shardId, moveTokenMs), atMs: now }));
      return t.token;
    };
    await mapLimit(this.logic.extentsOn(nodeId), migrateInflightMax, async (m) => {
      try {
        const moved = await this.#moveExtent(nodeId, m, tokenFor(m.job.jobId));
        if (moved !== Moved.No) {
          extents++;
          bytes += m.extent.length;
          if (moved === Moved.Direct) directBytes += m.extent.length;
        }
      } catch (e) {
        failed++;
        this.#log.warn("extent not moved", { jobId: m.job.jobId, extentId: m.extent.extentId, nodeId, ...errorFields(e) });
      }
    });
    return { extents, bytes, failed, directBytes };
  }

  /**
   * Copies one extent off `nodeId` after checking it against its committed
   * crc; says whether the object now uses the copy, and how it got there.
   * Where both nodes have a direct transport the draining node sends it to
   * the other straight (extent.copy); else, or if that fails for any reason
   * but bad bytes, the shard reads it and writes it on (over NATS).
   */
  async #moveExtent(nodeId: string, m: MoveWork, token: string): Promise<Moved> {
    const { job, extent } = m;
    const plan = this.logic.planMove(m, nodeId);
    const from = this.logic.ref({ nodeId, extentId: extent.extentId, length: extent.length });
    const to = this.logic.ref(plan.copy);
    if (from.addr !== "" && to.addr !== "" && extent.crc !== undefined) {
      try {
        await this.env.bus.caller(Subjects.nodeControl(nodeId), Defaults.rpcTimeoutMs).call(NodeOps.extentCopy, {
          jobId: job.jobId, extentId: extent.extentId, crc: extent.crc, token,
          to: { nodeId: to.nodeId, addr: to.addr, key: to.key, extentId: plan.copy.extentId, grant: plan.grant },
        });
        return this.logic.finishMove(m, plan.copy) ? Moved.Direct : Moved.No;
      } catch (e) {
        if (isPocketError(e, ErrorCode.Integrity)) throw e;
        // The copy may have landed before the failure: it is freed (a node also refuses a late write to a freed extent).
        this.logic.abandonMove(m, plan.copy);
        this.#log.warn("node-to-node copy failed; the shard moves the extent itself", { jobId: job.jobId, extentId: extent.extentId, nodeId, to: to.nodeId, ...errorFields(e) });
        return (await this.#relayExtent(nodeId, m, token)) ? Moved.Relayed : Moved.No;
      }
    }
    return (await this.#relayExtent(nodeId, m, token, plan)) ? Moved.Relayed : Moved.No;
  }

  /** Moves an extent through this shard: read from `nodeId` as the job, checked, written to the copy's node (a new plan unless given). */
  async #relayExtent(nodeId: string, m: MoveWork, token: string, planned?: { copy: Extent; grant: string }): Promise<boolean> {
    const { job, extent } = m;
    const read = await this.#node(nodeId, job.jobId).call(NodeOps.extentRead, { token, extentId: extent.extentId });
    const bytes = read.payload ?? noBytes;
    const crc = crc32(bytes);
    if (bytes.byteLength !== extent.length || crc !== extent.crc) {
      throw new IntegrityError(`extent ${extent.extentId} on ${nodeId}: read ${bytes.byteLength} bytes with crc ${crc}, committed ${extent.length} with crc ${extent.crc}; not copied`);
    }
    const { copy, grant } = planned ?? this.logic.planMove(m, nodeId);
    await this.#node(copy.nodeId, job.jobId).call(NodeOps.extentWrite, { token, extentId: copy.extentId, grant, crc: copy.crc }, { payload: bytes });
    return this.logic.finishMove(m, copy);
  }

  /** A node's operations for one job (migration reads and writes extents as the job, under grants it signs). */
  #node(nodeId: string, jobId: string) {
    return this.env.bus.caller(Subjects.nodeJob(nodeId, jobId), Defaults.rpcTimeoutMs);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#ops.stopping();
    for (const t of this.#timers) t.cancel();
    for (const s of this.#served) s.close();
    this.#frees.flush(); // frees waiting to be batched go out before the bus drains
    // Every step runs whatever failed before it: the HTTP port is let go (inline, in a process that goes on).
    await closeInTurn([
      () => this.#tcp?.close(),
      () => this.nodes.stop(),
      () => this.env.bus.drain(),
      () => this.#ops.close(),
    ], (e) => this.#log.error("stopping: another step failed too", errorFields(e)));
  }
}
