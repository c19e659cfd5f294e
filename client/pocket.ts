import { Readable } from "node:stream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { InvalidArgumentError, isPocketError, ErrorCode, NodeUnavailableError, NotFoundError, InternalError } from "../schemas/errors";
import { ControllerOps, NodeOps, ShardOps, type ExtentRef, type JobHints, type NodeInfo, type Weight } from "../schemas/operations";
import type { Operation, ReplyOf, RequestOf } from "../schemas/operation";
import type { Caller, CallOptions, CallResult } from "../bus/caller";
import { NatsCaller } from "../bus/nats-rpc";
import { Subjects } from "../bus/subjects";
import { ConnectFailedError, TcpPool } from "../bus/tcp-client";
import { mapLimit } from "../actors/runtime/concurrency";
import { peekJobClaims } from "../actors/runtime/tokens";

export const ClientTransport = {
  /** Object bytes over the direct TCP transport, control over NATS. */
  Auto: "auto",
  /** Everything over NATS (for clients that can reach only NATS). */
  Nats: "nats",
} as const;
export type ClientTransport = (typeof ClientTransport)[keyof typeof ClientTransport];

export interface PocketOptions {
  /** NATS URL(s) of the cluster, e.g. `nats://127.0.0.1:4222`. */
  readonly servers: string | string[];
  readonly transport?: ClientTransport;
  /** Extents moved at once per put or get. */
  readonly extentsInflightMax?: number;
  readonly requestTimeoutMs?: number;
  /** Name shown in the NATS server's connection list. */
  readonly name?: string;
  /** Shards whose address and limits are remembered. */
  readonly shardCacheMax?: number;
}

type ShardInfo = ReplyOf<typeof ShardOps.info>;

export interface RegisteredJob {
  readonly jobId: string;
  readonly token: string;
  readonly shardId: string;
  readonly expiresAtMs: number;
  readonly leaseExpiresAtMs: number;
  readonly leaseMs: number;
  readonly tier: string;
  readonly weights: readonly Weight[];
}

export interface PutOptions {
  /** Fail with `AlreadyExists` instead of overwriting. */
  readonly createOnly?: boolean;
}

export type Data = Uint8Array | string;

/** A lookup can race an overwrite that frees the old extents: retry the whole read this many times. */
const staleReadRetriesMax = 3;
/** Jobs one client keeps alive at once. */
const leasesMax = 10_000;

/**
 * The client a lambda imports. One per process: connections are reused
 * across calls and across jobs.
 *
 * @example
 *   const pocket = await PocketClient.connect({ servers: process.env.POCKET_NATS_URL! });
 *   const job = pocket.job(process.env.POCKET_TOKEN!);
 *   await job.put("shuffle/part-0", bytes);
 *   const back = await job.get("shuffle/part-0");
 *   await pocket.close();
 */
export class PocketClient {
  readonly #pool: TcpPool;
  readonly #jobs = new Map<string, PocketJob>();
  /** token → lease renewal timer, for jobs this client registered. */
  readonly #leases = new Map<string, NodeJS.Timeout>();
  /** shardId → address and limits (insertion-ordered: the oldest goes first past the bound). */
  readonly #shards = new Map<string, Promise<ShardInfo>>();
  readonly controller: Caller;

  private constructor(readonly nc: NatsConnection, readonly options: PocketOptions) {
    this.#pool = new TcpPool({ requestTimeoutMs: options.requestTimeoutMs ?? 30_000 });
    this.controller = new NatsCaller(nc, Subjects.controller, options.requestTimeoutMs ?? 30_000);
  }

