import { randomBytes } from "node:crypto";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { BusyError, CapacityExceededError, NodeUnavailableError, NotFoundError, UnauthorizedError, UnknownJobError } from "../../schemas/errors";
import { ShardOps, type ExtentRef, type ShardHeartbeat } from "../../schemas/operations";
import { encodeJson } from "../../bus/body";
import { NatsCaller, serveOnNats } from "../../bus/nats-rpc";
import { Router } from "../../bus/router";
import { Subjects } from "../../bus/subjects";
import { systemClock, type Clock } from "../runtime/clock";
import { Defaults, type NatsSettings } from "../runtime/config";
import { NodeDirectory } from "../runtime/node-directory";
import { TokenAuthority } from "../runtime/tokens";
import { FreeQueue } from "./free-queue";
import { Namespace, parsePath, type Extent } from "./namespace";
import { WeightedPicker } from "./placement";

export interface ShardConfig extends NatsSettings {
  readonly shardId: string;
  readonly extentBytesMax?: number;
  readonly heartbeatIntervalMs?: number;
  readonly pendingWriteTtlMs?: number;
  readonly pendingWritesPerJobMax?: number;
}

interface PendingWrite {
  readonly writeId: string;
  readonly parts: readonly string[];
  readonly size: number;
  readonly createOnly: boolean;
  readonly extents: readonly Extent[];
  readonly expiresAtMs: number;
}

interface JobState {
  readonly jobId: string;
  readonly name: string;
  readonly ns: Namespace;
  picker: WeightedPicker;
  readonly pending: Map<string, PendingWrite>;
}

/**
 * A metadata shard: owns the namespaces of the jobs the controller gives it,
 * lays out new objects over the job's weight map, and makes writes visible at
 * commit. Holds no object bytes.
 */
export class MetadataShard {
  readonly #jobs = new Map<string, JobState>();
  readonly #bootId = randomBytes(6).toString("base64url").replace(/[-_]/g, "x");
  #seq = 0;
  #nats: NatsConnection | undefined;
  #sub: Subscription | undefined;
  #timers: NodeJS.Timeout[] = [];
  readonly #clusterToken: string;
  readonly nodes: NodeDirectory;
  readonly #frees: FreeQueue;

  private constructor(readonly config: ShardConfig, private readonly tokens: TokenAuthority, private readonly clock: Clock) {
    this.nodes = new NodeDirectory(clock, this.heartbeatIntervalMs);
    this.#clusterToken = tokens.issueCluster(Defaults.clusterTokenTtlMs);
    this.#frees = new FreeQueue(
      (nodeId) => new NatsCaller(this.#nats!, Subjects.node(nodeId), Defaults.rpcTimeoutMs),
      () => this.#clusterToken,
      Defaults.freeInflightMax,
      Defaults.freeQueueMax,
    );
  }

