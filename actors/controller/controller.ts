import { randomBytes } from "node:crypto";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { groupBy, interval, mergeMap, Observable, Subject, switchMap, tap, throttleTime, timer, type Subscription as RxSubscription } from "rxjs";
import { CapacityExceededError, ErrorCode, InvalidArgumentError, isPocketError, NodeUnavailableError, NotFoundError, UnknownJobError } from "../../schemas/errors";
import {
  ControllerOps, NodeHeartbeatSchema, NodeOps, ShardHeartbeatSchema, ShardOps, ShardUsageSchema,
  type NodeHeartbeat, type NodeInfo, type ShardHeartbeat, type ShardUsage,
} from "../../schemas/operations";
import { EventPublisher, ensureEventStream } from "../../bus/events";
import { subscribeValidated } from "../../bus/subscribe";
import { NatsCaller, serveOnNats } from "../../bus/nats-rpc";
import { connectAs } from "../../bus/nats-connect";
import { readPrivateFile } from "../../lib/private-file";
import { CredentialIssuer, Role } from "../../bus/credentials";
import { Router } from "../../bus/router";
import { Subjects } from "../../bus/subjects";
import type { ServerTlsFiles } from "../../bus/tls";
import { createOrchestrator, type Orchestrator, type OrchestratorConfig } from "../orchestrator";
import { systemClock, type Clock } from "../../lib/clock";
import { settleLimit } from "../../lib/concurrency";
import { Defaults, type NatsSettings } from "../runtime/config";
import { errorFields, logger } from "../../lib/log";
import { TokenAuthority } from "../../bus/tokens";
import { demandInNodes } from "./allocation";
import { ControllerCore, type JobBook } from "./core";
import type { ControllerInput, Decision } from "./inputs";
import { JobState, NodeState } from "./machines";
import { nodeTypeOf, policyWith, type ScalingPolicy } from "./policy";
import { ControllerStore } from "./store";
import { TraceWriter } from "./trace";

export interface ControllerConfig extends NatsSettings {
  readonly heartbeatIntervalMs?: number;
  readonly heartbeatsMissedMax?: number;
  readonly jobTokenTtlMs?: number;
  readonly jobsMax?: number;
  /** Durable state: a SQLite file path (default `pocket-controller.sqlite`) or a `postgres://` URL. */
  readonly store?: string;
  /** Sizing and scaling; embedded defaults for anything not given. */
  readonly policy?: Partial<ScalingPolicy>;
  /** Who starts and stops storage nodes; events-only by default. */
  readonly orchestrator?: OrchestratorConfig;
  /** Every input is appended here as NDJSON, for `pocket replay`. */
  readonly traceFile?: string;
  /** Passed to the storage nodes the orchestrator launches. */
  readonly extentBytesMax?: number;
  /**
   * How the controller mints NATS credentials: a lambda credential for each job
   * it registers, and its own for each node it launches. The account's public
   * key and a file holding one of its signing keys' seed (0600).
   */
  readonly credentialIssuer?: { readonly account: string; readonly signingSeedFile: string };
  /** The certificate the storage nodes it launches serve their direct transport with (TLS only); they get `natsTlsCa` too. */
  readonly nodeTls?: ServerTlsFiles;
}

interface ShardRecord {
  heartbeat: ShardHeartbeat;
  lastSeenMs: number;
}

const fanoutMax = 16;
/** Effects (launches, weight pushes, reclaims, moves) carried out at once; more wait, up to effectsQueueMax. */
const effectsInflightMax = 8;
const effectsQueueMax = 10_000;
const migrateAttemptsMax = 5;
const pruneEveryMs = 3600_000;
const endedJobsKeptMs = 7 * 24 * 3600_000;

/**
 * The controller's actor shell: feeds bus traffic and API calls into the
 * pure ControllerCore as recorded inputs, persists what changed, publishes
 * every decision on the event stream, and carries out the decisions that
 * need doing (launch or remove nodes, push weight maps to shards, reclaim
 * expired jobs, move extents off draining nodes).
 */