  static async connect(options: PocketOptions): Promise<PocketClient> {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: options.servers, name: options.name ?? "pocket-client", maxReconnectAttempts: 10 });
    } catch (e) {
      throw new NodeUnavailableError(`cannot reach NATS at ${String(options.servers)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    return new PocketClient(nc, options);
  }

  /**
   * Registers a job. While this client is open it renews the job's lease
   * (every third of it), so the job lives as long as its driver; a driver
   * that dies stops renewing and the controller reclaims the job when the
   * lease runs out. `renew: false` leaves renewal to the caller.
   */
  async registerJob(name: string, hints: JobHints = {}, options: { leaseMs?: number; renew?: boolean } = {}): Promise<RegisteredJob> {
    const reg = (await this.controller.call(ControllerOps.jobRegister, { name, hints, ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}) })).reply;
    if (options.renew !== false) this.#keepAlive(reg.token, reg.leaseMs);
    return reg;
  }

  /** Renews a job's lease now. */
  async renewLease(token: string): Promise<{ jobId: string; leaseExpiresAtMs: number }> {
    return (await this.controller.call(ControllerOps.jobRenew, { token })).reply;
  }

  #keepAlive(token: string, leaseMs: number): void {
    if (this.#leases.size >= leasesMax) return;
    const timer = setInterval(() => {
      this.renewLease(token).catch((e: unknown) => {
        // A job that is gone stays gone; other errors (the controller restarting) are retried next time.
        if (isPocketError(e, ErrorCode.UnknownJob) || isPocketError(e, ErrorCode.Unauthorized)) this.#stopRenewing(token);
      });
    }, Math.max(250, Math.floor(leaseMs / 3)));
    timer.unref();
    this.#leases.set(token, timer);
  }

  #stopRenewing(token: string): void {
    const t = this.#leases.get(token);
    if (t) clearInterval(t);
    this.#leases.delete(token);
  }

  /** Ends a job; every byte it stored is freed. */
  async deregisterJob(token: string): Promise<{ jobId: string; freedBytes: number }> {
    this.#jobs.delete(token);
    this.#stopRenewing(token);
    return (await this.controller.call(ControllerOps.jobDeregister, { token })).reply;
  }

  /** A handle on one job's namespace (cached per token). */
  job(token: string): PocketJob {
    let j = this.#jobs.get(token);
    if (!j) {
      if (this.#jobs.size >= 1024) this.#jobs.delete(this.#jobs.keys().next().value!);
      j = new PocketJob(this, token);
      this.#jobs.set(token, j);
    }
    return j;
  }

  /** A shard's direct-transport address and limits, asked of the shard over NATS once and remembered. */
  shardInfo(shardId: string): Promise<ShardInfo> {
    let info = this.#shards.get(shardId);
    if (!info) {
      if (this.#shards.size >= (this.options.shardCacheMax ?? 256)) this.#shards.delete(this.#shards.keys().next().value!);
      info = new NatsCaller(this.nc, Subjects.shard(shardId), this.options.requestTimeoutMs ?? 30_000)
        .call(ShardOps.info, {})
        .then((r) => r.reply);
      info.catch(() => this.#shards.delete(shardId));
      this.#shards.set(shardId, info);
    }
    return info;
  }

  /**
   * Calls a shard operation: over the direct transport in auto mode, over
   * NATS otherwise. A shard whose remembered address no longer answers is
   * looked up again once (it may have restarted elsewhere).
   */
  async callShard<O extends Operation>(shardId: string, op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    if (this.options.transport === ClientTransport.Nats) {
      return new NatsCaller(this.nc, Subjects.shard(shardId), this.options.requestTimeoutMs ?? 30_000).call(op, request, options);
    }
    for (let attempt = 0; ; attempt++) {
      const info = await this.shardInfo(shardId);
      try {
        return await this.#pool.caller(info.addr).call(op, request, options);
      } catch (e) {
        if (!isPocketError(e, ErrorCode.NodeUnavailable)) throw e;
        // The address may be stale (the shard restarted elsewhere): ask again next time.
        this.#shards.delete(shardId);
        this.#pool.drop(info.addr);
        // Only a connection that never opened is safe to retry at once: the request was not sent.
        if (!(e instanceof ConnectFailedError) || attempt > 0) throw e;
      }
    }
  }

  /** Calls a storage node: direct TCP, or NATS in NATS-only mode. */
  async callNode<O extends Operation>(ref: ExtentRef, op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    if (this.options.transport === ClientTransport.Nats) {
      return new NatsCaller(this.nc, Subjects.node(ref.nodeId), this.options.requestTimeoutMs ?? 30_000).call(op, request, options);
    }
    if (!ref.addr) throw new NodeUnavailableError(`node ${ref.nodeId} has no known address`);
    return this.#pool.caller(ref.addr).call(op, request, options);
  }

  async listJobs(): Promise<ReplyOf<typeof ControllerOps.jobList>["jobs"]> {
    return (await this.controller.call(ControllerOps.jobList, {})).reply.jobs;
  }

  async listNodes(): Promise<NodeInfo[]> {
    return (await this.controller.call(ControllerOps.nodeList, {})).reply.nodes;
  }

  async listShards(): Promise<ReplyOf<typeof ControllerOps.shardList>["shards"]> {
    return (await this.controller.call(ControllerOps.shardList, {})).reply.shards;
  }

  get extentsInflightMax(): number {
    return this.options.extentsInflightMax ?? 8;
  }

  async close(): Promise<void> {
    for (const t of this.#leases.values()) clearInterval(t);
    this.#leases.clear();
    this.#pool.close();
    await this.nc.drain().catch(() => undefined);
  }
}

/** A byte range of an object: `length` bytes from `offset` (to the end when absent). */
export interface Range {
  readonly offset?: number;
  readonly length?: number;
}

export interface StreamPutOptions extends PutOptions {
  /** The stream's length, if known: the layout is made at once instead of extent by extent. */
  readonly size?: number;
}

interface Piece {
  readonly ref: ExtentRef;
  readonly offset: number;
  readonly length: number;
}

/** The parts of extents that cover `[offset, offset + length)`. */
export function piecesFor(extents: readonly ExtentRef[], offset: number, length: number): Piece[] {
  const pieces: Piece[] = [];
  const end = offset + length;
  let start = 0;
  for (const ref of extents) {
    const stop = start + ref.length;
    if (stop > offset && start < end) {
      const from = Math.max(offset, start) - start;
      const to = Math.min(end, stop) - start;
      pieces.push({ ref, offset: from, length: to - from });
    }
    if (stop >= end) break;
    start = stop;
  }
  return pieces;
}

function clampRange(size: number, range: Range): { offset: number; length: number } {
  const offset = range.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`bad offset ${offset}`);
  if (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length < 0)) throw new InvalidArgumentError(`bad length ${range.length}`);
  const from = Math.min(offset, size);
  return { offset: from, length: Math.min(size - from, range.length ?? size) };
}

/** One job's namespace. Paths are relative to the job: `a/b/c`. */
export class PocketJob {
  readonly jobId: string;
  readonly shardId: string;

  constructor(private readonly client: PocketClient, readonly token: string) {
    const claims = peekJobClaims(token);
    this.jobId = claims.jobId;
    this.shardId = claims.shardId;
  }

  /** Calls the job's shard: over the direct transport when it can be reached, else over NATS. */
  async #shard<O extends Operation>(op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    return this.client.callShard(this.shardId, op, request, options);
  }

  /** Stores an object; it becomes visible, whole, when this resolves. */
  async put(path: string, data: Data, options: PutOptions = {}): Promise<{ version: number; size: number }> {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    const limits = await this.client.shardInfo(this.shardId);
    if (bytes.byteLength <= limits.inlineBytesMax) {
      const r = await this.#shard(ShardOps.objectPut, { token: this.token, path, createOnly: options.createOnly }, { payload: bytes });
      return { version: r.reply.version, size: r.reply.size };
    }
    const { writeId, extents } = (await this.#shard(ShardOps.objectCreate, {
      token: this.token, path, size: bytes.byteLength, createOnly: options.createOnly,
    })).reply;
    try {
      let offset = 0;
      const slices = extents.map((e) => {
        const s = { ref: e, bytes: bytes.subarray(offset, offset + e.length) };
        offset += e.length;
        return s;
      });
      await mapLimit(slices, this.client.extentsInflightMax, async (s) => this.#writeExtent(s.ref, s.bytes));
      const done = (await this.#shard(ShardOps.objectCommit, { token: this.token, writeId })).reply;
      return { version: done.version, size: done.size };
    } catch (e) {
      await this.#abort(writeId);
      throw e;
    }
  }

  /**
   * Stores an object from a stream, with backpressure: at most
   * `extentsInflightMax + 1` extents of it are in memory at once.
   */
  async putStream(path: string, source: AsyncIterable<Uint8Array | string>, options: StreamPutOptions = {}): Promise<{ version: number; size: number }> {
    const limits = await this.client.shardInfo(this.shardId);
    const extentBytes = limits.extentBytesMax;
    const created = (await this.#shard(ShardOps.objectCreate, {
      token: this.token, path, size: options.size, createOnly: options.createOnly,
    })).reply;
    const known = options.size !== undefined ? [...created.extents] : undefined;
    const writes = new Set<Promise<void>>();
    let failure: unknown;
    let extendChain: Promise<unknown> = Promise.resolve();
    let total = 0;
    const flush = async (chunk: Buffer): Promise<void> => {
      // Extents are appended in the order they are asked for: ask one at a time.
      let ref: ExtentRef;
      if (known) {
        ref = known.shift() ?? (() => { throw new InvalidArgumentError(`the stream is longer than its declared size ${options.size}`); })();
        if (ref.length !== chunk.byteLength) throw new InvalidArgumentError(`the stream does not match its declared size ${options.size}`);
      } else {
        const next = extendChain.then(() => this.#shard(ShardOps.objectExtend, { token: this.token, writeId: created.writeId, lengths: [chunk.byteLength] }));
        extendChain = next.catch(() => undefined);
        ref = (await next).reply.extents[0]!;
      }
      await this.#writeExtent(ref, chunk);
    };
    const start = (chunk: Buffer): void => {
      const p = flush(chunk).catch((e: unknown) => { failure ??= e; }).finally(() => writes.delete(p));
      writes.add(p);
    };
    try {
      let buf = Buffer.allocUnsafe(extentBytes);
      let used = 0;
      for await (const part of source) {
        const bytes = typeof part === "string" ? Buffer.from(part, "utf8") : part;
        let at = 0;
        while (at < bytes.byteLength) {
          const n = Math.min(bytes.byteLength - at, extentBytes - used);
          buf.set(bytes.subarray(at, at + n), used);
          used += n;
          at += n;
          total += n;
          if (used === extentBytes) {
            start(buf);
            buf = Buffer.allocUnsafe(extentBytes);
            used = 0;
            while (writes.size >= this.client.extentsInflightMax && failure === undefined) await Promise.race(writes);
          }
          if (failure !== undefined) throw failure;
        }
      }
      if (used > 0) start(buf.subarray(0, used));
      while (writes.size > 0) await Promise.race(writes);
      if (failure !== undefined) throw failure;
      if (known && known.length > 0) throw new InvalidArgumentError(`the stream ended at ${total} bytes, short of its declared size ${options.size}`);
      const done = (await this.#shard(ShardOps.objectCommit, { token: this.token, writeId: created.writeId })).reply;
      return { version: done.version, size: done.size };
    } catch (e) {
      while (writes.size > 0) await Promise.race(writes);
      await this.#abort(created.writeId);
      throw e;
    }
  }

  /** Reads a whole object, or a range of it. Never returns a mix of versions. */
  async get(path: string, range: Range = {}): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.#shard(ShardOps.objectGet, { token: this.token, path, offset: range.offset, length: range.length });
      if (r.reply.inline) return Buffer.from(r.payload ?? new Uint8Array(0));
      const { offset, length } = clampRange(r.reply.size, range);
      try {
        return await this.#readPieces(piecesFor(r.reply.extents, offset, length), length);
      } catch (e) {
        // An extent freed under us means the object was overwritten or deleted since the lookup.
        // A node drained and removed after our lookup (its extents were moved): the layout has changed too.
        const stale = isPocketError(e, ErrorCode.NotFound) || isPocketError(e, ErrorCode.NodeUnavailable);
        if (!stale || attempt >= staleReadRetriesMax) throw e;
      }
    }
  }

  /**
   * Reads an object (or a range) as a stream, with backpressure: at most
   * `extentsInflightMax` extents are fetched ahead of the consumer. A consumer
   * that stops early (destroys the stream) releases everything.
   * If the object is overwritten while it streams, the stream fails with
   * NotFound rather than mix versions.
   */
  getStream(path: string, range: Range = {}): Readable {
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      const r = await self.#shard(ShardOps.objectGet, { token: self.token, path, offset: range.offset, length: range.length });
      if (r.reply.inline) {
        if (r.payload && r.payload.byteLength > 0) yield Buffer.from(r.payload);
        return;
      }
      const { offset, length } = clampRange(r.reply.size, range);
      const pieces = piecesFor(r.reply.extents, offset, length);
      const ahead: Array<Promise<Buffer>> = [];
      let next = 0;
      try {
        while (next < pieces.length || ahead.length > 0) {
          while (next < pieces.length && ahead.length < self.client.extentsInflightMax) {
            const p = self.#readPiece(pieces[next++]!);
            p.catch(() => undefined); // observed below, or abandoned if the consumer stops
            ahead.push(p);
          }
          yield await ahead.shift()!;
        }
      } finally {
        ahead.length = 0;
      }
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: 1 });
  }

  async #writeExtent(ref: ExtentRef, bytes: Uint8Array): Promise<void> {
    await this.client.callNode(ref, NodeOps.extentWrite, { token: this.token, extentId: ref.extentId }, { payload: bytes });
  }

  async #readPiece(p: Piece): Promise<Buffer> {
    const whole = p.offset === 0 && p.length === p.ref.length;
    const r = await this.client.callNode(p.ref, NodeOps.extentRead, {
      token: this.token, extentId: p.ref.extentId, offset: whole ? undefined : p.offset, length: whole ? undefined : p.length,
    });
    const got = r.payload ?? new Uint8Array(0);
    if (got.byteLength !== p.length) throw new InternalError(`extent ${p.ref.extentId}: ${got.byteLength} bytes, expected ${p.length}`);
    return Buffer.from(got.buffer, got.byteOffset, got.byteLength);
  }

  async #readPieces(pieces: readonly Piece[], length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    const at: number[] = [];
    let pos = 0;
    for (const p of pieces) {
      at.push(pos);
      pos += p.length;
    }
    if (pos !== length) throw new InternalError(`extents cover ${pos} bytes, expected ${length}`);
    await mapLimit(pieces, this.client.extentsInflightMax, async (p, i) => {
      out.set(await this.#readPiece(p), at[i]!);
    });
    return out;
  }

  async #abort(writeId: string): Promise<void> {
    try {
      await this.#shard(ShardOps.objectAbort, { token: this.token, writeId });
    } catch {
      // The shard frees an abandoned write's extents itself when its deadline passes.
    }
  }

  async stat(path: string): Promise<ReplyOf<typeof ShardOps.stat>> {
    return (await this.#shard(ShardOps.stat, { token: this.token, path })).reply;
  }

  /** Deletes an object, or a directory with `recursive`. */
  async delete(path: string, options: { recursive?: boolean } = {}): Promise<{ objects: number; bytes: number }> {
    return (await this.#shard(ShardOps.delete, { token: this.token, path, recursive: options.recursive })).reply;
  }

  async mkdir(path: string): Promise<void> {
    await this.#shard(ShardOps.mkdir, { token: this.token, path });
  }

  /** One page of a directory listing, in name order. */
  async list(path = "", options: { after?: string; limit?: number } = {}): Promise<ReplyOf<typeof ShardOps.list>> {
    if (options.limit !== undefined && options.limit < 1) throw new InvalidArgumentError("limit must be at least 1");
    return (await this.#shard(ShardOps.list, { token: this.token, path, after: options.after, limit: options.limit })).reply;
  }

  /** Every entry of a directory, page by page. */
  async *listAll(path = "", pageSize = 1000): AsyncGenerator<ReplyOf<typeof ShardOps.list>["entries"][number]> {
    let after: string | undefined;
    for (;;) {
      const page = await this.list(path, { after, limit: pageSize });
      for (const e of page.entries) yield e;
      if (!page.more || page.entries.length === 0) return;
      after = page.entries[page.entries.length - 1]!.name;
    }
  }

  async count(path = "", options: { recursive?: boolean } = {}): Promise<ReplyOf<typeof ShardOps.count>> {
    return (await this.#shard(ShardOps.count, { token: this.token, path, recursive: options.recursive })).reply;
  }

  /** True if an object or directory exists at `path`. */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }
}
