import { ErrorCode, isPocketError } from "../../schemas/errors";
import { NodeOps, ShardOps } from "../../schemas/operations";
import type { TimerClock } from "../../lib/clock";
import { settleLimit } from "../../lib/concurrency";
import { errorFields, logger } from "../../lib/log";
import { retryUntil } from "../../lib/retry";
import type { Bus, EventSink } from "../../bus/bus";
import type { Caller } from "../../bus/caller";
import { Subjects } from "../../bus/subjects";
import type { Orchestrator } from "../orchestrator";
import { Defaults } from "../runtime/config";
import type { ControllerCore, JobBook } from "./core";
import type { ControllerInput, Decision } from "./inputs";
import { NodeState } from "./machines";
import { nodeTypeOf } from "./policy";

/** Requests to shards or nodes at once in one fan-out. */
const fanoutMax = 16;
/** Effects (launches, weight pushes, reclaims, moves) carried out at once; more wait, up to effectsQueueMax. */
const effectsInflightMax = 8;
const effectsQueueMax = 10_000;
const migrateAttemptsMax = 5;
const migrateRetryDelayMs = 5_000;
/** A migration moves a whole node's extents: the shard may take this long to answer. */
const migrateTimeoutMs = 10 * 60_000;
/** Ended jobs whose bytes some node has not yet confirmed dropping (or whose reclaim has not finished), remembered for retries. */
const unfinishedMax = 100_000;
/** Retries sent per tick, at most. */
const retriesPerTickMax = 256;

/** What carrying out decisions needs of the controller's shell. */
export interface EffectsContext {
  readonly bus: Bus;
  readonly clock: TimerClock;
  readonly core: ControllerCore;
  readonly events: EventSink;
  readonly orchestrator: Orchestrator;
  /** Feeds an input back into the core (a migration that finished). */
  input(input: ControllerInput): void;
  /** Shards heard from lately, by id. */
  liveShards(): string[];
  /** True once the controller is stopping: nothing more is carried out. */
  stopped(): boolean;
  /** How a decision's effect ended (metrics); a decision without an effect is done at once. */
  carriedOut?(kind: Decision["kind"], outcome: "done" | "failed" | "dropped"): void;
}

/**
 * Carries out the core's decisions that need doing — launch or remove
 * nodes, push weight maps to shards, reserve NVMe QoS, reclaim expired jobs,
 * move extents off draining nodes — with a bounded number at once and a
 * bounded queue behind them.
 */
export class Effects {
  readonly #log = logger("controller");
  readonly #queue: Decision[] = [];
  /** Latency-sensitive NVMe jobs: the nodes already told to reserve for them. */
  readonly #qosSent = new Map<string, Set<string>>();
  /** Ended jobs → nodes that have not confirmed dropping their bytes (unreachable when the job ended). */
  readonly #undropped = new Map<string, Set<string>>();
  /** Expired jobs whose shard did not detach them yet → their shard. */
  readonly #unreclaimed = new Map<string, string>();
  #running = 0;
  #retrying = false;

  constructor(private readonly c: EffectsContext) {}