export class Controller {
  readonly #log = logger("controller");
  readonly #shards = new Map<string, ShardRecord>();
  /** Mints lambda and node credentials; undefined on a bus without authentication. */
  readonly #issuer: CredentialIssuer | undefined;
  readonly #inputs = new Subject<ControllerInput>();
  readonly #effects: Decision[] = [];
  /** Latency-sensitive NVMe jobs: the nodes already told to reserve for them. */
  readonly #qosSent = new Map<string, Set<string>>();
  #effectsRunning = 0;
  #nats: NatsConnection | undefined;
  #events: EventPublisher | undefined;
  #orchestrator: Orchestrator | undefined;
  #trace: TraceWriter | undefined;
  #subs: Subscription[] = [];
  #rx: RxSubscription[] = [];
  #lastSave: Promise<void> = Promise.resolve();
  #nextSave: Promise<void> | undefined;
  #lastPruneMs = 0;
  #stopped = false;

  private constructor(
    readonly config: ControllerConfig,
    readonly core: ControllerCore,
    readonly store: ControllerStore,
    private readonly tokens: TokenAuthority,
    private readonly clock: Clock,
  ) {
    const ci = config.credentialIssuer;
    this.#issuer = ci ? CredentialIssuer.fromSeed(ci.account, readPrivateFile(ci.signingSeedFile)) : undefined;
  }

  static async start(config: ControllerConfig, clock: Clock = systemClock): Promise<Controller> {
    const policy = policyWith({
      ...config.policy,
      heartbeatIntervalMs: config.heartbeatIntervalMs ?? config.policy?.heartbeatIntervalMs ?? Defaults.heartbeatIntervalMs,
      heartbeatsMissedMax: config.heartbeatsMissedMax ?? config.policy?.heartbeatsMissedMax ?? Defaults.heartbeatsMissedMax,
    });
    const store = await ControllerStore.open(config.store ?? "pocket-controller.sqlite");
    let c: Controller | undefined;
    try {
      const state = await store.load();
      c = new Controller(config, new ControllerCore(policy, state), store, new TokenAuthority(config.secret, clock), clock);
      if (state) c.#log.info("state loaded", { store: store.location, jobs: state.jobs.length, nodes: state.nodes.length });
      await c.#start();
      return c;
    } catch (e) {
      if (c) await c.stop();
      else await store.close();
      throw e;
    }
  }

  get heartbeatIntervalMs(): number { return this.core.policy.heartbeatIntervalMs; }
  get orchestrator(): Orchestrator | undefined { return this.#orchestrator; }

  async #start(): Promise<void> {
    const nc = await connectAs(this.config, Role.Controller, "controller", { name: "pocket-controller" });
    this.#nats = nc;
    const withJetStream = await ensureEventStream(nc).catch((e: unknown) => {
      this.#log.warn("event stream unavailable; events go out as plain messages", errorFields(e));
      return false;
    });
    this.#events = new EventPublisher(nc, withJetStream);
    if (this.config.traceFile) this.#trace = new TraceWriter(this.config.traceFile);
    this.#orchestrator = await createOrchestrator(this.config.orchestrator ?? { kind: "events-only" }, {
      natsUrl: this.config.natsUrl, secret: this.config.secret, heartbeatIntervalMs: this.config.heartbeatIntervalMs, extentBytesMax: this.config.extentBytesMax,
      ...(this.#issuer ? { nodeCredentials: (nodeId: string) => this.#issuer!.node(nodeId) } : {}),
      ...(this.config.natsTlsCa !== undefined ? { natsTlsCa: this.config.natsTlsCa } : {}),
      ...(this.config.nodeTls !== undefined ? { tls: this.config.nodeTls } : {}),
    });

