import type { NatsConnection } from "@nats-io/transport-node";
import { toWireError } from "../../schemas/errors";
import { ControllerOps, type NodeInfo } from "../../schemas/operations";
import type { ReplyOf } from "../../schemas/operation";
import type { Timer, TimerClock } from "../../lib/clock";
import { errorFields, logger } from "../../lib/log";
import { ControllerCaller } from "../../bus/nats-rpc";
import { followDecisions, type FeedEvent } from "./event-follower";
import { Ring } from "./ring";

export type ScalingStatus = ReplyOf<typeof ControllerOps.scalingStatus>;
export type JobInfo = ReplyOf<typeof ControllerOps.jobList>["jobs"][number];
export type ShardInfo = ReplyOf<typeof ControllerOps.shardList>["shards"][number];
export type TierMeasurements = ScalingStatus["tiers"][number]["measurements"];

/** One point of the utilisation chart: each tier's measurements at the controller's time `atMs`. */
export interface UtilisationSample {
  readonly atMs: number;
  readonly tiers: Readonly<Record<string, TierMeasurements>>;
}

/** Whether the controller answered the last poll; if not, what failed and since when. */
export type ControllerHealth =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly sinceMs: number };

/** The cluster as the last poll saw it (the lists are the last ones the controller gave when it did not answer). */
export interface ClusterState {
  /** When the dashboard polled, by its own clock. */
  readonly atMs: number;
  readonly controller: ControllerHealth;
  readonly nodes: readonly NodeInfo[];
  readonly jobs: readonly JobInfo[];
  readonly shards: readonly ShardInfo[];
  readonly scaling: ScalingStatus | null;
  /** What this poll added to the utilisation history; null when the controller did not answer. */
  readonly sample: UtilisationSample | null;
}

/** Everything a page starts from: the state, the utilisation history, the recent decisions and the scaling timeline. */
export interface FullSnapshot extends ClusterState {
  readonly history: readonly UtilisationSample[];
  readonly events: readonly FeedEvent[];
  readonly timeline: readonly FeedEvent[];
  readonly limits: { readonly snapshotIntervalMs: number; readonly historyMax: number; readonly eventsMax: number; readonly timelineMax: number };
}

export interface FeedLimits {
  /** How often the controller is asked for the state, once for every page together. */
  readonly snapshotIntervalMs: number;
  /** Utilisation samples kept (history shown = historyMax × snapshotIntervalMs). */
  readonly historyMax: number;
  /** Recent decisions kept for a page that opens now. */
  readonly eventsMax: number;
  /** Recent scaling decisions (launches, drains, removals) kept for the timeline. */
  readonly timelineMax: number;
  /** A controller call that takes longer counts as not answered. */
  readonly callTimeoutMs: number;
  /** Wait before following the event stream again after it failed. */
  readonly retryDelayMs: number;
}

/** Who hears of each new state and each new decision (the live pages). */
export interface FeedListener {
  snapshot(state: ClusterState): void;
  event(e: FeedEvent): void;
}

/** Decisions that change how many nodes there are, or say why: what the scaling timeline shows. */
export const TimelineKinds: ReadonlySet<string> = new Set([
  "node.launch", "node.launch-failed", "node.active", "node.draining", "node.migrate", "node.removed", "node.failed", "scale.out", "scale.in",
]);

/**
 * The cluster as an operator sees it, kept for every page at once: the
 * controller is asked for nodes, jobs, shards and the scaling band once per
 * interval (never once per page), and its decisions are followed on the
 * event stream. History, recent decisions and the timeline are bounded rings.
 */
export class ClusterFeed {
  readonly #log = logger("dashboard");
  readonly #ctl: ControllerCaller;
  readonly #history: Ring<UtilisationSample>;
  readonly #events: Ring<FeedEvent>;
  readonly #timeline: Ring<FeedEvent>;
  readonly #abort = new AbortController();
  #state: ClusterState;
  #timer: Timer | undefined;
  #polling: Promise<void> | undefined;
  #following: Promise<void> | undefined;

  constructor(private readonly nc: NatsConnection, private readonly limits: FeedLimits, private readonly clock: TimerClock, private readonly listener: FeedListener) {
    this.#ctl = new ControllerCaller(nc, limits.callTimeoutMs);
    this.#history = new Ring(limits.historyMax);
    this.#events = new Ring(limits.eventsMax);
    this.#timeline = new Ring(limits.timelineMax);
    this.#state = {
      atMs: clock.now(), controller: { ok: false, code: "NodeUnavailable", message: "not asked yet", sinceMs: clock.now() },
      nodes: [], jobs: [], shards: [], scaling: null, sample: null,
    };
  }

  /** Polls once (so that the first page has a state), then every interval; follows the event stream from the history's start. */
  async start(): Promise<void> {
    await this.poll();
    this.#timer = this.clock.every(this.limits.snapshotIntervalMs, () => {
      this.poll().catch((e: unknown) => this.#log.error("a poll's state was not passed on", errorFields(e)));
    });
    this.#following = followDecisions(this.nc, {
      sinceMs: this.clock.now() - this.limits.historyMax * this.limits.snapshotIntervalMs,
      retryDelayMs: this.limits.retryDelayMs,
      signal: this.#abort.signal,
      onEvent: (e) => this.#onEvent(e),
    });
  }

  /** Asks the controller for the state now; a poll still running is joined, not doubled. */
  poll(): Promise<void> {
    this.#polling ??= this.#pollOnce().finally(() => { this.#polling = undefined; });
    return this.#polling;
  }

  get state(): ClusterState {
    return this.#state;
  }

  full(): FullSnapshot {
    const { snapshotIntervalMs, historyMax, eventsMax, timelineMax } = this.limits;
    return {
      ...this.#state, history: this.#history.toArray(), events: this.#events.toArray(), timeline: this.#timeline.toArray(),
      limits: { snapshotIntervalMs, historyMax, eventsMax, timelineMax },
    };
  }

  /** Stops polling and following; resolves once neither is running. */
  async stop(): Promise<void> {
    this.#timer?.cancel();
    this.#abort.abort();
    await this.#polling;
    await this.#following;
  }

  async #pollOnce(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    const atMs = this.clock.now();
    try {
      const [nodes, jobs, shards, scaling] = await Promise.all([
        this.#ctl.call(ControllerOps.nodeList, {}), this.#ctl.call(ControllerOps.jobList, {}),
        this.#ctl.call(ControllerOps.shardList, {}), this.#ctl.call(ControllerOps.scalingStatus, {}),
      ]);
      const s = scaling.reply;
      const sample: UtilisationSample = { atMs: s.atMs, tiers: Object.fromEntries(s.tiers.map((t) => [t.tier, t.measurements])) };
      this.#history.push(sample);
      this.#state = { atMs, controller: { ok: true }, nodes: nodes.reply.nodes, jobs: jobs.reply.jobs, shards: shards.reply.shards, scaling: s, sample };
    } catch (e) {
      const before = this.#state.controller;
      if (before.ok) this.#log.warn("the controller did not answer the dashboard's poll", errorFields(e));
      this.#state = { ...this.#state, atMs, controller: { ok: false, ...toWireError(e), sinceMs: before.ok ? atMs : before.sinceMs }, sample: null };
    }
    if (!this.#abort.signal.aborted) this.listener.snapshot(this.#state);
  }

  #onEvent(e: FeedEvent): void {
    this.#events.push(e);
    if (TimelineKinds.has(String(e.event["kind"]))) this.#timeline.push(e);
    this.listener.event(e);
  }
}
