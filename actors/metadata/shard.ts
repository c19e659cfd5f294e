import { randomBytes } from "node:crypto";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  BusyError, CapacityExceededError, IntegrityError, InvalidArgumentError, NodeUnavailableError, NotFoundError, TooLargeError, UnauthorizedError, UnknownJobError,
} from "../../schemas/errors";
import { NodeOps, ShardOps, WireLimits, type ExtentRef, type ShardHeartbeat, type ShardUsage, type WriteReceipt } from "../../schemas/operations";
import type { ReplyOf, RequestOf } from "../../schemas/operation";
import { crc32 } from "../../lib/checksum";
import { encodeJson } from "../../bus/body";
import { NatsCaller, serveOnNats } from "../../bus/nats-rpc";
import { connectAs } from "../../bus/nats-connect";
import { Role } from "../../bus/credentials";
import { newTransportIdentity, type TransportIdentity } from "../../bus/handshake";
import { Router, WithPayload } from "../../bus/router";
import { TcpServer } from "../../bus/tcp-server";
import { readServerTls, type ServerTlsFiles } from "../../bus/tls";
import { checkSubjectToken, Subjects } from "../../bus/subjects";
import { systemClock, type Clock } from "../../lib/clock";
import { mapLimit } from "../../lib/concurrency";
import { Defaults, type NatsSettings } from "../runtime/config";
import { errorFields, logger } from "../../lib/log";
import { NodeDirectory } from "../runtime/node-directory";
import { TokenAuthority, tokenScope } from "../../bus/tokens";
import { FreeQueue } from "./free-queue";
import { Namespace, parsePath, type Extent } from "./namespace";
import { WeightedPicker } from "./placement";

export interface ShardConfig extends NatsSettings {
  readonly shardId: string;
  /** Interface and port of the direct transport (port 0 picks a free one). */
  readonly host?: string;
  readonly port?: number;
  /** Serve the direct transport over TLS only, with this certificate (clients verify it with the cluster's CA). */
  readonly tls?: ServerTlsFiles;
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

/** An extent laid out for a put: its crc is known when its node's receipt comes in. */
type PlannedExtent = Omit<Extent, "crc">;

interface PendingWrite {
  readonly writeId: string;
  readonly parts: readonly string[];
  /** Declared size; undefined for a streamed put, whose extents grow by object.extend. */
  readonly size: number | undefined;
  readonly createOnly: boolean;
  readonly extents: PlannedExtent[];
  /** Extent id → position in `extents` (receipts name extents by id). */
  readonly index: Map<string, number>;
  /** CRC-32 of each extent a node gave a valid receipt for, by extent id: commit needs one for every extent. */
  readonly crcs: Map<string, number>;
  /** Grants for the write's extents expire with it: nothing can be written to them once it is swept. */
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
/** Room in a request frame for a full batch of receipts (object.commit, object.written): 256 bytes of JSON each, more than the longest takes. */
const receiptsFrameBytesMax = WireLimits.receiptsPerCallMax * 256;

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
  #tcp: TcpServer | undefined;
  #inlineBytes = 0;
  #timers: NodeJS.Timeout[] = [];
  /** Proves this shard's identity to clients of its direct transport. */
  readonly #identity: TransportIdentity;
  #subs: Subscription[] = [];
  readonly nodes: NodeDirectory;
  readonly #frees: FreeQueue;

  private constructor(readonly config: ShardConfig, private readonly tokens: TokenAuthority, private readonly clock: Clock) {
    this.nodes = new NodeDirectory(clock, this.heartbeatIntervalMs);
    this.#identity = newTransportIdentity(config.shardId);
    this.#frees = new FreeQueue(
      (nodeId) => new NatsCaller(this.#nats!, Subjects.nodeControl(nodeId), Defaults.rpcTimeoutMs),
      Defaults.freeInflightMax,
      Defaults.freeQueueMax,
    );
  }