    // One ordered stream of inputs; every one is recorded, then applied.
    this.#rx.push(this.#inputs.subscribe((input) => {
      try {
        this.#apply(input);
      } catch (e) {
        // A fault in the logic must not end the input stream: log it and keep serving.
        this.#log.error("input not applied", { kind: input.kind, ...errorFields(e) });
      }
    }));
    this.#inputs.next({ kind: "start", atMs: this.clock.now(), policy: this.core.policy });
    this.#rx.push(this.#telemetry(nc).subscribe((hb) => {
      const { sentAtMs: _sent, key: _key, ...rest } = hb;
      if (!this.core.node(hb.nodeId) && this.core.nodes().length >= Defaults.clusterMembersMax) {
        this.#log.warn("too many storage nodes; heartbeat ignored", { nodeId: hb.nodeId });
        return;
      }
      this.#inputs.next({ kind: "node.heartbeat", atMs: this.clock.now(), hb: rest });
    }));
    this.#subs.push(subscribeValidated(nc, Subjects.shardUsageAll, ShardUsageSchema, this.#log, (u: ShardUsage) => {
      // A shard reports only the jobs it holds.
      const jobs = u.jobs.filter((j) => this.core.job(j.jobId)?.shardId === u.shardId);
      this.#inputs.next({ kind: "shard.usage", atMs: this.clock.now(), shardId: u.shardId, jobs });
    }, { subjectOf: (u) => Subjects.shardUsage(u.shardId) }));
    this.#subs.push(subscribeValidated(nc, Subjects.shardHeartbeatAll, ShardHeartbeatSchema, this.#log, (hb) => {
      if (!this.#shards.has(hb.shardId) && this.#shards.size >= Defaults.clusterMembersMax) {
        this.#log.warn("too many shards; heartbeat ignored", { shardId: hb.shardId });
        return;
      }
      this.#shards.set(hb.shardId, { heartbeat: hb, lastSeenMs: this.clock.now() });
    }, { subjectOf: (hb) => Subjects.shardHeartbeat(hb.shardId) }));
    this.#subs.push(serveOnNats(nc, Subjects.controllerDriver, this.driverRouter()));
    this.#subs.push(serveOnNats(nc, Subjects.controllerAdmin, this.adminRouter()));
    this.#rx.push(interval(this.heartbeatIntervalMs).subscribe(() => this.tick()));
  }

  /**
   * Node heartbeats as an rxjs stream: at most two per node per interval go
   * on (a node that floods cannot swamp the controller), and a node that
   * goes silent is logged when its stream times out (its lifecycle machine
   * decides `failed` on the controller's ticks, where replay can see it).
   */
  #telemetry(nc: NatsConnection): Observable<NodeHeartbeat> {
    const silenceMs = this.heartbeatIntervalMs * this.core.policy.heartbeatsMissedMax;
    const heartbeats = new Observable<NodeHeartbeat>((sub) => {
      const s = subscribeValidated(nc, Subjects.nodeHeartbeatAll, NodeHeartbeatSchema, this.#log, (hb) => sub.next(hb), {
        subjectOf: (hb) => Subjects.nodeHeartbeat(hb.nodeId),
      });
      return () => s.unsubscribe();
    });
    return heartbeats.pipe(
      // A node's group ends when it goes silent (logged); its next heartbeat starts a new one.
      groupBy((hb) => hb.nodeId, {
        duration: (perNode) => perNode.pipe(
          switchMap(() => timer(silenceMs)),
          tap(() => this.#log.warn("storage node silent", { nodeId: perNode.key, silenceMs })),
        ),
      }),
      mergeMap((perNode) => perNode.pipe(throttleTime(this.heartbeatIntervalMs / 2, undefined, { leading: true, trailing: true }))),
    );
  }

  /** The periodic pass (every heartbeat interval). */
  tick(): void {
    if (this.#stopped) return;
    this.#inputs.next({ kind: "tick", atMs: this.clock.now() });
    if (this.clock.now() - this.#lastPruneMs > pruneEveryMs) {
      this.#lastPruneMs = this.clock.now();
      void this.store.prune(this.clock.now() - endedJobsKeptMs).catch((e: unknown) => this.#log.warn("prune failed", errorFields(e)));
    }
  }

  #apply(input: ControllerInput): Decision[] {
    this.#trace?.write(input);
    this.#events?.input(input.kind, input);
    const decisions = this.core.apply(input);
    for (const d of decisions) {
      this.#events?.event(d.kind, d);
      if (d.kind === "node.failed") this.#log.warn("storage node failed: heartbeats missed", { nodeId: d.nodeId });
      else if (d.kind.startsWith("scale.") || d.kind.startsWith("node.")) this.#log.info(d.kind, d);
      if (this.#effects.length >= effectsQueueMax) {
        this.#log.error("effect queue full; decision not carried out", { kind: d.kind });
        continue;
      }
      this.#effects.push(d);
    }
    void this.#flush().catch(() => undefined);
    this.#pumpEffects();
    return decisions;
  }

  /** Writes what changed since the last save; resolves once this call's changes are stored. */
  #flush(): Promise<void> {
    if (!this.#nextSave) {
      const next = this.#lastSave.then(async () => {
        this.#nextSave = undefined;
        await this.store.save(this.core, this.core.takeDirty(), this.clock.now());
      });
      this.#nextSave = next;
      this.#lastSave = next.catch((e: unknown) => this.#log.error("state not saved", { store: this.store.location, ...errorFields(e) }));
    }
    return this.#nextSave;
  }

  #pumpEffects(): void {
    while (this.#effectsRunning < effectsInflightMax && this.#effects.length > 0) {
      const d = this.#effects.shift()!;
      this.#effectsRunning++;
      this.#carryOut(d)
        .catch((e: unknown) => this.#log.warn("decision not carried out", { kind: d.kind, ...errorFields(e) }))
        .finally(() => { this.#effectsRunning--; this.#pumpEffects(); });
    }
  }

  async #carryOut(d: Decision): Promise<void> {
    if (this.#stopped) return;
    switch (d.kind) {
      case "node.launch": {
        const type = nodeTypeOf(this.core.policy, d.tier);
        try {
          await this.#orchestrator!.launch({ nodeId: d.nodeId, tier: d.tier, capacityBytes: type?.capacityBytes ?? Defaults.dramCapacityBytes });
        } catch (e) {
          this.#events?.event("node.launch-failed", { atMs: this.clock.now(), nodeId: d.nodeId, tier: d.tier, ...errorFields(e) });
          throw e;
        }
        return;
      }
      case "node.removed": {
        await new NatsCaller(this.#nats!, Subjects.nodeControl(d.nodeId), 2_000).call(NodeOps.retire, {}).catch(() => undefined);
        await this.#orchestrator!.remove(d.nodeId);
        return;
      }
      case "job.weights": {
        const j = this.core.job(d.jobId);
        if (!j || !this.#isLive(j)) return;
        await this.#shard(j.shardId).call(ShardOps.setWeights, { jobId: j.jobId, weights: j.weights });
        await this.#reserveLatencyCritical(j);
        return;
      }
      case "job.registered": {
        const j = this.core.job(d.jobId);
        if (j && this.#isLive(j)) await this.#reserveLatencyCritical(j);
        return;
      }
      case "job.deregistered":
        this.#qosSent.delete(d.jobId);
        return;
      case "job.expired": {
        this.#qosSent.delete(d.jobId);
        this.#log.warn("job lease ran out; reclaiming", { jobId: d.jobId });
        await this.#reclaim(d.jobId, d.shardId);
        return;
      }
      case "node.migrate":
        await this.#migrate(d.nodeId);
        return;
      default:
        return;
    }
  }

  /**
   * A latency-sensitive job on NVMe becomes a latency-critical tenant on each
   * of its nodes, with its share of the job's throughput as 4 KiB IOPS
   * (the job's `readRatio` hint, half reads without one) at the device model's p95.
   * A node whose admission control refuses it keeps the job best-effort; the
   * refusal is an event.
   */
  async #reserveLatencyCritical(j: JobBook): Promise<void> {
    if (j.tier !== "nvme" || !j.hints.latencySensitive) return;
    let sent = this.#qosSent.get(j.jobId);
    if (!sent) this.#qosSent.set(j.jobId, (sent = new Set()));
    for (const w of j.weights) {
      if (sent.has(w.nodeId)) continue;
      sent.add(w.nodeId);
      const slo = { iops: Math.max(1, (j.demand.throughputBps * w.weight) / 4096), readRatio: j.hints.readRatio ?? 0.5, p95Us: 0 };
      try {
        await new NatsCaller(this.#nats!, Subjects.nodeControl(w.nodeId), 5_000).call(NodeOps.jobQos, { jobId: j.jobId, slo });
        this.#events?.event("job.reserved", { atMs: this.clock.now(), jobId: j.jobId, nodeId: w.nodeId, slo });
      } catch (e) {
        this.#events?.event("job.reservation-refused", { atMs: this.clock.now(), jobId: j.jobId, nodeId: w.nodeId, slo, ...errorFields(e) });
      }
    }
  }

  async #migrate(nodeId: string): Promise<void> {
    for (let attempt = 1; attempt <= migrateAttemptsMax && !this.#stopped; attempt++) {
      const shards = [...this.#shards.values()].filter((s) => this.#shardLive(s)).map((s) => s.heartbeat.shardId);
      const results = await settleLimit(shards, fanoutMax, (id) =>
        new NatsCaller(this.#nats!, Subjects.shardControl(id), 10 * 60_000).call(ShardOps.migrate, { nodeId }));
      const ok = results.every((r) => r.status === "fulfilled" && r.value.reply.failed === 0);
      const moved = results.reduce((s, r) => s + (r.status === "fulfilled" ? r.value.reply.bytes : 0), 0);
      this.#events?.event("node.migrated", { atMs: this.clock.now(), nodeId, bytes: moved, complete: ok, attempt });
      if (ok) {
        this.#inputs.next({ kind: "node.migrated", atMs: this.clock.now(), nodeId });
        return;
      }
      await new Promise((r) => setTimeout(r, 5_000));
    }
  }

  /** Drops a job's namespace on its shard and its bytes on every node. */
  async #reclaim(jobId: string, shardId: string): Promise<number> {
    try {
      await this.#shard(shardId).call(ShardOps.detachJob, { jobId });
    } catch (e) {
      if (!isPocketError(e, ErrorCode.NodeUnavailable) && !isPocketError(e, ErrorCode.UnknownJob)) throw e;
      this.#log.warn("shard did not detach the job", { jobId, shardId, ...errorFields(e) });
    }
    // Every node, not only the weighted ones: weights may have changed over the job's life.
    const nodes = this.core.nodes().filter((n) => this.core.nodeState(n) !== NodeState.Removed);
    const results = await settleLimit(nodes, fanoutMax, (n) =>
      new NatsCaller(this.#nats!, Subjects.nodeControl(n.nodeId), 5_000).call(NodeOps.jobDrop, { jobId }));
    let freed = 0;
    for (const r of results) if (r.status === "fulfilled") freed += r.value.reply.freedBytes;
    return freed;
  }

  /** What job drivers may call (on `pocket.ctl.driver.*`). */
  driverRouter(): Router {
    return new Router()
      .on(ControllerOps.jobRegister, async (req) => {
        const hints = req.hints ?? {};
        const jobsMax = this.config.jobsMax ?? Defaults.jobsMax;
        if (this.core.liveJobs().length >= jobsMax) throw new CapacityExceededError(`${jobsMax} jobs are registered; deregister some first`);
        const shardId = this.#pickShard();
        const jobId = `j-${randomBytes(8).toString("hex")}`;
        const now = this.clock.now();
        this.#inputs.next({ kind: "job.register", atMs: now, jobId, name: req.name, shardId, hints, ...(req.leaseMs ? { leaseMs: req.leaseMs } : {}) });
        const job = this.core.job(jobId)!;
        try {
          let sent = job.weights;
          await this.#shard(shardId).call(ShardOps.attachJob, { jobId, name: req.name, weights: sent });
          // Weights that changed while the shard was attaching (a node came up) go out now.
          if (job.weights !== sent) {
            sent = job.weights;
            await this.#shard(shardId).call(ShardOps.setWeights, { jobId, weights: sent });
          }
          await this.#flush();
        } catch (e) {
          this.#inputs.next({ kind: "job.deregister", atMs: this.clock.now(), jobId });
          throw e;
        }
        const ttl = this.config.jobTokenTtlMs ?? Defaults.jobTokenTtlMs;
        return {
          jobId, token: this.tokens.issueJob(jobId, shardId, ttl), shardId, expiresAtMs: now + ttl,
          leaseExpiresAtMs: job.life.context.leaseExpiresAtMs, leaseMs: job.life.context.leaseMs, tier: job.tier, weights: job.weights,
          ...(this.#issuer ? { credentials: this.#issuer.lambda(jobId, shardId, now + ttl) } : {}),
        };
      })
      .on(ControllerOps.jobRenew, (req) => {
        const j = this.#liveJob(this.tokens.verifyJob(req.token).jobId);
        this.#inputs.next({ kind: "job.renew", atMs: this.clock.now(), jobId: j.jobId });
        return { jobId: j.jobId, leaseExpiresAtMs: j.life.context.leaseExpiresAtMs };
      })
      .on(ControllerOps.jobDeregister, async (req) => {
        const j = this.#liveJob(this.tokens.verifyJob(req.token).jobId);
        // The shard that does not answer in time keeps the job registered: the caller retries rather than leak it.
        const freedBytes = await this.#reclaim(j.jobId, j.shardId);
        this.#inputs.next({ kind: "job.deregister", atMs: this.clock.now(), jobId: j.jobId });
        await this.#flush();
        return { jobId: j.jobId, freedBytes };
      });
  }

  /** What operators may call (on `pocket.ctl.admin.*`): lists, usage, retiring nodes. */
  adminRouter(): Router {
    return new Router()
      .on(ControllerOps.jobList, () => ({
        jobs: this.core.liveJobs().map((j) => ({
          jobId: j.jobId, name: j.name, shardId: j.shardId, registeredAtMs: j.registeredAtMs, hints: j.hints, weights: j.weights,
          state: this.core.jobState(j), tier: j.tier, leaseExpiresAtMs: j.life.context.leaseExpiresAtMs,
        })),
      }))
      .on(ControllerOps.jobUsage, async (req) => {
        const j = this.core.job(req.jobId) ?? (await this.store.job(req.jobId));
        if (!j) throw new UnknownJobError(`job ${req.jobId} is not known`);
        return this.#usage(j);
      })
      .on(ControllerOps.nodeList, () => ({ nodes: this.#nodeInfos() }))
      .on(ControllerOps.nodeRetire, (req) => {
        const n = this.core.node(req.nodeId);
        if (!n || this.core.nodeState(n) === NodeState.Removed) throw new NotFoundError(`node ${req.nodeId} is not known`);
        const state = this.core.nodeState(n);
        if (state !== NodeState.Active && state !== NodeState.Draining) throw new InvalidArgumentError(`node ${req.nodeId} is ${state}; only an active node can be retired`);
        this.#inputs.next({ kind: "node.retire", atMs: this.clock.now(), nodeId: req.nodeId });
        return { nodeId: req.nodeId, state: this.core.nodeState(n) };
      })
      .on(ControllerOps.shardList, () => ({
        shards: [...this.#shards.values()].map((s) => ({
          shardId: s.heartbeat.shardId,
          state: this.#shardLive(s) ? "active" : "failed",
          jobs: s.heartbeat.jobs,
          objects: s.heartbeat.objects,
          lastSeenMs: s.lastSeenMs,
        })),
      }));
  }

  #liveJob(jobId: string): JobBook {
    const j = this.core.job(jobId);
    if (!j || !this.#isLive(j)) throw new UnknownJobError(`job ${jobId} is not registered`);
    return j;
  }

  #isLive(j: JobBook): boolean {
    const s = this.core.jobState(j);
    return s === JobState.Registered || s === JobState.Active;
  }

  #usage(j: JobBook): ReturnType<typeof usageReport> {
    return usageReport(j, this.core.jobState(j), this.core.policy);
  }

  #nodeInfos(): NodeInfo[] {
    const weights = new Map<string, Array<{ jobId: string; weight: number }>>();
    for (const j of this.core.liveJobs()) {
      for (const w of j.weights) {
        let list = weights.get(w.nodeId);
        if (!list) weights.set(w.nodeId, (list = []));
        list.push({ jobId: j.jobId, weight: w.weight });
      }
    }
    return this.core.nodes().filter((n) => this.core.nodeState(n) !== NodeState.Removed).map((n) => {
      const last = n.samples[n.samples.length - 1];
      const u = this.core.nodeUtilisation(n);
      const r = this.core.reservedOn(n.nodeId);
      return {
        nodeId: n.nodeId, tier: n.tier, addr: n.addr, state: this.core.nodeState(n), launched: n.launched,
        capacityBytes: n.capacityBytes, usedBytes: n.usedBytes, extents: n.extents,
        cpu: last?.cpu ?? 0, bytesInPerSec: last?.netBps ?? 0, bytesOutPerSec: 0,
        lastSeenMs: n.life.context.lastSeenMs,
        utilisation: { cpu: round4(u.cpu), network: round4(u.network), capacity: round4(u.capacity) },
        reservedBytes: Math.round(r.bytes), reservedBps: Math.round(r.bps),
        jobWeights: weights.get(n.nodeId) ?? [],
      };
    });
  }

  #shardLive(s: ShardRecord): boolean {
    return this.clock.now() - s.lastSeenMs <= this.heartbeatIntervalMs * this.core.policy.heartbeatsMissedMax;
  }

  /** The live shard with the fewest live jobs. */
  #pickShard(): string {
    const counts = new Map<string, number>();
    for (const s of this.#shards.values()) if (this.#shardLive(s)) counts.set(s.heartbeat.shardId, 0);
    if (counts.size === 0) throw new NodeUnavailableError("no metadata shard is up");
    for (const j of this.core.liveJobs()) if (counts.has(j.shardId)) counts.set(j.shardId, counts.get(j.shardId)! + 1);
    return [...counts.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  }

  #shard(shardId: string): NatsCaller {
    return new NatsCaller(this.#nats!, Subjects.shardControl(shardId), Defaults.rpcTimeoutMs);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const r of this.#rx) r.unsubscribe();
    for (const s of this.#subs) s.unsubscribe();
    await this.#flush().catch(() => undefined);
    await this.#lastSave;
    await this.#orchestrator?.close().catch(() => undefined);
    await this.#trace?.close();
    await this.#nats?.drain().catch(() => undefined);
    await this.store.close();
  }
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}

/**
 * What a job used and what it costs: reserved node-hours (the binding
 * dimension of its reservation over time) at the tier's node-hour price —
 * the pay-what-you-use model — and, for comparison, node-hours of bytes
 * actually stored.
 */
export function usageReport(j: JobBook, state: JobState, policy: ScalingPolicy) {
  const type = nodeTypeOf(policy, j.tier);
  const u = j.usage;
  const capacity = type?.capacityBytes ?? 1;
  const throughput = type?.throughputBps ?? 1;
  const reservedNodeHours = Math.max(u.reservedByteSeconds / capacity, u.reservedBpsSeconds / throughput) / 3600;
  const usedNodeHours = u.byteSeconds / capacity / 3600;
  const price = type?.pricePerHour ?? 0;
  return {
    jobId: j.jobId, name: j.name, tier: j.tier, state, registeredAtMs: j.registeredAtMs, endedAtMs: j.endedAtMs,
    demand: { ...j.demand, nodes: type ? demandInNodes(j.demand, type) : 0 },
    bytes: u.bytes, byteSeconds: u.byteSeconds, reservedBpsSeconds: u.reservedBpsSeconds, reservedByteSeconds: u.reservedByteSeconds, requests: u.requests,
    reservedNodeHours, usedNodeHours, pricePerNodeHour: price, cost: reservedNodeHours * price,
  };
}
