import { Subject, type Subscription as RxSubscription } from "rxjs";
import { NodeUnavailableError } from "../../schemas/errors";
import { NodeHeartbeatSchema, ShardHeartbeatSchema, ShardUsageSchema, type NodeHeartbeat, type ShardHeartbeat } from "../../schemas/operations";
import { systemClock, type Timer, type TimerClock } from "../../lib/clock";
import { systemEntropy, type Entropy } from "../../lib/entropy";
import { errorFields, logger } from "../../lib/log";
import { closeInTurn } from "../../lib/shutdown";
import { readPrivateFile } from "../../lib/private-file";
import type { Bus, Closable, EventSink } from "../../bus/bus";
import { EventPublisher, ensureEventStream } from "../../bus/events";
import { NatsBus } from "../../bus/nats-bus";
import { connectAs } from "../../bus/nats-connect";
import { CredentialIssuer, Role } from "../../bus/credentials";
import { Subjects } from "../../bus/subjects";
import type { ServerTlsFiles } from "../../bus/tls";
import { TokenAuthority } from "../../bus/tokens";
import { createOrchestrator, type Orchestrator, type OrchestratorConfig } from "../orchestrator";
import { Defaults, type NatsSettings } from "../runtime/config";
import { ActorOps, type OpsHttpConfig } from "../runtime/http-ops";
import type { ActorMetrics } from "../runtime/metrics";
import { adminRouter, driverRouter, type ApiContext, type ShardView } from "./api";
import { registerControllerMetrics, type ControllerCounters } from "./controller-metrics";
import { ControllerCore } from "./core";
import { Effects } from "./effects";
import type { ControllerInput, Decision } from "./inputs";
import { policyWith, type ScalingPolicy } from "./policy";
import { ControllerStore } from "./store";
import { TraceWriter } from "./trace";

export interface ControllerConfig extends NatsSettings, OpsHttpConfig {
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
  /** The port storage nodes the orchestrator launches serve metrics and probes on (0 picks a free one); none without it. */
  readonly nodeHttpPort?: number;
  /**
   * How the controller mints NATS credentials: a lambda credential for each job
   * it registers, and its own for each node it launches. The account's public
   * key and a file holding one of its signing keys' seed (0600).
   */
  readonly credentialIssuer?: { readonly account: string; readonly signingSeedFile: string };
  /** The certificate the storage nodes it launches serve their direct transport with (TLS only); they get `natsTlsCa` too. */
  readonly nodeTls?: ServerTlsFiles;
}

/** What a controller's shell runs on. The store is the caller's to close when `ownsStore` is false (the simulation keeps it across restarts). */
export interface ControllerEnv {
  readonly bus: Bus;
  readonly clock: TimerClock;
  readonly entropy: Entropy;
  readonly events: EventSink;
  readonly store: ControllerStore;
  readonly orchestrator: Orchestrator;
  readonly ownsStore: boolean;
  /** Mints lambda credentials for the jobs it registers; absent on a bus without authentication. */
  readonly issuer?: CredentialIssuer;
}

interface ShardRecord {
  heartbeat: ShardHeartbeat;
  lastSeenMs: number;
}

const pruneEveryMs = 3600_000;
/** Inputs that only report measurements: stored on the next tick rather than each on its own. */
const reportKinds: ReadonlySet<string> = new Set(["node.heartbeat", "shard.usage"]);
const endedJobsKeptMs = 7 * 24 * 3600_000;

/**
 * The controller's actor shell: feeds bus traffic and API calls into the
 * pure ControllerCore as recorded inputs, persists what changed, publishes
 * every decision as an event, and hands the decisions that need doing to
 * Effects. The API lives in api.ts, the effects in effects.ts, pricing in
 * usage-report.ts.
 */
export class Controller {
  readonly #log = logger("controller");
  readonly #shards = new Map<string, ShardRecord>();
  /** When each node's last heartbeat was passed on to the core (at most two per interval: a flooding node cannot swamp it). */
  readonly #heardMs = new Map<string, number>();
  readonly #inputs = new Subject<ControllerInput>();
  readonly #effects: Effects;
  readonly #served: Closable[] = [];
  readonly #tokens: TokenAuthority;
  /** Metrics, readiness and the HTTP server operators scrape and probe. */
  readonly #ops: ActorOps;
  readonly #counters: ControllerCounters;
  #trace: TraceWriter | undefined;
  #rx: RxSubscription | undefined;
  #tick: Timer | undefined;
  #lastSave: Promise<void> = Promise.resolve();
  #nextSave: Promise<void> | undefined;
  #lastPruneMs = 0;
  #stopped = false;