  static async start(config: ShardConfig, clock: Clock = systemClock): Promise<MetadataShard> {
    checkSubjectToken("shard", config.shardId);
    const shard = new MetadataShard(config, new TokenAuthority(config.secret, clock), clock);
    shard.#nats = await connectAs(config, Role.Shard, config.shardId, { name: `pocket-shard-${config.shardId}` });
    shard.nodes.follow(shard.#nats);
    const router = shard.router();
    shard.#tcp = await TcpServer.listen(router, {
      host: config.host ?? "127.0.0.1",
      port: config.port ?? 0,
      frameBytesMax: shard.inlineBytesMax + 64 * 1024 + receiptsFrameBytesMax,
      identity: shard.#identity,
      authenticate: (token) => { shard.tokens.verifyJob(token); },
      tls: config.tls ? readServerTls(config.tls) : undefined,
    });
    // Lambdas' requests on their job's subjects; the controller's on the shard's control subjects (NATS only).
    shard.#subs.push(serveOnNats(shard.#nats, Subjects.shardJobs(config.shardId), router, { jobScoped: true }));
    shard.#subs.push(serveOnNats(shard.#nats, Subjects.shardControl(config.shardId), shard.controlRouter()));
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

  /** Cluster-only operations: served on the shard's control subjects, which only the controller may publish to. */
  controlRouter(): Router {
    return new Router()
      .on(ShardOps.attachJob, (req) => {
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
        const job = this.#jobs.get(req.jobId);
        if (!job) throw new UnknownJobError(`job ${req.jobId} is not on shard ${this.shardId}`);
        this.#jobs.delete(req.jobId);
        this.#inlineBytes -= job.inlineBytes;
        // Nodes drop the job's extents wholesale on deregistration; nothing to free one by one.
        return { objects: job.ns.objects, bytes: job.ns.bytes };
      })
      .on(ShardOps.setWeights, (req) => {
        const job = this.#jobs.get(req.jobId);
        if (!job) throw new UnknownJobError(`job ${req.jobId} is not on shard ${this.shardId}`);
        job.picker = new WeightedPicker(req.weights);
        return {};
      })
      .on(ShardOps.migrate, async (req) => this.migrateFrom(req.nodeId));
  }

