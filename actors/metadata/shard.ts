import { randomBytes } from "node:crypto";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import {
  BusyError, CapacityExceededError, InvalidArgumentError, NodeUnavailableError, NotFoundError, TooLargeError, UnauthorizedError, UnknownJobError,
} from "../../schemas/errors";
import { NodeOps, ShardOps, type ExtentRef, type ShardHeartbeat, type ShardUsage } from "../../schemas/operations";
import { encodeJson } from "../../bus/body";
import { NatsCaller, serveOnNats } from "../../bus/nats-rpc";
import { Router, WithPayload } from "../../bus/router";
import { TcpServer } from "../../bus/tcp-server";
import { checkSubjectToken, Subjects } from "../../bus/subjects";
import { systemClock, type Clock } from "../runtime/clock";
import { mapLimit } from "../runtime/concurrency";
import { Defaults, type NatsSettings } from "../runtime/config";
import { errorFields, logger } from "../runtime/log";
import { NodeDirectory } from "../runtime/node-directory";
import { TokenAuthority } from "../runtime/tokens";
import { FreeQueue } from "./free-queue";
import { Namespace, parsePath, type Extent } from "./namespace";
import { WeightedPicker } from "./placement";

export interface ShardConfig extends NatsSettings {
  readonly shardId: string;
  /** Interface and port of the direct transport (port 0 picks a free one). */
  readonly host?: string;
  readonly port?: number;
  /** Objects up to this size are kept inline in the shard. */
  readonly inlineBytesMax?: number;
  /** Inline bytes the shard holds at most, over all its jobs. */
  readonly inlineCapacityBytes?: number;
  readonly extentBytesMax?: number;
  readonly heartbeatIntervalMs?: number;
  readonly pendingWriteTtlMs?: number;
  readonly pendingWritesPerJobMax?: number;
  readonly namespaceEntriesMax?: number;
}

interface PendingWrite {
  readonly writeId: string;
  readonly parts: readonly string[];
  /** Declared size; undefined for a streamed put, whose extents grow by object.extend. */
  readonly size: number | undefined;
  readonly createOnly: boolean;
  readonly extents: Extent[];
  readonly expiresAtMs: number;
}

interface JobState {
  readonly jobId: string;
  readonly name: string;
  readonly ns: Namespace;
  picker: WeightedPicker;
  readonly pending: Map<string, PendingWrite>;
  inlineBytes: number;
  /** Requests served for the job (a counter the controller turns into its usage ledger). */
  requests: number;
}

/** Jobs per usage message. */
const usageChunk = 1000;
/** Extents one shard moves at once when a node is drained. */
const migrateInflightMax = 4;

/** Extents one put may have (1 TiB at the default extent size). */
const extentsPerWriteMax = 1 << 20;

/**
 * A metadata shard: owns the namespaces of the jobs the controller gives it,
 * lays out new objects over the job's weight map, and makes writes visible at
 * commit. Keeps small objects inline (one round trip per put or get); larger
 * ones live on storage nodes. Serves over NATS and the direct transport with
 * the same handlers.
 */