  static async start(config: ShardConfig, clock: Clock = systemClock): Promise<MetadataShard> {
    const shard = new MetadataShard(config, new TokenAuthority(config.secret, clock), clock);
    shard.#nats = await connect({ servers: config.natsUrl, name: `pocket-shard-${config.shardId}`, maxReconnectAttempts: -1 });
    shard.nodes.follow(shard.#nats);
    shard.#sub = serveOnNats(shard.#nats, Subjects.shard(config.shardId), shard.router());
    shard.#heartbeat();
    shard.#timers.push(setInterval(() => shard.#heartbeat(), shard.heartbeatIntervalMs));
    shard.#timers.push(setInterval(() => shard.sweepExpiredWrites(), Math.min(5_000, shard.pendingWriteTtlMs)));
    return shard;
  }

  get shardId(): string { return this.config.shardId; }
  get heartbeatIntervalMs(): number { return this.config.heartbeatIntervalMs ?? Defaults.heartbeatIntervalMs; }
  get pendingWriteTtlMs(): number { return this.config.pendingWriteTtlMs ?? Defaults.pendingWriteTtlMs; }
  get extentBytesMax(): number { return this.config.extentBytesMax ?? Defaults.extentBytesMax; }

  router(): Router {
    return new Router()
      .on(ShardOps.attachJob, (req) => {
        this.tokens.verifyCluster(req.auth);
        if (!this.#jobs.has(req.jobId)) {
          this.#jobs.set(req.jobId, {
            jobId: req.jobId, name: req.name, ns: new Namespace(() => this.clock.now()),
            picker: new WeightedPicker(req.weights), pending: new Map(),
          });
        } else {
          this.#jobs.get(req.jobId)!.picker = new WeightedPicker(req.weights);
        }
        return {};
      })
      .on(ShardOps.detachJob, (req) => {
        this.tokens.verifyCluster(req.auth);
        const job = this.#jobs.get(req.jobId);
        if (!job) throw new UnknownJobError(`job ${req.jobId} is not on shard ${this.shardId}`);
        this.#jobs.delete(req.jobId);
        // Nodes drop the job's extents wholesale on deregistration; nothing to free one by one.
        return { objects: job.ns.objects, bytes: job.ns.bytes };
      })
      .on(ShardOps.setWeights, (req) => {
        this.tokens.verifyCluster(req.auth);
        const job = this.#jobs.get(req.jobId);
        if (!job) throw new UnknownJobError(`job ${req.jobId} is not on shard ${this.shardId}`);
        job.picker = new WeightedPicker(req.weights);
        return {};
      })
      .on(ShardOps.objectCreate, (req) => {
        const job = this.#job(req.token);
        const parts = parsePath(req.path);
        job.ns.checkPutTarget(parts, req.createOnly ?? false);
        if (job.pending.size >= (this.config.pendingWritesPerJobMax ?? Defaults.pendingWritesPerJobMax)) {
          throw new BusyError(`job ${job.jobId} has ${job.pending.size} puts in progress`);
        }
        const extents = this.#layout(job, req.size);
        const writeId = this.#newId();
        job.pending.set(writeId, {
          writeId, parts, size: req.size, createOnly: req.createOnly ?? false, extents,
          expiresAtMs: this.clock.now() + this.pendingWriteTtlMs,
        });
        return { writeId, extents: extents.map((e) => this.#ref(e)) };
      })
      .on(ShardOps.objectCommit, (req) => {
        const job = this.#job(req.token);
        const w = job.pending.get(req.writeId);
        if (!w) throw new NotFoundError(`write ${req.writeId} is unknown or expired`);
        job.pending.delete(req.writeId);
        let replaced: readonly Extent[];
        let version: number;
        try {
          const r = job.ns.put(w.parts, w.size, w.extents, w.createOnly);
          replaced = r.replaced;
          version = r.entry.version;
        } catch (e) {
          this.#frees.enqueue(job.jobId, w.extents);
          throw e;
        }
        // Extent ids are never reused, so a reader still holding the old list gets NotFound, never these bytes.
        this.#frees.enqueue(job.jobId, replaced);
        return { path: w.parts.join("/"), version, size: w.size };
      })
      .on(ShardOps.objectAbort, (req) => {
        const job = this.#job(req.token);
        const w = job.pending.get(req.writeId);
        if (w) {
          job.pending.delete(req.writeId);
          this.#frees.enqueue(job.jobId, w.extents);
        }
        return {};
      })
      .on(ShardOps.objectLookup, (req) => {
        const job = this.#job(req.token);
        const parts = parsePath(req.path);
        const o = job.ns.getObject(parts);
        return { path: parts.join("/"), size: o.size, version: o.version, extents: o.extents.map((e) => this.#ref(e)) };
      })
      .on(ShardOps.stat, (req) => {
        const job = this.#job(req.token);
        const parts = parsePath(req.path);
        const e = job.ns.find(parts);
        if (!e) throw new NotFoundError(`${parts.join("/")} not found`);
        return e.kind === "object"
          ? { path: parts.join("/"), type: "object" as const, size: e.size, version: e.version, modifiedAtMs: e.modifiedAtMs, children: 0 }
          : { path: parts.join("/"), type: "directory" as const, size: 0, version: 0, modifiedAtMs: e.modifiedAtMs, children: e.children.size };
      })
      .on(ShardOps.delete, (req) => {
        const job = this.#job(req.token);
        const { totals, extents } = job.ns.delete(parsePath(req.path), req.recursive ?? false);
        this.#frees.enqueue(job.jobId, extents);
        return { objects: totals.objects, bytes: totals.bytes };
      })
      .on(ShardOps.mkdir, (req) => {
        this.#job(req.token).ns.mkdir(parsePath(req.path));
        return {};
      })
      .on(ShardOps.list, (req) => {
        const dir = this.#job(req.token).ns.getDir(parsePath(req.path));
        const limit = req.limit ?? 1000;
        const names = [...dir.children.keys()].sort();
        let start = 0;
        if (req.after !== undefined) {
          const after = req.after;
          start = names.findIndex((n) => n > after);
          if (start < 0) start = names.length;
        }
        const page = names.slice(start, start + limit);
        return {
          entries: page.map((name) => {
            const e = dir.children.get(name)!;
            return e.kind === "object" ? { name, type: "object" as const, size: e.size } : { name, type: "directory" as const, size: 0 };
          }),
          more: start + limit < names.length,
        };
      })
      .on(ShardOps.count, (req) => {
        const t = this.#job(req.token).ns.count(parsePath(req.path), req.recursive ?? false);
        return { objects: t.objects, directories: t.directories, bytes: t.bytes };
      });
  }

  /** Abandons puts that were not committed in time, freeing their extents. */
  sweepExpiredWrites(): number {
    const now = this.clock.now();
    let n = 0;
    for (const job of this.#jobs.values()) {
      for (const w of job.pending.values()) {
        if (w.expiresAtMs > now) continue;
        job.pending.delete(w.writeId);
        this.#frees.enqueue(job.jobId, w.extents);
        n++;
      }
    }
    return n;
  }

  /** Resolves once every queued free has been sent. */
  freesIdle(): Promise<void> {
    return this.#frees.idle();
  }

  #job(token: string | undefined): JobState {
    const claims = this.tokens.verifyJob(token);
    if (claims.shardId !== this.shardId) throw new UnauthorizedError(`the token is for shard ${claims.shardId}, not ${this.shardId}`);
    const job = this.#jobs.get(claims.jobId);
    if (!job) throw new UnknownJobError(`job ${claims.jobId} is not registered`);
    return job;
  }

  /**
   * Splits `size` bytes into extents over the job's weight map, on nodes with
   * room. Nodes heard from recently come first; a node whose heartbeats are
   * late (a busy machine) is still used rather than failing the put: the
   * controller takes failed nodes out of the weight map.
   */
  #layout(job: JobState, size: number): Extent[] {
    const extents: Extent[] = [];
    let picker = job.picker;
    // No weight map yet (no nodes at registration): spread over every node this shard knows.
    if (!picker.weights.some((w) => w.weight > 0)) {
      const all = this.nodes.all();
      if (all.length === 0) throw new NodeUnavailableError("no storage node is known to this shard yet");
      picker = new WeightedPicker(all.map((r) => ({ nodeId: r.heartbeat.nodeId, weight: 1 / all.length })));
      job.picker = picker;
    }
    const planned = new Map<string, number>();
    for (let offset = 0; offset < size; offset += this.extentBytesMax) {
      const length = Math.min(this.extentBytesMax, size - offset);
      const fits = (id: string): boolean => this.nodes.freeBytes(id) - (planned.get(id) ?? 0) >= length;
      const nodeId = picker.pick((id) => this.nodes.isLive(id) && fits(id)) ?? picker.pick(fits);
      if (nodeId === undefined) {
        throw new CapacityExceededError(`no node of job ${job.jobId} has room for ${size} bytes`);
      }
      planned.set(nodeId, (planned.get(nodeId) ?? 0) + length);
      extents.push({ nodeId, extentId: this.#newId(), length });
    }
    for (const [nodeId, bytes] of planned) this.nodes.get(nodeId)!.placedBytes += bytes;
    return extents;
  }

  #ref(e: Extent): ExtentRef {
    return { nodeId: e.nodeId, extentId: e.extentId, length: e.length, addr: this.nodes.get(e.nodeId)?.heartbeat.addr ?? "" };
  }

  #newId(): string {
    this.#seq++;
    return `${this.#bootId}.${this.#seq.toString(36)}`;
  }

  #heartbeat(): void {
    let objects = 0;
    for (const j of this.#jobs.values()) objects += j.ns.objects;
    const hb: ShardHeartbeat = { shardId: this.shardId, jobs: this.#jobs.size, objects, sentAtMs: this.clock.now() };
    this.#nats?.publish(Subjects.shardHeartbeat(this.shardId), encodeJson(hb));
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#sub?.unsubscribe();
    this.nodes.stop();
    await this.#nats?.drain().catch(() => undefined);
  }
}