  /** Drops and reclaims still to retry. */
  get unfinished(): number {
    let n = this.#unreclaimed.size;
    for (const nodes of this.#undropped.values()) n += nodes.size;
    return n;
  }

  /** Effects queued or running. */
  get pending(): number {
    return this.#queue.length + this.#running;
  }

  enqueue(d: Decision): void {
    if (this.#queue.length >= effectsQueueMax) {
      this.#log.error("effect queue full; decision not carried out", { kind: d.kind });
      this.c.carriedOut?.(d.kind, "dropped");
      return;
    }
    this.#queue.push(d);
    this.#pump();
  }

  #pump(): void {
    while (this.#running < effectsInflightMax && this.#queue.length > 0) {
      const d = this.#queue.shift()!;
      this.#running++;
      this.#carryOut(d)
        .then(() => this.c.carriedOut?.(d.kind, "done"), (e: unknown) => {
          this.c.carriedOut?.(d.kind, "failed");
          this.#log.warn("decision not carried out", { kind: d.kind, ...errorFields(e) });
        })
        .finally(() => { this.#running--; this.#pump(); });
    }
  }

  async #carryOut(d: Decision): Promise<void> {
    if (this.c.stopped()) return;
    switch (d.kind) {
      case "node.launch": return this.#launch(d);
      case "node.removed":
        await this.#nodeControl(d.nodeId, 2_000).call(NodeOps.retire, {}).catch(() => undefined);
        await this.c.orchestrator.remove(d.nodeId);
        return;
      case "job.weights": {
        const j = this.c.core.job(d.jobId);
        if (!j || !this.c.core.isLive(j)) return;
        await this.shard(j.shardId).call(ShardOps.setWeights, { jobId: j.jobId, weights: j.weights });
        await this.#reserveLatencyCritical(j);
        return;
      }
      case "job.registered": {
        const j = this.c.core.job(d.jobId);
        if (j && this.c.core.isLive(j)) await this.#reserveLatencyCritical(j);
        return;
      }
      case "job.deregistered":
        this.#qosSent.delete(d.jobId);
        return;
      case "job.expired":
        this.#qosSent.delete(d.jobId);
        this.#log.warn("job lease ran out; reclaiming", { jobId: d.jobId });
        try {
          await this.reclaim(d.jobId, d.shardId);
        } catch (e) {
          // Nobody waits on an expiry: retry it on the next ticks until the shard lets the job go.
          this.#makeRoom(this.#unreclaimed, d.jobId);
          this.#unreclaimed.set(d.jobId, d.shardId);
          throw e;
        }
        return;
      case "node.migrate": return this.#migrate(d.nodeId);
      default: return;
    }
  }

  async #launch(d: Extract<Decision, { kind: "node.launch" }>): Promise<void> {
    const type = nodeTypeOf(this.c.core.policy, d.tier);
    try {
      await this.c.orchestrator.launch({ nodeId: d.nodeId, tier: d.tier, capacityBytes: type?.capacityBytes ?? Defaults.dramCapacityBytes });
    } catch (e) {
      this.c.events.event("node.launch-failed", { atMs: this.c.clock.now(), nodeId: d.nodeId, tier: d.tier, ...errorFields(e) });
      throw e;
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
      const at = { atMs: this.c.clock.now(), jobId: j.jobId, nodeId: w.nodeId, slo };
      try {
        await this.#nodeControl(w.nodeId, 5_000).call(NodeOps.jobQos, { jobId: j.jobId, slo });
        this.c.events.event("job.reserved", at);
      } catch (e) {
        this.c.events.event("job.reservation-refused", { ...at, ...errorFields(e) });
      }
    }
  }

