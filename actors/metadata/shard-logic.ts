import {
  ErrorCode, isPocketError, BusyError, CapacityExceededError, IntegrityError, InvalidArgumentError, NodeUnavailableError, NotFoundError, TooLargeError, UnauthorizedError, UnknownJobError,
} from "../../schemas/errors";
import type { ExtentRef, ShardHeartbeat, ShardUsage, Weight, WriteReceipt } from "../../schemas/operations";
import { ShardOps } from "../../schemas/operations";
import type { ReplyOf, RequestOf } from "../../schemas/operation";
import { assert } from "../../lib/assert";
import { crc32 } from "../../lib/checksum";
import type { Clock } from "../../lib/clock";
import type { Entropy } from "../../lib/entropy";
import { WithPayload } from "../../bus/router";
import type { TokenAuthority } from "../../bus/tokens";
import { Defaults } from "../runtime/config";
import type { NodeDirectory } from "../runtime/node-directory";
import { Namespace, parsePath, type Extent } from "./namespace";
import { WeightedPicker } from "./placement";

/** Limits of one shard; embedded defaults for anything not given. */
export interface ShardLimits {
  readonly shardId: string;
  /** Objects up to this size are kept inline in the shard. */
  readonly inlineBytesMax?: number;
  /** Inline bytes the shard holds at most, over all its jobs. */
  readonly inlineCapacityBytes?: number;
  readonly extentBytesMax?: number;
  readonly pendingWriteTtlMs?: number;
  readonly pendingWritesPerJobMax?: number;
  readonly namespaceEntriesMax?: number;
}

/** An extent laid out for a put: its crc is known when its node's receipt comes in. */
export type PlannedExtent = Omit<Extent, "crc">;

interface PendingWrite {
  readonly writeId: string;
  /** Undefined for a write reserved ahead: its path comes with the commit. */
  readonly parts: readonly string[] | undefined;
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

export interface JobState {
  readonly jobId: string;
  readonly name: string;
  readonly ns: Namespace;
  picker: WeightedPicker;
  readonly pending: Map<string, PendingWrite>;
  inlineBytes: number;
  /** Requests served for the job (a counter the controller turns into its usage ledger). */
  requests: number;
}

/** One extent to move off a node, with the object it belongs to. */
export interface MoveWork {
  readonly job: JobState;
  readonly parts: readonly string[];
  readonly extent: Extent;
}

/** Where extents a shard no longer needs go: the shell frees them on their nodes. */
export type FreeSink = (jobId: string, extents: ReadonlyArray<Pick<Extent, "nodeId" | "extentId">>) => void;

/** Why a write cannot be laid out now, which a reservation ahead gives way to. */
const noRoomNow: readonly ErrorCode[] = [ErrorCode.CapacityExceeded, ErrorCode.NodeUnavailable, ErrorCode.Busy];

/** Jobs per usage message. */
const usageChunk = 1000;
/** Extents one put may have (1 TiB at the default extent size). */
const extentsPerWriteMax = 1 << 20;

type Req<K extends keyof typeof ShardOps> = RequestOf<(typeof ShardOps)[K]>;
type Rep<K extends keyof typeof ShardOps> = ReplyOf<(typeof ShardOps)[K]>;

/**
 * A metadata shard's logic: the namespaces of the jobs the controller gives
 * it, layouts of new objects over each job's weight map, grants and
 * receipts, commits that make writes visible, and the inline bytes it holds.
 * No I/O: requests and ticks come in, replies come back, and extents to free
 * go to the `frees` sink. Time comes from the injected clock, ids from the
 * injected entropy: the same inputs give the same state. A request's token
 * is checked before anything else in it is looked at: a caller without one
 * learns nothing from validation errors.
 */
export class ShardLogic {
  readonly #jobs = new Map<string, JobState>();
  readonly #bootId: string;
  #seq = 0;
  #inlineBytes = 0;

  constructor(
    readonly limits: ShardLimits,
    private readonly tokens: TokenAuthority,
    private readonly clock: Clock,
    readonly nodes: NodeDirectory,
    private readonly frees: FreeSink,
    entropy: Entropy,
  ) {
    this.#bootId = entropy.bytes(6).toString("base64url").replace(/[-_]/g, "x");
  }