  /** A job's operations: on the direct transport and on the job's NATS subjects. */
  router(): Router {
    return new Router(tokenScope(this.tokens))
      .on(ShardOps.info, () => ({
        shardId: this.shardId, addr: this.addr, key: this.#identity.publicKey, inlineBytesMax: this.inlineBytesMax, extentBytesMax: this.extentBytesMax,
      }))
      .on(ShardOps.objectPut, (req, ctx) => this.#putInline(req, ctx.payload ?? new Uint8Array(0)))
      .on(ShardOps.objectGet, (req) => this.#get(req))
      .on(ShardOps.objectCreate, (req) => this.#create(req))
      .on(ShardOps.objectExtend, (req) => this.#extend(req))
      .on(ShardOps.objectWritten, (req) => {
        const job = this.#job(req.token);
        const w = this.#pendingWrite(job, req.writeId);
        this.#takeReceipts(job, w, req.receipts);
        return { written: w.crcs.size };
      })
      .on(ShardOps.objectCommit, (req) => this.#commit(req))
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

  /** object.put: an inline object, stored only if its bytes match the writer's crc. */
  #putInline(req: RequestOf<typeof ShardOps.objectPut>, bytes: Uint8Array): ReplyOf<typeof ShardOps.objectPut> {
    const job = this.#job(req.token);
    const parts = parsePath(req.path);
    if (bytes.byteLength > this.inlineBytesMax) {
      throw new TooLargeError(`${bytes.byteLength} bytes is over the inline limit of ${this.inlineBytesMax}; use object.create`);
    }
    if (req.crc === undefined) throw new InvalidArgumentError("object.put carries no crc of its payload");
    const crc = crc32(bytes);
    if (crc !== req.crc) {
      throw new IntegrityError(`${parts.join("/")}: the ${bytes.byteLength} bytes received have crc ${crc}, the sender's is ${req.crc}; nothing stored`);
    }
    const capacity = this.config.inlineCapacityBytes ?? Defaults.inlineCapacityBytes;
    if (this.#inlineBytes + bytes.byteLength > capacity) throw new CapacityExceededError(`shard ${this.shardId} holds ${capacity} inline bytes at most`);
    // Own copy: the request's buffer may be shared with other frames.
    const copy = Buffer.allocUnsafeSlow(bytes.byteLength);
    copy.set(bytes);
    const r = job.ns.put(parts, copy.byteLength, [], req.createOnly ?? false, { bytes: copy, crc });
    this.#inlineBytes += copy.byteLength - r.replacedInlineBytes;
    job.inlineBytes += copy.byteLength - r.replacedInlineBytes;
    this.#frees.enqueue(job.jobId, r.replaced);
    return { path: parts.join("/"), version: r.entry.version, size: copy.byteLength };
  }

  /** object.get: an inline object's bytes with the crcs to check them by, or a read layout with each extent's crc. */
  #get(req: RequestOf<typeof ShardOps.objectGet>): ReplyOf<typeof ShardOps.objectGet> | WithPayload<ReplyOf<typeof ShardOps.objectGet>> {
    const job = this.#job(req.token);
    const parts = parsePath(req.path);
    const o = job.ns.getObject(parts);
    const head = { path: parts.join("/"), size: o.size, version: o.version };
    if (!o.inline) return { ...head, inline: false, extents: o.extents.map((e) => this.#ref(e)) };
    const start = Math.min(req.offset ?? 0, o.size);
    const end = req.length === undefined ? o.size : Math.min(o.size, start + req.length);
    const crcs = {
      crc: o.inlineCrc ?? crc32(o.inline),
      prefixCrc: crc32(o.inline.subarray(0, start)),
      suffixCrc: crc32(o.inline.subarray(end)),
    };
    return new WithPayload({ ...head, inline: true, extents: [], ...crcs }, o.inline.subarray(start, end));
  }

  /** object.create: lays out the extents of a put, each with a grant that expires with the write. */
  #create(req: RequestOf<typeof ShardOps.objectCreate>): ReplyOf<typeof ShardOps.objectCreate> {
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
    const expiresAtMs = this.clock.now() + this.pendingWriteTtlMs;
    job.pending.set(writeId, {
      writeId, parts, size: req.size, createOnly: req.createOnly ?? false, extents,
      index: new Map(extents.map((e, i) => [e.extentId, i])), crcs: new Map(), expiresAtMs,
    });
    return { writeId, extents: extents.map((e) => this.#writeRef(job, e, expiresAtMs)) };
  }

  /** object.extend: more extents for a streamed put, with grants that expire with the write. */
  #extend(req: RequestOf<typeof ShardOps.objectExtend>): ReplyOf<typeof ShardOps.objectExtend> {
    const job = this.#job(req.token);
    const w = this.#pendingWrite(job, req.writeId);
    if (w.size !== undefined) throw new InvalidArgumentError(`write ${req.writeId} declared its size; only streamed puts extend`);
    if (w.extents.length + req.lengths.length > extentsPerWriteMax) throw new TooLargeError(`a put holds ${extentsPerWriteMax} extents at most`);
    for (const l of req.lengths) if (l > this.extentBytesMax) throw new InvalidArgumentError(`extent of ${l} bytes exceeds ${this.extentBytesMax}`);
    const added = this.#layout(job, req.lengths);
    for (const e of added) {
      w.index.set(e.extentId, w.extents.length);
      w.extents.push(e);
    }
    return { extents: added.map((e) => this.#writeRef(job, e, w.expiresAtMs)) };
  }

  /**
   * object.commit: makes the write visible once every extent has a node's
   * receipt (handed in now or by object.written). A commit missing any is
   * refused and the write stays pending, so the writer can finish and retry.
   */
  #commit(req: RequestOf<typeof ShardOps.objectCommit>): ReplyOf<typeof ShardOps.objectCommit> {
    const job = this.#job(req.token);
    const w = this.#pendingWrite(job, req.writeId);
    this.#takeReceipts(job, w, req.receipts ?? []);
    const extents = committedExtents(w);
    job.pending.delete(req.writeId);
    const size = w.size ?? extents.reduce((s, e) => s + e.length, 0);
    let r: ReturnType<Namespace["put"]>;
    try {
      r = job.ns.put(w.parts, size, extents, w.createOnly);
    } catch (e) {
      this.#frees.enqueue(job.jobId, w.extents);
      throw e;
    }
    this.#inlineBytes -= r.replacedInlineBytes;
    job.inlineBytes -= r.replacedInlineBytes;
    // Extent ids are never reused, so a reader still holding the old list gets NotFound, never these bytes.
    this.#frees.enqueue(job.jobId, r.replaced);
    return { path: w.parts.join("/"), version: r.entry.version, size };
  }

  #pendingWrite(job: JobState, writeId: string): PendingWrite {
    const w = job.pending.get(writeId);
    if (!w) throw new NotFoundError(`write ${writeId} is unknown or expired`);
    return w;
  }

  /**
   * Checks nodes' receipts for extents of a pending write and records their
   * crcs; all or none. A receipt must be for this job, the extent's node,
   * its id and its length: InvalidArgument for an extent not in the write,
   * Unauthorized for a receipt that does not verify.
   */
  #takeReceipts(job: JobState, w: PendingWrite, receipts: readonly WriteReceipt[]): void {
    for (const r of receipts) {
      const i = w.index.get(r.extentId);
      if (i === undefined) throw new InvalidArgumentError(`extent ${r.extentId} is not part of write ${w.writeId}`);
      const e = w.extents[i]!;
      this.tokens.verifyReceipt(r.receipt, { jobId: job.jobId, nodeId: e.nodeId, extentId: e.extentId, length: e.length, crc: r.crc });
    }
    for (const r of receipts) w.crcs.set(r.extentId, r.crc);
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
  #layout(job: JobState, lengths: readonly number[]): PlannedExtent[] {
    const extents: PlannedExtent[] = [];
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
        // A node not heard from lately (its heartbeats may be stuck behind a bus outage) has free space this shard does not know: unavailable, not full.
        const silent = picker.weights.filter((w) => w.weight > 0 && !this.nodes.isLive(w.nodeId)).map((w) => w.nodeId);
        if (silent.length > 0) {
          throw new NodeUnavailableError(`no node of job ${job.jobId} heard from lately has room for ${lengths.reduce((a, b) => a + b, 0)} more bytes; not heard from: ${silent.slice(0, 8).join(", ")}`);
        }
        throw new CapacityExceededError(`no node of job ${job.jobId} has room for ${lengths.reduce((a, b) => a + b, 0)} more bytes`);
      }
      planned.set(nodeId, (planned.get(nodeId) ?? 0) + length);
      extents.push({ nodeId, extentId: this.#newId(), length });
    }
    for (const [nodeId, bytes] of planned) this.nodes.get(nodeId)!.placedBytes += bytes;
    return extents;
  }

  /** Where an extent is, for a layout; with its committed crc once it has one (read layouts). */
  #ref(e: PlannedExtent & { readonly crc?: number }): ExtentRef {
    const hb = this.nodes.get(e.nodeId)?.heartbeat;
    const ref: ExtentRef = { nodeId: e.nodeId, extentId: e.extentId, length: e.length, addr: hb?.addr ?? "", key: hb?.key ?? "" };
    return e.crc === undefined ? ref : { ...ref, crc: e.crc };
  }

  /** A write layout's entry: where to write, with the grant the node requires, valid until the write expires. */
  #writeRef(job: JobState, e: PlannedExtent, expiresAtMs: number): ExtentRef {
    const grant = this.tokens.issueGrant({ jobId: job.jobId, nodeId: e.nodeId, extentId: e.extentId, length: e.length }, expiresAtMs - this.clock.now());
    return { ...this.#ref(e), grant };
  }

  #newId(): string {
    this.#seq++;
    return `${this.#bootId}.${this.#seq.toString(36)}`;
  }

  #heartbeat(): void {
    let objects = 0;
    for (const j of this.#jobs.values()) objects += j.ns.objects;
    const now = this.clock.now();
    const hb: ShardHeartbeat = { shardId: this.shardId, addr: this.addr, key: this.#identity.publicKey, jobs: this.#jobs.size, objects, sentAtMs: now };
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
   * extent until the node goes away, then re-read the layout. Source bytes
   * that do not match the committed crc are not copied (counted as failed):
   * the object keeps pointing at them, and readers get Integrity errors
   * rather than a copy that looks sound.
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
        if (await this.#moveExtent(nodeId, job, parts, extent)) {
          extents++;
          bytes += extent.length;
        }
      } catch (e) {
        failed++;
        this.#log.warn("extent not moved", { jobId: job.jobId, extentId: extent.extentId, nodeId, ...errorFields(e) });
      }
    });
    return { extents, bytes, failed };
  }

  /** Copies one extent off `nodeId` after checking it against its committed crc; true if the object now uses the copy. */
  async #moveExtent(nodeId: string, job: JobState, parts: readonly string[], extent: Extent): Promise<boolean> {
    const token = this.tokens.issueJob(job.jobId, this.shardId, 10 * 60_000);
    const read = await this.#node(nodeId, job.jobId).call(NodeOps.extentRead, { token, extentId: extent.extentId });
    const bytes = read.payload ?? new Uint8Array(0);
    const crc = crc32(bytes);
    if (bytes.byteLength !== extent.length || crc !== extent.crc) {
      throw new IntegrityError(`extent ${extent.extentId} on ${nodeId}: read ${bytes.byteLength} bytes with crc ${crc}, committed ${extent.length} with crc ${extent.crc}; not copied`);
    }
    const avoid = (id: string): boolean => id !== nodeId && this.nodes.isLive(id) && this.nodes.freeBytes(id) >= extent.length;
    const target = job.picker.pick(avoid) ?? this.nodes.all().map((r) => r.heartbeat.nodeId).find(avoid);
    if (target === undefined) throw new CapacityExceededError(`no node has room for extent ${extent.extentId}`);
    const copy: Extent = { nodeId: target, extentId: this.#newId(), length: extent.length, crc: extent.crc };
    const grant = this.tokens.issueGrant({ jobId: job.jobId, nodeId: target, extentId: copy.extentId, length: copy.length }, this.pendingWriteTtlMs);
    await this.#node(target, job.jobId).call(NodeOps.extentWrite, { token, extentId: copy.extentId, grant, crc: copy.crc }, { payload: bytes });
    if (this.#jobs.get(job.jobId) === job && job.ns.replaceExtent(parts, extent.extentId, copy)) {
      this.#frees.enqueue(job.jobId, [extent]);
      return true;
    }
    this.#frees.enqueue(job.jobId, [copy]);
    return false;
  }

  /** A node's operations for one job (migration reads and writes extents as the job, under grants it signs). */
  #node(nodeId: string, jobId: string): NatsCaller {
    return new NatsCaller(this.#nats!, Subjects.nodeJob(nodeId, jobId), Defaults.rpcTimeoutMs);
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    for (const sub of this.#subs) sub.unsubscribe();
    await this.#tcp?.close();
    this.nodes.stop();
    await this.#nats?.drain().catch(() => undefined);
  }
}

/** A pending write's extents with their crcs, or InvalidArgument naming the first extent without a receipt. */
function committedExtents(w: PendingWrite): Extent[] {
  const out: Extent[] = [];
  let missing = 0;
  let first: string | undefined;
  for (const e of w.extents) {
    const crc = w.crcs.get(e.extentId);
    if (crc === undefined) {
      missing++;
      first ??= e.extentId;
    } else {
      out.push({ ...e, crc });
    }
  }
  if (first !== undefined) {
    const more = missing > 1 ? ` (and ${missing - 1} more)` : "";
    throw new InvalidArgumentError(`write ${w.writeId}: extent ${first}${more} has no receipt from its node; write it and commit again with the receipt`);
  }
  return out;
}