  /** Asks every live shard to move its extents off a draining node, until all report none failed (a bounded number of attempts). */
  async #migrate(nodeId: string): Promise<void> {
    await retryUntil(async (attempt) => {
      const results = await settleLimit(this.c.liveShards(), fanoutMax, (id) =>
        this.c.bus.caller(Subjects.shardControl(id), migrateTimeoutMs).call(ShardOps.migrate, { nodeId }));
      const ok = results.every((r) => r.status === "fulfilled" && r.value.reply.failed === 0);
      const moved = results.reduce((s, r) => s + (r.status === "fulfilled" ? r.value.reply.bytes : 0), 0);
      const direct = results.reduce((s, r) => s + (r.status === "fulfilled" ? r.value.reply.directBytes ?? 0 : 0), 0);
      this.c.events.event("node.migrated", { atMs: this.c.clock.now(), nodeId, bytes: moved, directBytes: direct, complete: ok, attempt });
      if (ok) this.c.input({ kind: "node.migrated", atMs: this.c.clock.now(), nodeId });
      return ok;
    }, { attemptsMax: migrateAttemptsMax, delayMs: migrateRetryDelayMs, clock: this.c.clock, stopped: () => this.c.stopped() });
  }

  /** Drops a job's namespace on its shard and its bytes on every node; the bytes freed. */
  async reclaim(jobId: string, shardId: string): Promise<number> {
    try {
      await this.shard(shardId).call(ShardOps.detachJob, { jobId });
    } catch (e) {
      if (!isPocketError(e, ErrorCode.NodeUnavailable) && !isPocketError(e, ErrorCode.UnknownJob)) throw e;
      this.#log.warn("shard did not detach the job", { jobId, shardId, ...errorFields(e) });
    }
    // Every node, not only the weighted ones: weights may have changed over the job's life.
    const core = this.c.core;
    const nodes = core.nodes().filter((n) => core.nodeState(n) !== NodeState.Removed);
    const results = await settleLimit(nodes, fanoutMax, (n) => this.#nodeControl(n.nodeId, 5_000).call(NodeOps.jobDrop, { jobId }));
    let freed = 0;
    const missed = new Set<string>();
    results.forEach((r, i) => {
      if (r.status === "fulfilled") freed += r.value.reply.freedBytes;
      else missed.add(nodes[i]!.nodeId);
    });
    // A node that did not answer (partitioned, busy) still holds the job's bytes: drop them there once it answers.
    for (const nodeId of missed) this.dropLater(jobId, nodeId);
    return freed;
  }

  /**
   * Retries what did not finish when a job ended: drops on nodes that did not
   * answer, reclaims of expired jobs whose shard did not. Runs on the
   * controller's tick, a bounded number per tick; a node that is removed no
   * longer needs its drop.
   */
  async retryUnfinished(): Promise<void> {
    if (this.#retrying || this.c.stopped() || (this.#undropped.size === 0 && this.#unreclaimed.size === 0)) return;
    this.#retrying = true;
    try {
      const core = this.c.core;
      const drops: Array<{ jobId: string; nodeId: string }> = [];
      for (const [jobId, nodes] of this.#undropped) {
        for (const nodeId of nodes) {
          const n = core.node(nodeId);
          if (!n || core.nodeState(n) === NodeState.Removed) nodes.delete(nodeId);
          else if (drops.length < retriesPerTickMax) drops.push({ jobId, nodeId });
        }
        if (nodes.size === 0) this.#undropped.delete(jobId);
      }
      await settleLimit(drops, fanoutMax, async ({ jobId, nodeId }) => {
        await this.#nodeControl(nodeId, 5_000).call(NodeOps.jobDrop, { jobId });
        const left = this.#undropped.get(jobId);
        left?.delete(nodeId);
        if (left?.size === 0) this.#undropped.delete(jobId);
      });
      const reclaims = [...this.#unreclaimed].slice(0, retriesPerTickMax);
      await settleLimit(reclaims, fanoutMax, async ([jobId, shardId]) => {
        await this.reclaim(jobId, shardId);
        this.#unreclaimed.delete(jobId);
      });
    } finally {
      this.#retrying = false;
    }
  }

  /** A node still holds bytes of an ended job: drop them there on the next retry pass. */
  dropLater(jobId: string, nodeId: string): void {
    let nodes = this.#undropped.get(jobId);
    if (!nodes) {
      this.#makeRoom(this.#undropped, jobId);
      this.#undropped.set(jobId, (nodes = new Set()));
    }
    nodes.add(nodeId);
  }

  /** Before a new job enters a retry map: past unfinishedMax jobs the oldest is given up (logged). */
  #makeRoom(map: Map<string, unknown>, jobId: string): void {
    if (map.has(jobId) || map.size < unfinishedMax) return;
    const oldest = map.keys().next().value!;
    map.delete(oldest);
    this.#log.error("too many unfinished job reclaims; giving one up", { jobId: oldest });
  }

  /** A shard's control operations. */
  shard(shardId: string): Caller {
    return this.c.bus.caller(Subjects.shardControl(shardId), Defaults.rpcTimeoutMs);
  }

  #nodeControl(nodeId: string, timeoutMs: number): Caller {
    return this.c.bus.caller(Subjects.nodeControl(nodeId), timeoutMs);
  }
}