  private constructor(readonly config: ControllerConfig, readonly core: ControllerCore, private readonly env: ControllerEnv, ops: ActorOps) {
    this.#tokens = new TokenAuthority(config.secret, env.clock);
    this.#ops = ops;
    this.#effects = new Effects({
      bus: env.bus, clock: env.clock, core, events: env.events, orchestrator: env.orchestrator,
      input: (i) => this.#inputs.next(i), liveShards: () => this.#liveShards(), stopped: () => this.#stopped,
      carriedOut: (kind, outcome) => this.#counters.carriedOut(kind, outcome),
    });
    this.#counters = registerControllerMetrics(ops.metrics, { core, effects: this.#effects, shardStates: () => this.#shardList().map((s) => s.state) });
  }

  /** A controller on NATS, with its event stream, store and orchestrator: what an actor process runs. */
  static async start(config: ControllerConfig, clock: TimerClock = systemClock): Promise<Controller> {
    // Probes answer (not ready) while the controller opens its store and connects.
    const ops = await ActorOps.start(config, "controller", "controller");
    const store = await ControllerStore.open(config.store ?? "pocket-controller.sqlite").catch(async (e: unknown) => {
      await ops.close();
      throw e;
    });
    let nc;
    let orchestrator: Orchestrator | undefined;
    try {
      nc = await connectAs(config, Role.Controller, "controller", { name: "pocket-controller" });
      ops.followNats(nc);
      const withJetStream = await ensureEventStream(nc).catch((e: unknown) => {
        logger("controller").warn("event stream unavailable; events go out as plain messages", errorFields(e));
        return false;
      });
      const ci = config.credentialIssuer;
      const issuer = ci ? CredentialIssuer.fromSeed(ci.account, readPrivateFile(ci.signingSeedFile)) : undefined;
      orchestrator = await createOrchestrator(config.orchestrator ?? { kind: "events-only" }, {
        natsUrl: config.natsUrl, secret: config.secret, heartbeatIntervalMs: config.heartbeatIntervalMs, extentBytesMax: config.extentBytesMax,
        ...(issuer ? { nodeCredentials: (nodeId: string) => issuer.node(nodeId) } : {}),
        ...(config.natsTlsCa !== undefined ? { natsTlsCa: config.natsTlsCa } : {}),
        ...(config.nodeTls !== undefined ? { tls: config.nodeTls } : {}),
        ...(config.nodeHttpPort !== undefined ? { httpPort: config.nodeHttpPort } : {}),
      });
      const env = {
        bus: new NatsBus(nc), clock, entropy: systemEntropy, events: new EventPublisher(nc, withJetStream), store, orchestrator, ownsStore: true,
        ...(issuer ? { issuer } : {}),
      };
      const c = await Controller.over(config, env, ops);
      // Ready only once the server has its subscriptions: a caller right after start must not find no responders.
      await env.bus.flush();
      ops.serving();
      return c;
    } catch (e) {
      await orchestrator?.close().catch(() => undefined);
      await nc?.drain().catch(() => undefined);
      await store.close();
      await ops.close();
      throw e;
    }
  }

  /** A controller over the given bus, clock, store and orchestrator (the simulation runs these). */
  static async over(config: ControllerConfig, env: ControllerEnv, ops = ActorOps.detached("controller", "controller")): Promise<Controller> {
    const policy = policyWith({
      ...config.policy,
      heartbeatIntervalMs: config.heartbeatIntervalMs ?? config.policy?.heartbeatIntervalMs ?? Defaults.heartbeatIntervalMs,
      heartbeatsMissedMax: config.heartbeatsMissedMax ?? config.policy?.heartbeatsMissedMax ?? Defaults.heartbeatsMissedMax,
    });
    const state = await env.store.load();
    const c = new Controller(config, new ControllerCore(policy, state), env, ops);
    if (state) c.#log.info("state loaded", { store: env.store.location, jobs: state.jobs.length, nodes: state.nodes.length });
    c.#start();
    return c;
  }

  get heartbeatIntervalMs(): number { return this.core.policy.heartbeatIntervalMs; }
  get orchestrator(): Orchestrator { return this.env.orchestrator; }
  get store(): ControllerStore { return this.env.store; }
  /** Effects queued or running. */
  get effectsPending(): number { return this.#effects.pending; }
  /** host:port of the HTTP server for metrics and probes ("" without one). */
  get httpAddr(): string { return this.#ops.httpAddr; }
  get metrics(): ActorMetrics { return this.#ops.metrics; }

  #start(): void {
    const { bus, clock } = this.env;
    if (this.config.traceFile) this.#trace = new TraceWriter(this.config.traceFile);
    // One ordered stream of inputs; every one is recorded, then applied.
    this.#rx = this.#inputs.subscribe((input) => {
      try {
        this.#apply(input);
      } catch (e) {
        // A fault in the logic must not end the input stream: log it and keep serving.
        this.#log.error("input not applied", { kind: input.kind, ...errorFields(e) });
      }
    });
    this.#inputs.next({ kind: "start", atMs: clock.now(), policy: this.core.policy });
    this.#served.push(bus.subscribe(Subjects.nodeHeartbeatAll, NodeHeartbeatSchema, this.#log, (hb) => this.#nodeHeartbeat(hb), {
      subjectOf: (hb) => Subjects.nodeHeartbeat(hb.nodeId),
    }));
    this.#served.push(bus.subscribe(Subjects.shardUsageAll, ShardUsageSchema, this.#log, (u) => {
      // A shard reports only the jobs it holds.
      const jobs = u.jobs.filter((j) => this.core.job(j.jobId)?.shardId === u.shardId);
      this.#inputs.next({ kind: "shard.usage", atMs: clock.now(), shardId: u.shardId, jobs });
    }, { subjectOf: (u) => Subjects.shardUsage(u.shardId) }));
    this.#served.push(bus.subscribe(Subjects.shardHeartbeatAll, ShardHeartbeatSchema, this.#log, (hb) => this.#shardHeartbeat(hb), {
      subjectOf: (hb) => Subjects.shardHeartbeat(hb.shardId),
    }));
    const api = this.#api();
    this.#served.push(bus.serve(Subjects.controllerDriver, driverRouter(api).observe(this.metrics.requests)));
    this.#served.push(bus.serve(Subjects.controllerAdmin, adminRouter(api).observe(this.metrics.requests)));
    this.#tick = clock.every(this.heartbeatIntervalMs, () => this.tick());
  }

  #api(): ApiContext {
    const shards: ShardView = { pick: () => this.#pickShard(), list: () => this.#shardList() };
    return {
      core: this.core, store: this.env.store, clock: this.env.clock, entropy: this.env.entropy, tokens: this.#tokens, effects: this.#effects, shards,
      issuer: this.env.issuer, jobsMax: this.config.jobsMax ?? Defaults.jobsMax, jobTokenTtlMs: this.config.jobTokenTtlMs ?? Defaults.jobTokenTtlMs,
      input: (i) => this.#inputs.next(i), flush: () => this.#flush(),
    };
  }

  /** A node's heartbeat, passed on to the core at most twice per interval; past clusterMembersMax nodes, new ones are ignored. */
  #nodeHeartbeat(hb: NodeHeartbeat): void {
    const now = this.env.clock.now();
    const last = this.#heardMs.get(hb.nodeId);
    if (last !== undefined && now - last < this.heartbeatIntervalMs / 2) return;
    if (!this.core.node(hb.nodeId) && this.core.nodes().length >= Defaults.clusterMembersMax) {
      this.#log.warn("too many storage nodes; heartbeat ignored", { nodeId: hb.nodeId });
      return;
    }
    if (last === undefined && this.#heardMs.size >= Defaults.clusterMembersMax) this.#heardMs.delete(this.#heardMs.keys().next().value!);
    this.#heardMs.set(hb.nodeId, now);
    const { sentAtMs: _sent, key: _key, jobIds, ...rest } = hb;
    this.#inputs.next({ kind: "node.heartbeat", atMs: now, hb: rest });
    // Bytes of a job that has ended (or that this controller no longer knows of) are a drop the node missed.
    for (const jobId of jobIds ?? []) {
      const j = this.core.job(jobId);
      if (!j || !this.core.isLive(j)) this.#effects.dropLater(jobId, hb.nodeId);
    }
  }

  #shardHeartbeat(hb: ShardHeartbeat): void {
    if (!this.#shards.has(hb.shardId) && this.#shards.size >= Defaults.clusterMembersMax) {
      this.#log.warn("too many shards; heartbeat ignored", { shardId: hb.shardId });
      return;
    }
    this.#shards.set(hb.shardId, { heartbeat: hb, lastSeenMs: this.env.clock.now() });
  }

  /** The periodic pass (every heartbeat interval). */
  tick(): void {
    if (this.#stopped) return;
    const now = this.env.clock.now();
    this.#inputs.next({ kind: "tick", atMs: now });
    void this.#effects.retryUnfinished().catch((e: unknown) => this.#log.warn("retries failed", errorFields(e)));
    if (now - this.#lastPruneMs > pruneEveryMs) {
      this.#lastPruneMs = now;
      void this.env.store.prune(now - endedJobsKeptMs).catch((e: unknown) => this.#log.warn("prune failed", errorFields(e)));
    }
  }

  #apply(input: ControllerInput): Decision[] {
    const events = this.env.events;
    this.#trace?.write(input);
    events.input(input.kind, input);
    const decisions = this.core.apply(input);
    for (const d of decisions) {
      events.event(d.kind, d);
      this.#counters.decided(d);
      if (d.kind === "node.failed") this.#log.warn("storage node failed: heartbeats missed", { nodeId: d.nodeId });
      else if (d.kind.startsWith("scale.") || d.kind.startsWith("node.")) this.#log.info(d.kind, d);
      this.#effects.enqueue(d);
    }
    // Reports alone (heartbeats, usage) are saved with the next tick, once per interval, not one write per report:
    // a restart loses at most one interval of samples. Everything else, and any decision, is saved now.
    if (decisions.length > 0 || !reportKinds.has(input.kind)) void this.#flush().catch(() => undefined);
    return decisions;
  }

  /** Writes what changed since the last save; resolves once this call's changes are stored. */
  #flush(): Promise<void> {
    if (!this.#nextSave) {
      const next = this.#lastSave.then(async () => {
        this.#nextSave = undefined;
        await this.env.store.save(this.core, this.core.takeDirty(), this.env.clock.now());
      });
      this.#nextSave = next;
      this.#lastSave = next.catch((e: unknown) => this.#log.error("state not saved", { store: this.env.store.location, ...errorFields(e) }));
    }
    return this.#nextSave;
  }

  #shardLive(s: ShardRecord): boolean {
    return this.env.clock.now() - s.lastSeenMs <= this.heartbeatIntervalMs * this.core.policy.heartbeatsMissedMax;
  }

  #liveShards(): string[] {
    return [...this.#shards.values()].filter((s) => this.#shardLive(s)).map((s) => s.heartbeat.shardId);
  }

  /** The live shard with the fewest live jobs. */
  #pickShard(): string {
    const counts = new Map<string, number>();
    for (const id of this.#liveShards()) counts.set(id, 0);
    if (counts.size === 0) throw new NodeUnavailableError("no metadata shard is up");
    for (const j of this.core.liveJobs()) if (counts.has(j.shardId)) counts.set(j.shardId, counts.get(j.shardId)! + 1);
    return [...counts.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  }

  #shardList(): ReturnType<ShardView["list"]> {
    return [...this.#shards.values()].map((s) => ({
      shardId: s.heartbeat.shardId, state: this.#shardLive(s) ? "active" as const : "failed" as const,
      jobs: s.heartbeat.jobs, objects: s.heartbeat.objects, lastSeenMs: s.lastSeenMs,
    }));
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#ops.stopping();
    this.#tick?.cancel();
    this.#rx?.unsubscribe();
    for (const s of this.#served) s.close();
    // Every step runs whatever failed before it: the store is closed and the HTTP port let go (inline, in a process that goes on).
    await closeInTurn([
      // A save that fails is logged by #lastSave ("state not saved").
      () => this.#flush().catch(() => undefined),
      () => this.#lastSave,
      () => this.env.orchestrator.close(),
      () => this.#trace?.close(),
      () => this.env.bus.drain(),
      () => (this.env.ownsStore ? this.env.store.close() : undefined),
      () => this.#ops.close(),
    ], (e) => this.#log.error("stopping: another step failed too", errorFields(e)));
  }
}