  get shardId(): string { return this.limits.shardId; }
  get pendingWriteTtlMs(): number { return this.limits.pendingWriteTtlMs ?? Defaults.pendingWriteTtlMs; }
  get extentBytesMax(): number { return this.limits.extentBytesMax ?? Defaults.extentBytesMax; }
  get inlineBytesMax(): number { return this.limits.inlineBytesMax ?? Defaults.inlineBytesMax; }
  get inlineCapacityBytes(): number { return this.limits.inlineCapacityBytes ?? Defaults.inlineCapacityBytes; }
  /** Inline bytes held over all jobs. */
  get inlineBytes(): number { return this.#inlineBytes; }
  get jobCount(): number { return this.#jobs.size; }

  /** Every job the shard holds, in no particular order (metrics read them on a scrape). */
  jobs(): IterableIterator<JobState> {
    return this.#jobs.values();
  }

  /** The job's state, if the shard holds it (the simulation reads it to check invariants). */
  jobState(jobId: string): JobState | undefined {
    return this.#jobs.get(jobId);
  }

  attachJob(req: Req<"attachJob">): Rep<"attachJob"> {
    const job = this.#jobs.get(req.jobId);
    if (job) {
      job.picker = new WeightedPicker(req.weights);
      return {};
    }
    this.#jobs.set(req.jobId, {
      jobId: req.jobId, name: req.name, ns: new Namespace(() => this.clock.now(), this.limits.namespaceEntriesMax ?? Defaults.namespaceEntriesMax),
      picker: new WeightedPicker(req.weights), pending: new Map(), inlineBytes: 0, requests: 0,
    });
    return {};
  }

  /** Forgets a job; its nodes drop its extents wholesale, so nothing is freed one by one. */
  detachJob(req: Req<"detachJob">): Rep<"detachJob"> {
    const job = this.#known(req.jobId);
    this.#jobs.delete(req.jobId);
    this.#inlineBytes -= job.inlineBytes;
    this.#checkInline();
    return { objects: job.ns.objects, bytes: job.ns.bytes };
  }

  setWeights(req: Req<"setWeights">): Rep<"setWeights"> {
    this.#known(req.jobId).picker = new WeightedPicker(req.weights);
    return {};
  }

