import { randomBytes } from "node:crypto";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { CapacityExceededError, ErrorCode, isPocketError, NodeUnavailableError, UnknownJobError } from "../../schemas/errors";
import { ControllerOps, NodeOps, ShardHeartbeatSchema, ShardOps, type JobHints, type NodeInfo, type ShardHeartbeat, type Weight } from "../../schemas/operations";
import { encodeJson } from "../../bus/body";
import { subscribeValidated } from "../../bus/subscribe";
import { NatsCaller, serveOnNats } from "../../bus/nats-rpc";
import { Router } from "../../bus/router";
import { Subjects } from "../../bus/subjects";
import { systemClock, type Clock } from "../runtime/clock";
import { settleLimit } from "../runtime/concurrency";
import { Defaults, type NatsSettings } from "../runtime/config";
import { errorFields, logger } from "../runtime/log";
import { NodeDirectory } from "../runtime/node-directory";
import { TokenAuthority } from "../runtime/tokens";
import { chooseTier, freeSpaceWeights, type NodeCapacity } from "./weights";

export interface ControllerConfig extends NatsSettings {
  readonly heartbeatIntervalMs?: number;
  readonly heartbeatsMissedMax?: number;
  readonly jobTokenTtlMs?: number;
  readonly jobsMax?: number;
}

interface JobRecord {
  readonly jobId: string;
  readonly name: string;
  readonly shardId: string;
  readonly hints: JobHints;
  readonly registeredAtMs: number;
  weights: Weight[];
}

interface ShardRecord {
  heartbeat: ShardHeartbeat;
  lastSeenMs: number;
}

const fanoutMax = 16;

/**
 * The controller: registers jobs (id, token, shard, weight map), follows
 * nodes and shards by their heartbeats, and marks silent nodes failed.
 */
export class Controller {
  readonly #log = logger("controller");
  readonly #jobs = new Map<string, JobRecord>();
  readonly #shards = new Map<string, ShardRecord>();
  readonly #failed = new Set<string>();
  readonly #clusterToken: string;
  readonly nodes: NodeDirectory;
  #nats: NatsConnection | undefined;
  #subs: Subscription[] = [];
  #timer: NodeJS.Timeout | undefined;

  private constructor(readonly config: ControllerConfig, private readonly tokens: TokenAuthority, private readonly clock: Clock) {
    this.nodes = new NodeDirectory(clock, this.heartbeatIntervalMs, config.heartbeatsMissedMax ?? Defaults.heartbeatsMissedMax);
    this.#clusterToken = tokens.issueCluster(Defaults.clusterTokenTtlMs);
  }