export class MetadataShard {
  readonly #log = logger("shard");
  readonly #jobs = new Map<string, JobState>();
  readonly #bootId = randomBytes(6).toString("base64url").replace(/[-_]/g, "x");
  #seq = 0;
  #nats: NatsConnection | undefined;
  #sub: Subscription | undefined;
  #tcp: TcpServer | undefined;
  #inlineBytes = 0;
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
    checkSubjectToken("shard", config.shardId);
    const shard = new MetadataShard(config, new TokenAuthority(config.secret, clock), clock);
    shard.#nats = await connect({ servers: config.natsUrl, name: `pocket-shard-${config.shardId}`, maxReconnectAttempts: -1 });
    shard.nodes.follow(shard.#nats);
    const router = shard.router();
    shard.#tcp = await TcpServer.listen(router, {
      host: config.host ?? "127.0.0.1",
      port: config.port ?? 0,
      frameBytesMax: shard.inlineBytesMax + 64 * 1024,
    });
    shard.#sub = serveOnNats(shard.#nats, Subjects.shard(config.shardId), router);
    shard.#heartbeat();
    shard.#timers.push(setInterval(() => shard.#heartbeat(), shard.heartbeatIntervalMs));
    shard.#timers.push(setInterval(() => shard.sweepExpiredWrites(), Math.min(5_000, shard.pendingWriteTtlMs)));
    return shard;
  }

  get shardId(): string { return this.config.shardId; }
  get heartbeatIntervalMs(): number { return this.config.heartbeatIntervalMs ?? Defaults.heartbeatIntervalMs; }
  get pendingWriteTtlMs(): number { return this.config.pendingWriteTtlMs ?? Defaults.pendingWriteTtlMs; }
  get extentBytesMax(): number { return this.config.extentBytesMax ?? Defaults.extentBytesMax; }
  get inlineBytesMax(): number { return this.config.inlineBytesMax ?? Defaults.inlineBytesMax; }
  /** host:port of the direct transport. */
  get addr(): string { return this.#tcp!.address; }

  router(): Router {
    return new Router()
      .on(ShardOps.attachJob, (req) => {
        this.tokens.verifyCluster(req.auth);
        if (!this.#jobs.has(req.jobId)) {
          this.#jobs.set(req.jobId, {
            jobId: req.jobId, name: req.name, ns: new Namespace(() => this.clock.now(), this.config.namespaceEntriesMax ?? Defaults.namespaceEntriesMax),
            picker: new WeightedPicker(req.weights), pending: new Map(), inlineBytes: 0, requests: 0,
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
        this.#inlineBytes -= job.inlineBytes;
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
      .on(ShardOps.migrate, async (req) => {
        this.tokens.verifyCluster(req.auth);
        return this.migrateFrom(req.nodeId);
      })
      .on(ShardOps.info, () => ({
        shardId: this.shardId, addr: this.addr, inlineBytesMax: this.inlineBytesMax, extentBytesMax: this.extentBytesMax,
      }))
      .on(ShardOps.objectPut, (req, ctx) => {
        const job = this.#job(req.token);
        const parts = parsePath(req.path);
        const bytes = ctx.payload ?? new Uint8Array(0);
        if (bytes.byteLength > this.inlineBytesMax) {
          throw new TooLargeError(`${bytes.byteLength} bytes is over the inline limit of ${this.inlineBytesMax}; use object.create`);
        }
        const capacity = this.config.inlineCapacityBytes ?? Defaults.inlineCapacityBytes;
        if (this.#inlineBytes + bytes.byteLength > capacity) throw new CapacityExceededError(`shard ${this.shardId} holds ${capacity} inline bytes at most`);
        // Own copy: the request's buffer may be shared with other frames.
        const copy = Buffer.allocUnsafeSlow(bytes.byteLength);
        copy.set(bytes);
        const r = job.ns.put(parts, copy.byteLength, [], req.createOnly ?? false, copy);
        this.#inlineBytes += copy.byteLength - r.replacedInlineBytes;
        job.inlineBytes += copy.byteLength - r.replacedInlineBytes;
        this.#frees.enqueue(job.jobId, r.replaced);
        return { path: parts.join("/"), version: r.entry.version, size: copy.byteLength };
      })
      .on(ShardOps.objectGet, (req) => {
        const job = this.#job(req.token);
        const parts = parsePath(req.path);
        const o = job.ns.getObject(parts);
        const head = { path: parts.join("/"), size: o.size, version: o.version };
        if (o.inline) {
          const start = Math.min(req.offset ?? 0, o.size);
          const end = req.length === undefined ? o.size : Math.min(o.size, start + req.length);
          return new WithPayload({ ...head, inline: true, extents: [] }, o.inline.subarray(start, end));
        }
        return { ...head, inline: false, extents: o.extents.map((e) => this.#ref(e)) };
      })
      .on(ShardOps.objectCreate, (req) => {
        const job = this.#job(req.token);
        const parts = parsePath(req.path);
        job.ns.checkPutTarget(parts, req.createOnly ?? false);
        if (job.pending.size >= (this.config.pendingWritesPerJobMax ?? Defaults.pendingWritesPerJobMax)) {
          throw new BusyError(`job ${job.jobId} has ${job.pending.size} puts in progress`);
        }
        const lengths: number[] = [];
        if (req.size !== undefined) {
          if (Math.ceil(req.size / this.extentBytesMax) > extentsPerWriteMax) throw new TooLargeError(`${req.size} bytes is more than one put may hold`);
          for (let offset = 0; offset < req.size; offset += this.extentBytesMax) lengths.push(Math.min(this.extentBytesMax, req.size - offset));
        }
        const extents = this.#layout(job, lengths);
        const writeId = this.#newId();
        job.pending.set(writeId, {
          writeId, parts, size: req.size, createOnly: req.createOnly ?? false, extents,
          expiresAtMs: this.clock.now() + this.pendingWriteTtlMs,
        });
        return { writeId, extents: extents.map((e) => this.#ref(e)) };
      })
      .on(ShardOps.objectExtend, (req) => {
        const job = this.#job(req.token);
        const w = job.pending.get(req.writeId);
        if (!w) throw new NotFoundError(`write ${req.writeId} is unknown or expired`);
        if (w.size !== undefined) throw new InvalidArgumentError(`write ${req.writeId} declared its size; only streamed puts extend`);
        if (w.extents.length + req.lengths.length > extentsPerWriteMax) throw new TooLargeError(`a put holds ${extentsPerWriteMax} extents at most`);
        for (const l of req.lengths) if (l > this.extentBytesMax) throw new InvalidArgumentError(`extent of ${l} bytes exceeds ${this.extentBytesMax}`);
        const added = this.#layout(job, req.lengths);
        w.extents.push(...added);
        return { extents: added.map((e) => this.#ref(e)) };
      })
      .on(ShardOps.objectCommit, (req) => {
        const job = this.#job(req.token);
        const w = job.pending.get(req.writeId);
        if (!w) throw new NotFoundError(`write ${req.writeId} is unknown or expired`);
        job.pending.delete(req.writeId);
        const size = w.size ?? w.extents.reduce((s, e) => s + e.length, 0);
        let r: ReturnType<Namespace["put"]>;
        try {
          r = job.ns.put(w.parts, size, w.extents, w.createOnly);
        } catch (e) {
          this.#frees.enqueue(job.jobId, w.extents);
          throw e;
        }
        this.#inlineBytes -= r.replacedInlineBytes;
        job.inlineBytes -= r.replacedInlineBytes;
        // Extent ids are never reused, so a reader still holding the old list gets NotFound, never these bytes.
        this.#frees.enqueue(job.jobId, r.replaced);
        return { path: w.parts.join("/"), version: r.entry.version, size };
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
        const { totals, extents, inlineBytes } = job.ns.delete(parsePath(req.path), req.recursive ?? false);
        this.#inlineBytes -= inlineBytes;
        job.inlineBytes -= inlineBytes;
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
    job.requests++;
    return job;
  }

  /**
   * Splits `size` bytes into extents over the job's weight map, on nodes with
   * room. Nodes heard from recently come first; a node whose heartbeats are
   * late (a busy machine) is still used rather than failing the put: the
   * controller takes failed nodes out of the weight map.
   */
  #layout(job: JobState, lengths: readonly number[]): Extent[] {
    const extents: Extent[] = [];
    let picker = job.picker;
    // No weight map yet (no nodes at registration): spread over every node this shard knows.
    if (lengths.length > 0 && !picker.weights.some((w) => w.weight > 0)) {
      const all = this.nodes.all();
      if (all.length === 0) throw new NodeUnavailableError("no storage node is known to this shard yet");
      picker = new WeightedPicker(all.map((r) => ({ nodeId: r.heartbeat.nodeId, weight: 1 / all.length })));
      job.picker = picker;
    }
    const planned = new Map<string, number>();
    for (const length of lengths) {
      const fits = (id: string): boolean => this.nodes.freeBytes(id) - (planned.get(id) ?? 0) >= length;
      const nodeId = picker.pick((id) => this.nodes.isLive(id) && fits(id)) ?? picker.pick(fits);
      if (nodeId === undefined) {
        throw new CapacityExceededError(`no node of job ${job.jobId} has room for ${lengths.reduce((a, b) => a + b, 0)} more bytes`);
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
    const now = this.clock.now();
    const hb: ShardHeartbeat = { shardId: this.shardId, addr: this.addr, jobs: this.#jobs.size, objects, sentAtMs: now };
    this.#nats?.publish(Subjects.shardHeartbeat(this.shardId), encodeJson(hb));
    // Usage of every job, in chunks of at most usageChunk jobs.
    let chunk: ShardUsage["jobs"] = [];
    const flush = (): void => {
      const u: ShardUsage = { shardId: this.shardId, jobs: chunk, sentAtMs: now };
      this.#nats?.publish(Subjects.shardUsage(this.shardId), encodeJson(u));
      chunk = [];
    };
    for (const j of this.#jobs.values()) {
      chunk.push({ jobId: j.jobId, bytes: j.ns.bytes, requests: j.requests });
      if (chunk.length >= usageChunk) flush();
    }
    if (chunk.length > 0) flush();
  }

  /**
   * Moves every extent on `nodeId` (a draining node past its deadline) to the
   * job's other nodes: copy, swap the object's layout to the copy, free the
   * original. An object overwritten or deleted meanwhile keeps its new state
   * and the copy is freed. Readers holding the old layout still read the old
   * extent until the node goes away, then re-read the layout.
   */
  async migrateFrom(nodeId: string): Promise<{ extents: number; bytes: number; failed: number }> {
    const work: Array<{ job: JobState; parts: string[]; extent: Extent }> = [];
    for (const job of this.#jobs.values()) {
      for (const { parts, entry } of job.ns.objectsWith((e) => e.nodeId === nodeId)) {
        for (const extent of entry.extents) if (extent.nodeId === nodeId) work.push({ job, parts, extent });
      }
    }
    let extents = 0, bytes = 0, failed = 0;
    await mapLimit(work, migrateInflightMax, async ({ job, parts, extent }) => {
      try {
        const token = this.tokens.issueJob(job.jobId, this.shardId, 10 * 60_000);
        const read = await this.#node(nodeId).call(NodeOps.extentRead, { token, extentId: extent.extentId });
        const avoid = (id: string): boolean => id !== nodeId && this.nodes.isLive(id) && this.nodes.freeBytes(id) >= extent.length;
        const target = job.picker.pick(avoid) ?? this.nodes.all().map((r) => r.heartbeat.nodeId).find(avoid);
        if (target === undefined) throw new CapacityExceededError(`no node has room for extent ${extent.extentId}`);
        const copy: Extent = { nodeId: target, extentId: this.#newId(), length: extent.length };
        await this.#node(target).call(NodeOps.extentWrite, { token, extentId: copy.extentId }, { payload: read.payload ?? new Uint8Array(0) });
        if (this.#jobs.get(job.jobId) === job && job.ns.replaceExtent(parts, extent.extentId, copy)) {
          this.#frees.enqueue(job.jobId, [extent]);
          extents++;
          bytes += extent.length;
        } else {
          this.#frees.enqueue(job.jobId, [copy]);
        }
      } catch (e) {
        failed++;
        this.#log.warn("extent not moved", { jobId: job.jobId, extentId: extent.extentId, nodeId, ...errorFields(e) });
      }
    });
    return { extents, bytes, failed };
  }

  #node(nodeId: string): NatsCaller {
    return new NatsCaller(this.#nats!, Subjects.node(nodeId), Defaults.rpcTimeoutMs);
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#sub?.unsubscribe();
    await this.#tcp?.close();
    this.nodes.stop();
    await this.#nats?.drain().catch(() => undefined);
  }
}