  /** object.put: an inline object, stored only if its bytes match the writer's crc. */
  putInline(req: Req<"objectPut">, bytes: Uint8Array): Rep<"objectPut"> {
    const job = this.job(req.token);
    const parts = parsePath(req.path);
    if (bytes.byteLength > this.inlineBytesMax) {
      throw new TooLargeError(`${bytes.byteLength} bytes is over the inline limit of ${this.inlineBytesMax}; use object.create`);
    }
    if (req.crc === undefined) throw new InvalidArgumentError("object.put carries no crc of its payload");
    const crc = crc32(bytes);
    if (crc !== req.crc) {
      throw new IntegrityError(`${parts.join("/")}: the ${bytes.byteLength} bytes received have crc ${crc}, the sender's is ${req.crc}; nothing stored`);
    }
    if (this.#inlineBytes + bytes.byteLength > this.inlineCapacityBytes) throw new CapacityExceededError(`shard ${this.shardId} holds ${this.inlineCapacityBytes} inline bytes at most`);
    // Own copy: the request's buffer may be shared with other frames.
    const copy = Buffer.allocUnsafeSlow(bytes.byteLength);
    copy.set(bytes);
    const r = job.ns.put(parts, copy.byteLength, [], req.createOnly ?? false, { bytes: copy, crc });
    this.#addInline(job, copy.byteLength - r.replacedInlineBytes);
    this.frees(job.jobId, r.replaced);
    return { path: parts.join("/"), version: r.entry.version, size: copy.byteLength };
  }

  /** object.get: an inline object's bytes with the crcs to check them by, or a read layout with each extent's crc. */
  get(req: Req<"objectGet">): Rep<"objectGet"> | WithPayload<Rep<"objectGet">> {
    const job = this.job(req.token);
    const parts = parsePath(req.path);
    const o = job.ns.getObject(parts);
    const path = parts.join("/");
    if (!o.inline) return { path, size: o.size, version: o.version, inline: false, extents: o.extents.map((e) => this.ref(e)) };
    const start = Math.min(req.offset ?? 0, o.size);
    const end = req.length === undefined ? o.size : Math.min(o.size, start + req.length);
    const crc = o.inlineCrc ?? crc32(o.inline);
    // The hot case, a whole read, hands out the stored bytes themselves (never written to: a put stores a new
    // copy), and needs no crc of what is around them (the crc of no bytes is 0). Literal objects, no spreads.
    if (start === 0 && end === o.size) {
      return new WithPayload({ path, size: o.size, version: o.version, inline: true, extents: [], crc, prefixCrc: 0, suffixCrc: 0 }, o.inline);
    }
    const prefixCrc = start === 0 ? 0 : crc32(o.inline.subarray(0, start));
    const suffixCrc = end === o.size ? 0 : crc32(o.inline.subarray(end));
    return new WithPayload({ path, size: o.size, version: o.version, inline: true, extents: [], crc, prefixCrc, suffixCrc }, o.inline.subarray(start, end));
  }

  /** object.create: lays out the extents of a put, each with a grant that expires with the write. */
  create(req: Req<"objectCreate">): Rep<"objectCreate"> {
    const job = this.job(req.token);
    const parts = parsePath(req.path);
    job.ns.checkPutTarget(parts, req.createOnly ?? false);
    if ((req.ahead ?? 0) > 0 && req.size === undefined) throw new InvalidArgumentError("writes are reserved ahead for a declared size only");
    const write = this.#newWrite(job, parts, req.size, req.createOnly ?? false);
    const ahead = this.#reserveAhead(job, req.size, req.ahead ?? 0);
    return ahead.length > 0 ? { ...write, ahead } : write;
  }

  /** Lays out one pending write of `size` bytes (streamed when undefined), with its grants. */
  #newWrite(job: JobState, parts: readonly string[] | undefined, size: number | undefined, createOnly: boolean): { writeId: string; extents: ExtentRef[] } {
    if (job.pending.size >= (this.limits.pendingWritesPerJobMax ?? Defaults.pendingWritesPerJobMax)) {
      throw new BusyError(`job ${job.jobId} has ${job.pending.size} puts in progress`);
    }
    const lengths: number[] = [];
    if (size !== undefined) {
      if (Math.ceil(size / this.extentBytesMax) > extentsPerWriteMax) throw new TooLargeError(`${size} bytes is more than one put may hold`);
      for (let offset = 0; offset < size; offset += this.extentBytesMax) lengths.push(Math.min(this.extentBytesMax, size - offset));
    }
    const extents = this.#layout(job, lengths);
    const writeId = this.newId();
    const expiresAtMs = this.clock.now() + this.pendingWriteTtlMs;
    job.pending.set(writeId, {
      writeId, parts, size, createOnly, extents,
      index: new Map(extents.map((e, i) => [e.extentId, i])), crcs: new Map(), expiresAtMs,
    });
    return { writeId, extents: extents.map((e) => this.#writeRef(job, e, expiresAtMs)) };
  }

  /**
   * Up to `count` writes of `size` reserved ahead, bound to no path. Best
   * effort: as many as the job's nodes and its bound on pending writes allow
   * (none when they allow none); what was asked of the request itself stands.
   */
  #reserveAhead(job: JobState, size: number | undefined, count: number): Array<{ writeId: string; extents: ExtentRef[] }> {
    const out: Array<{ writeId: string; extents: ExtentRef[] }> = [];
    if (size === undefined) return out;
    for (let i = 0; i < count; i++) {
      try {
        out.push(this.#newWrite(job, undefined, size, false));
      } catch (e) {
        // No room, no node heard from, or too many pending: reserve no more now (the client creates as usual). Anything else is a fault.
        if (!noRoomNow.some((code) => isPocketError(e, code))) throw e;
        break;
      }
    }
    return out;
  }

  /** object.extend: more extents for a streamed put, with grants that expire with the write. */
  extend(req: Req<"objectExtend">): Rep<"objectExtend"> {
    const job = this.job(req.token);
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

  /** object.written: receipts handed in ahead of the commit (a put of many extents). */
  written(req: Req<"objectWritten">): Rep<"objectWritten"> {
    const job = this.job(req.token);
    const w = this.#pendingWrite(job, req.writeId);
    this.#takeReceipts(job, w, req.receipts);
    return { written: w.crcs.size };
  }

  /**
   * object.commit: makes the write visible once every extent has a node's
   * receipt (handed in now or by object.written). A commit missing any is
   * refused and the write stays pending, so the writer can finish and retry.
   */
  commit(req: Req<"objectCommit">): Rep<"objectCommit"> {
    const job = this.job(req.token);
    const w = this.#pendingWrite(job, req.writeId);
    const { parts, createOnly } = commitTarget(w, req);
    this.#takeReceipts(job, w, req.receipts ?? []);
    const extents = committedExtents(w);
    job.pending.delete(req.writeId);
    const size = w.size ?? extents.reduce((s, e) => s + e.length, 0);
    let r: ReturnType<Namespace["put"]>;
    try {
      r = job.ns.put(parts, size, extents, createOnly);
    } catch (e) {
      this.frees(job.jobId, w.extents);
      throw e;
    }
    this.#addInline(job, -r.replacedInlineBytes);
    // Extent ids are never reused, so a reader still holding the old list gets NotFound, never these bytes.
    this.frees(job.jobId, r.replaced);
    const ahead = this.#reserveAhead(job, req.size, req.ahead ?? 0);
    const done = { path: parts.join("/"), version: r.entry.version, size };
    return ahead.length > 0 ? { ...done, ahead } : done;
  }

  abort(req: Req<"objectAbort">): Rep<"objectAbort"> {
    const job = this.job(req.token);
    const w = job.pending.get(req.writeId);
    if (w) {
      job.pending.delete(req.writeId);
      this.frees(job.jobId, w.extents);
    }
    return {};
  }

  lookup(req: Req<"objectLookup">): Rep<"objectLookup"> {
    const job = this.job(req.token);
    const parts = parsePath(req.path);
    const o = job.ns.getObject(parts);
    return { path: parts.join("/"), size: o.size, version: o.version, extents: o.extents.map((e) => this.ref(e)) };
  }

  stat(req: Req<"stat">): Rep<"stat"> {
    const job = this.job(req.token);
    const parts = parsePath(req.path);
    const e = job.ns.find(parts);
    if (!e) throw new NotFoundError(`${parts.join("/")} not found`);
    return e.kind === "object"
      ? { path: parts.join("/"), type: "object" as const, size: e.size, version: e.version, modifiedAtMs: e.modifiedAtMs, children: 0 }
      : { path: parts.join("/"), type: "directory" as const, size: 0, version: 0, modifiedAtMs: e.modifiedAtMs, children: e.children.size };
  }

  delete(req: Req<"delete">): Rep<"delete"> {
    const job = this.job(req.token);
    const { totals, extents, inlineBytes } = job.ns.delete(parsePath(req.path), req.recursive ?? false);
    this.#addInline(job, -inlineBytes);
    this.frees(job.jobId, extents);
    return { objects: totals.objects, bytes: totals.bytes };
  }

  mkdir(req: Req<"mkdir">): Rep<"mkdir"> {
    this.job(req.token).ns.mkdir(parsePath(req.path));
    return {};
  }

  list(req: Req<"list">): Rep<"list"> {
    const dir = this.job(req.token).ns.getDir(parsePath(req.path));
    const limit = req.limit ?? 1000;
    const names = [...dir.children.keys()].sort();
    let start = 0;
    if (req.after !== undefined) {
      const after = req.after;
      start = names.findIndex((n) => n > after);
      if (start < 0) start = names.length;
    }
    const entries = names.slice(start, start + limit).map((name) => {
      const e = dir.children.get(name)!;
      return e.kind === "object" ? { name, type: "object" as const, size: e.size } : { name, type: "directory" as const, size: 0 };
    });
    return { entries, more: start + limit < names.length };
  }

  count(req: Req<"count">): Rep<"count"> {
    const t = this.job(req.token).ns.count(parsePath(req.path), req.recursive ?? false);
    return { objects: t.objects, directories: t.directories, bytes: t.bytes };
  }

  /** Abandons puts that were not committed in time, freeing their extents. */
  sweepExpiredWrites(): number {
    const now = this.clock.now();
    let n = 0;
    for (const job of this.#jobs.values()) {
      for (const w of job.pending.values()) {
        if (w.expiresAtMs > now) continue;
        job.pending.delete(w.writeId);
        this.frees(job.jobId, w.extents);
        n++;
      }
    }
    return n;
  }

  /** What the shard reports each interval: its heartbeat, and every job's usage in chunks. */
  reports(addr: string, key: string): { heartbeat: ShardHeartbeat; usage: ShardUsage[] } {
    const now = this.clock.now();
    let objects = 0;
    for (const j of this.#jobs.values()) objects += j.ns.objects;
    const heartbeat: ShardHeartbeat = { shardId: this.shardId, addr, key, jobs: this.#jobs.size, objects, sentAtMs: now };
    const usage: ShardUsage[] = [];
    let chunk: ShardUsage["jobs"] = [];
    for (const j of this.#jobs.values()) {
      chunk.push({ jobId: j.jobId, bytes: j.ns.bytes, requests: j.requests });
      if (chunk.length >= usageChunk) {
        usage.push({ shardId: this.shardId, jobs: chunk, sentAtMs: now });
        chunk = [];
      }
    }
    if (chunk.length > 0) usage.push({ shardId: this.shardId, jobs: chunk, sentAtMs: now });
    return { heartbeat, usage };
  }

  /** Every committed extent on `nodeId`, with its object (what a drain must move). */
  extentsOn(nodeId: string): MoveWork[] {
    const work: MoveWork[] = [];
    for (const job of this.#jobs.values()) {
      for (const { parts, entry } of job.ns.objectsWith((e) => e.nodeId === nodeId)) {
        for (const extent of entry.extents) if (extent.nodeId === nodeId) work.push({ job, parts, extent });
      }
    }
    return work;
  }

  /**
   * Plans the copy of one extent off `fromNodeId`: a node of the job's with
   * room (any live node with room failing that), a new extent id and its grant.
   */
  planMove(m: MoveWork, fromNodeId: string): { copy: Extent; grant: string } {
    const fits = (id: string): boolean => id !== fromNodeId && this.nodes.isLive(id) && this.nodes.freeBytes(id) >= m.extent.length;
    const target = m.job.picker.pick(fits) ?? this.nodes.all().map((r) => r.heartbeat.nodeId).find(fits);
    if (target === undefined) throw new CapacityExceededError(`no node has room for extent ${m.extent.extentId}`);
    const copy: Extent = { nodeId: target, extentId: this.newId(), length: m.extent.length, crc: m.extent.crc };
    const grant = this.tokens.issueGrant({ jobId: m.job.jobId, nodeId: target, extentId: copy.extentId, length: copy.length }, this.pendingWriteTtlMs);
    return { copy, grant };
  }

  /**
   * Swaps the moved extent for its copy, if the object still has it (it may
   * have been overwritten or deleted, or its job ended, meanwhile); frees
   * whichever of the two is no longer used. True if the object now uses the copy.
   */
  finishMove(m: MoveWork, copy: Extent): boolean {
    if (this.#jobs.get(m.job.jobId) === m.job && m.job.ns.replaceExtent(m.parts, m.extent.extentId, copy)) {
      this.frees(m.job.jobId, [m.extent]);
      return true;
    }
    this.frees(m.job.jobId, [copy]);
    return false;
  }

  /** A planned copy whose move failed is freed: it may have been stored before the failure. */
  abandonMove(m: MoveWork, copy: Extent): void {
    this.frees(m.job.jobId, [copy]);
  }

  /** The job a token is for, on this shard; counts the request. */
  job(token: string | undefined): JobState {
    const claims = this.tokens.verifyJob(token);
    if (claims.shardId !== this.shardId) throw new UnauthorizedError(`the token is for shard ${claims.shardId}, not ${this.shardId}`);
    const job = this.#jobs.get(claims.jobId);
    if (!job) throw new UnknownJobError(`job ${claims.jobId} is not registered`);
    job.requests++;
    return job;
  }

  /** Where an extent is, for a layout; with its committed crc once it has one (read layouts). */
  ref(e: PlannedExtent & { readonly crc?: number }): ExtentRef {
    const hb = this.nodes.get(e.nodeId)?.heartbeat;
    const addr = hb?.addr ?? "";
    const key = hb?.key ?? "";
    // Literal objects (no spread): a read layout builds one per extent on every lookup.
    return e.crc === undefined
      ? { nodeId: e.nodeId, extentId: e.extentId, length: e.length, addr, key }
      : { nodeId: e.nodeId, extentId: e.extentId, length: e.length, addr, key, crc: e.crc };
  }

  newId(): string {
    this.#seq++;
    return `${this.#bootId}.${this.#seq.toString(36)}`;
  }

  /**
   * Walks all state and checks what must hold between requests: the inline
   * bytes counted per job and in total match the namespaces, every namespace
   * agrees with its counters, and no pending write outlives its grants by
   * more than one sweep. Costs a walk of every namespace: the simulation and
   * tests call it, requests do not.
   */
  checkInvariants(): void {
    let inline = 0;
    for (const job of this.#jobs.values()) {
      const t = job.ns.checkInvariants();
      assert(t.inlineBytes === job.inlineBytes, "job's inline bytes disagree with its namespace", () => ({ jobId: job.jobId, counted: job.inlineBytes, found: t.inlineBytes }));
      inline += job.inlineBytes;
      for (const w of job.pending.values()) {
        assert(w.crcs.size <= w.extents.length, "more receipts than extents", () => ({ writeId: w.writeId }));
      }
    }
    assert(inline === this.#inlineBytes, "shard's inline bytes disagree with its jobs'", () => ({ counted: this.#inlineBytes, found: inline }));
  }

  #known(jobId: string): JobState {
    const job = this.#jobs.get(jobId);
    if (!job) throw new UnknownJobError(`job ${jobId} is not on shard ${this.shardId}`);
    return job;
  }

  #addInline(job: JobState, delta: number): void {
    this.#inlineBytes += delta;
    job.inlineBytes += delta;
    this.#checkInline();
  }

  #checkInline(): void {
    assert(this.#inlineBytes >= 0 && this.#inlineBytes <= this.inlineCapacityBytes + this.inlineBytesMax, "inline bytes out of bounds", () => ({ inlineBytes: this.#inlineBytes }));
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

  /**
   * Splits `size` bytes into extents over the job's weight map, on nodes with
   * room. Nodes heard from recently come first; a node whose heartbeats are
   * late (a busy machine) is still used rather than failing the put: the
   * controller takes failed nodes out of the weight map.
   */
  #layout(job: JobState, lengths: readonly number[]): PlannedExtent[] {
    const picker = this.#pickerFor(job, lengths.length);
    const extents: PlannedExtent[] = [];
    const planned = new Map<string, number>();
    for (const length of lengths) {
      const fits = (id: string): boolean => this.nodes.freeBytes(id) - (planned.get(id) ?? 0) >= length;
      const nodeId = picker.pick((id) => this.nodes.isLive(id) && fits(id)) ?? picker.pick(fits);
      if (nodeId === undefined) throw this.#noRoom(job, picker.weights, lengths);
      planned.set(nodeId, (planned.get(nodeId) ?? 0) + length);
      extents.push({ nodeId, extentId: this.newId(), length });
    }
    for (const [nodeId, bytes] of planned) this.nodes.get(nodeId)!.placedBytes += bytes;
    return extents;
  }

  /** The job's picker; with no weight map yet (no nodes at registration), one over every node this shard knows. */
  #pickerFor(job: JobState, extents: number): WeightedPicker {
    if (extents === 0 || job.picker.weights.some((w) => w.weight > 0)) return job.picker;
    const all = this.nodes.all();
    if (all.length === 0) throw new NodeUnavailableError("no storage node is known to this shard yet");
    job.picker = new WeightedPicker(all.map((r) => ({ nodeId: r.heartbeat.nodeId, weight: 1 / all.length })));
    return job.picker;
  }

  /** Why a layout failed: a node not heard from lately has free space this shard does not know (unavailable), else the job is full. */
  #noRoom(job: JobState, weights: readonly Weight[], lengths: readonly number[]): Error {
    const bytes = lengths.reduce((a, b) => a + b, 0);
    const silent = weights.filter((w) => w.weight > 0 && !this.nodes.isLive(w.nodeId)).map((w) => w.nodeId);
    if (silent.length > 0) {
      return new NodeUnavailableError(`no node of job ${job.jobId} heard from lately has room for ${bytes} more bytes; not heard from: ${silent.slice(0, 8).join(", ")}`);
    }
    return new CapacityExceededError(`no node of job ${job.jobId} has room for ${bytes} more bytes`);
  }

  /** A write layout's entry: where to write, with the grant the node requires, valid until the write expires. */
  #writeRef(job: JobState, e: PlannedExtent, expiresAtMs: number): ExtentRef {
    const grant = this.tokens.issueGrant({ jobId: job.jobId, nodeId: e.nodeId, extentId: e.extentId, length: e.length }, expiresAtMs - this.clock.now());
    return { ...this.ref(e), grant };
  }
}

/** Where a commit puts its object: the path the write was created for, or, for a write reserved ahead, the one the commit names. */
function commitTarget(w: PendingWrite, req: Req<"objectCommit">): { parts: readonly string[]; createOnly: boolean } {
  if (w.parts === undefined) {
    if (req.path === undefined) throw new InvalidArgumentError(`write ${w.writeId} was reserved ahead: its commit names the object's path`);
    const parts = parsePath(req.path);
    if (parts.length === 0) throw new InvalidArgumentError("an object needs a name");
    return { parts, createOnly: req.createOnly ?? false };
  }
  if (req.path !== undefined && parsePath(req.path).join("/") !== w.parts.join("/")) {
    throw new InvalidArgumentError(`write ${w.writeId} is for ${w.parts.join("/")}, not ${req.path}`);
  }
  return { parts: w.parts, createOnly: w.createOnly };
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