  static async start(config: ControllerConfig, clock: Clock = systemClock): Promise<Controller> {
    const c = new Controller(config, new TokenAuthority(config.secret, clock), clock);
    const nc = await connect({ servers: config.natsUrl, name: "pocket-controller", maxReconnectAttempts: -1 });
    c.#nats = nc;
    c.nodes.onHeartbeat((hb, isNew) => {
      if (isNew || c.#failed.delete(hb.nodeId)) {
        c.#event(isNew ? "node.active" : "node.recovered", { nodeId: hb.nodeId, tier: hb.tier, addr: hb.addr });
        void c.#rebalanceWeights();
      }
    });
    c.nodes.follow(nc);
    c.#subs.push(subscribeValidated(nc, Subjects.shardHeartbeatAll, ShardHeartbeatSchema, c.#log, (hb) => {
      if (!c.#shards.has(hb.shardId) && c.#shards.size >= Defaults.clusterMembersMax) {
        c.#log.warn("too many shards; heartbeat ignored", { shardId: hb.shardId });
        return;
      }
      c.#shards.set(hb.shardId, { heartbeat: hb, lastSeenMs: c.clock.now() });
    }));
    c.#subs.push(serveOnNats(nc, Subjects.controller, c.router()));
    c.#timer = setInterval(() => c.tick(), c.heartbeatIntervalMs);
    return c;
  }

  get heartbeatIntervalMs(): number { return this.config.heartbeatIntervalMs ?? Defaults.heartbeatIntervalMs; }

  router(): Router {
    return new Router()
      .on(ControllerOps.jobRegister, async (req) => {
        const hints = req.hints ?? {};
        const jobsMax = this.config.jobsMax ?? Defaults.jobsMax;
        if (this.#jobs.size >= jobsMax) throw new CapacityExceededError(`${jobsMax} jobs are registered; deregister some first`);
        const shard = this.#pickShard();
        const jobId = `j-${randomBytes(8).toString("hex")}`;
        const caps = this.#capacities();
        const weights = freeSpaceWeights(caps, chooseTier(hints, caps));
        const ttl = this.config.jobTokenTtlMs ?? Defaults.jobTokenTtlMs;
        const token = this.tokens.issueJob(jobId, shard, ttl);
        await this.#shard(shard).call(ShardOps.attachJob, { auth: this.#clusterToken, jobId, name: req.name, weights });
        this.#jobs.set(jobId, { jobId, name: req.name, shardId: shard, hints, registeredAtMs: this.clock.now(), weights });
        this.#event("job.registered", { jobId, name: req.name, shardId: shard, hints, weights });
        return { jobId, token, shardId: shard, expiresAtMs: this.clock.now() + ttl, weights };
      })
      .on(ControllerOps.jobDeregister, async (req) => {
        const { jobId } = this.tokens.verifyJob(req.token);
        const job = this.#jobs.get(jobId);
        if (!job) throw new UnknownJobError(`job ${jobId} is not registered`);
        try {
          await this.#shard(job.shardId).call(ShardOps.detachJob, { auth: this.#clusterToken, jobId });
        } catch (e) {
          // A shard that is gone took the namespace with it; one that did not answer in time may still
          // hold it: then the job stays registered and the caller retries, rather than leak it.
          if (!isPocketError(e, ErrorCode.NodeUnavailable) && !isPocketError(e, ErrorCode.UnknownJob)) throw e;
          this.#log.warn("shard did not detach the job", { jobId, shardId: job.shardId, ...errorFields(e) });
        }
        this.#jobs.delete(jobId);
        // Every node, not only the weighted ones: weights may have changed over the job's life.
        const results = await settleLimit(this.nodes.all(), fanoutMax, (r) =>
          new NatsCaller(this.#nats!, Subjects.node(r.heartbeat.nodeId)).call(NodeOps.jobDrop, { auth: this.#clusterToken, jobId }));
        let freedBytes = 0;
        for (const r of results) if (r.status === "fulfilled") freedBytes += r.value.reply.freedBytes;
        this.#event("job.deregistered", { jobId, freedBytes });
        return { jobId, freedBytes };
      })
      .on(ControllerOps.jobList, () => ({
        jobs: [...this.#jobs.values()].map((j) => ({
          jobId: j.jobId, name: j.name, shardId: j.shardId, registeredAtMs: j.registeredAtMs, hints: j.hints, weights: j.weights,
        })),
      }))
      .on(ControllerOps.nodeList, () => ({ nodes: this.#nodeInfos() }))
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

  /** Marks nodes failed that missed their heartbeats; runs every heartbeat interval. */
  tick(): void {
    let changed = false;
    for (const r of this.nodes.all()) {
      const id = r.heartbeat.nodeId;
      if (!this.nodes.isLive(id) && !this.#failed.has(id)) {
        this.#failed.add(id);
        changed = true;
        this.#log.warn("storage node failed: heartbeats missed", { nodeId: id });
        this.#event("node.failed", { nodeId: id, lastSeenMs: r.lastSeenMs });
      }
    }
    if (changed) void this.#rebalanceWeights();
  }

  #nodeInfos(): NodeInfo[] {
    return this.nodes.all().map((r) => ({
      nodeId: r.heartbeat.nodeId,
      tier: r.heartbeat.tier,
      addr: r.heartbeat.addr,
      state: this.nodes.isLive(r.heartbeat.nodeId) ? "active" as const : "failed" as const,
      capacityBytes: r.heartbeat.capacityBytes,
      usedBytes: r.heartbeat.usedBytes,
      extents: r.heartbeat.extents,
      cpu: r.heartbeat.cpu,
      bytesInPerSec: r.heartbeat.bytesInPerSec,
      bytesOutPerSec: r.heartbeat.bytesOutPerSec,
      lastSeenMs: r.lastSeenMs,
    }));
  }

  #capacities(): NodeCapacity[] {
    return this.nodes.all().map((r) => ({
      nodeId: r.heartbeat.nodeId, tier: r.heartbeat.tier, capacityBytes: r.heartbeat.capacityBytes,
      usedBytes: r.heartbeat.usedBytes, live: this.nodes.isLive(r.heartbeat.nodeId),
    }));
  }

  #shardLive(s: ShardRecord): boolean {
    return this.clock.now() - s.lastSeenMs <= this.heartbeatIntervalMs * (this.config.heartbeatsMissedMax ?? Defaults.heartbeatsMissedMax);
  }

  /** The live shard with the fewest jobs. */
  #pickShard(): string {
    const counts = new Map<string, number>();
    for (const s of this.#shards.values()) if (this.#shardLive(s)) counts.set(s.heartbeat.shardId, 0);
    if (counts.size === 0) throw new NodeUnavailableError("no metadata shard is up");
    for (const j of this.#jobs.values()) if (counts.has(j.shardId)) counts.set(j.shardId, counts.get(j.shardId)! + 1);
    return [...counts.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  }

  #shard(shardId: string): NatsCaller {
    return new NatsCaller(this.#nats!, Subjects.shard(shardId), Defaults.rpcTimeoutMs);
  }

  /** Recomputes every job's weight map after the node set changed, and pushes it to its shard. */
  async #rebalanceWeights(): Promise<void> {
    const caps = this.#capacities();
    const jobs = [...this.#jobs.values()];
    await settleLimit(jobs, fanoutMax, async (j) => {
      j.weights = freeSpaceWeights(caps, chooseTier(j.hints, caps));
      try {
        await this.#shard(j.shardId).call(ShardOps.setWeights, { auth: this.#clusterToken, jobId: j.jobId, weights: j.weights });
      } catch (e) {
        this.#log.warn("weights not delivered", { jobId: j.jobId, ...errorFields(e) });
      }
    });
  }

  #event(kind: string, fields: Record<string, unknown>): void {
    this.#nats?.publish(Subjects.event(kind), encodeJson({ kind, atMs: this.clock.now(), ...fields }));
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    for (const s of this.#subs) s.unsubscribe();
    this.nodes.stop();
    await this.#nats?.drain().catch(() => undefined);
  }
}
