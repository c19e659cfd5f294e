import { Readable } from "node:stream";
import { ErrorCode, IntegrityError, InvalidArgumentError, isPocketError, NotFoundError } from "../schemas/errors";
import { NodeOps, ShardOps, type ExtentRef, type WriteReceipt } from "../schemas/operations";
import type { Operation, ReplyOf, RequestOf } from "../schemas/operation";
import type { CallOptions, CallResult } from "../bus/caller";
import { peekJobClaims } from "../bus/tokens";
import { mapLimit } from "../lib/concurrency";
import { crc32 } from "../lib/checksum";
import type { CallScope, OperationOptions } from "./call-scope";
import { checkBytes, checkedInline, clampRange, ExtentWriter, piecesFor, ReceiptBatches, WritesAhead, type Piece, type Range } from "./extents";
import { bytesOf, checkByteCount, checkOptions, checkPath, checkSource, chunkBytes } from "./input";
import { mayRetry, Retry, withRetry } from "./retry";
import type { PocketClient } from "./pocket";

export type { Range } from "./extents";

/** What `put` stores: bytes, or a string (stored as UTF-8). */
export type Data = Uint8Array | string;

export interface PutOptions extends OperationOptions {
  /** Fail with `AlreadyExists` instead of overwriting. */
  readonly createOnly?: boolean | undefined;
}

export interface StreamPutOptions extends PutOptions {
  /** The stream's length, if known: the layout is made at once instead of extent by extent. */
  readonly size?: number | undefined;
}

/** A byte range of the object (`offset`, `length`), and the call's options. */
export interface GetOptions extends Range, OperationOptions {}

export interface ListOptions extends OperationOptions {
  /** Start after this name (the last of the previous page). */
  readonly after?: string | undefined;
  /** Entries per page, at least 1. */
  readonly limit?: number | undefined;
}

export interface ListAllOptions extends OperationOptions {
  /** Entries asked for per page (default 1000). Signal, deadline and retries apply to each page. */
  readonly pageSize?: number | undefined;
}

export interface RecursiveOptions extends OperationOptions {
  /** A directory and everything under it. */
  readonly recursive?: boolean | undefined;
}

/** A committed object's version and size. */
export interface PutResult {
  readonly version: number;
  readonly size: number;
}

export type ObjectStat = ReplyOf<typeof ShardOps.stat>;
export type ListPage = ReplyOf<typeof ShardOps.list>;
export type ListEntry = ListPage["entries"][number];
export type DirectoryCount = ReplyOf<typeof ShardOps.count>;

type ShardInfo = ReplyOf<typeof ShardOps.info>;
/** Whether a put's commit went out (a create-only put is then no longer safe to send again). */
interface PutAttempt { committed: boolean }

/** Reads whose bytes do not match their checksums are tried again this many times (with a fresh layout) before IntegrityError. */
const integrityRetriesMax = 1;
/** A lookup can race an overwrite that frees the old extents: retry the whole read this many times. */
const staleReadRetriesMax = 3;

/**
 * One job's namespace. Paths are relative to the job: `a/b/c`. Every call
 * takes `signal`, `timeoutMs` and `retry` (see `OperationOptions`).
 *
 * @example
 *   const job = pocket.job(token);
 *   await job.put("shuffle/part-0", bytes, { timeoutMs: 10_000 });
 *   const head = await job.get("shuffle/part-0", { offset: 0, length: 1024 });
 */
export class PocketJob {
  readonly jobId: string;
  readonly shardId: string;
  readonly #ahead = new WritesAhead();
  /** The size of the last put (laid out on nodes): a size that repeats gets writes reserved ahead. */
  #lastPutSize = -1;
  /** The shard's limits (inline threshold, extent size), asked once. */
  #limits: ShardInfo | undefined;

  constructor(private readonly client: PocketClient, readonly token: string) {
    const claims = peekJobClaims(token);
    this.jobId = claims.jobId;
    this.shardId = claims.shardId;
  }

  /** Calls the job's shard: over the direct transport when it can be reached, else over NATS. */
  #shard<O extends Operation>(op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    return this.client.callShard(this, op, request, options);
  }

  /** The shard's limits, asked once. */
  async #shardLimits(scope: CallScope): Promise<ShardInfo> {
    return this.#limits ?? (this.#limits = await scope.race(this.client.shardInfo(this.shardId, this.jobId)));
  }

  /**
   * Stores an object; it becomes visible, whole, when this resolves. `data`
   * is bytes or a string (a stream goes to `putStream`). Retried as a whole
   * after a transient failure (a create-only put only until its commit goes out).
   */
  async put(path: string, data: Data, options: PutOptions = {}): Promise<PutResult> {
    checkPath(path, "put(path, data)");
    const bytes = bytesOf(data, "put(path, data): data");
    checkOptions(options, "put(path, data, options)");
    const attempt: PutAttempt = { committed: false };
    const retryable = (e: unknown): boolean => mayRetry(options.createOnly === true && attempt.committed ? Retry.Once : Retry.Idempotent, e);
    return this.client.runCall(options, "put", path, retryable, async (scope) => {
      attempt.committed = false;
      return this.#putOnce(path, bytes, options, scope, attempt);
    });
  }

  async #putOnce(path: string, bytes: Uint8Array, options: PutOptions, scope: CallScope, attempt: PutAttempt): Promise<PutResult> {
    const limits = await this.#shardLimits(scope);
    if (bytes.byteLength <= limits.inlineBytesMax) {
      const request = { token: this.token, path, createOnly: options.createOnly, crc: crc32(bytes) };
      attempt.committed = true;
      const r = await scope.committing(() => this.#shard(ShardOps.objectPut, request, scope.request(bytes)));
      return { version: r.reply.version, size: r.reply.size };
    }
    const size = bytes.byteLength;
    const repeated = this.#lastPutSize === size;
    this.#lastPutSize = size;
    const reserved = this.#ahead.take(size);
    if (reserved) {
      try {
        return await this.#putInto(reserved, path, bytes, options, { reserved: true, repeated, scope, attempt });
      } catch (e) {
        // A reservation that lapsed (the shard swept it, or a node finds its grant expired): put it the usual way.
        if (!isPocketError(e, ErrorCode.NotFound) && !isPocketError(e, ErrorCode.Unauthorized)) throw e;
        this.#ahead.drop(size);
        attempt.committed = false;
      }
    }
    const create = (): Promise<CallResult<typeof ShardOps.objectCreate>> => this.#shard(ShardOps.objectCreate, {
      token: this.token, path, size, createOnly: options.createOnly, ...(repeated && this.#ahead.wants(size) ? { ahead: 1 } : {}),
    }, scope.request());
    let created: ReplyOf<typeof ShardOps.objectCreate>;
    try {
      created = (await create()).reply;
    } catch (e) {
      // Room held by this job's own reserved writes is given back before the put is refused for want of it.
      if (!isPocketError(e, ErrorCode.CapacityExceeded) || this.#ahead.empty) throw e;
      const held = this.#ahead.takeAll();
      for (const w of held) await this.#abort(w.writeId);
      created = (await create()).reply;
    }
    this.#ahead.keep(size, created.ahead);
    return this.#putInto(created, path, bytes, options, { reserved: false, repeated, scope, attempt });
  }

  /**
   * Writes `bytes` into a laid-out write and commits it: one round trip to the
   * nodes, one to the shard. A write reserved ahead names its path at commit;
   * the commit also reserves the next write of this size while puts of it repeat.
   * A failed (or abandoned) write is aborted: nothing of it is ever visible.
   */
  async #putInto(
    write: { writeId: string; extents: readonly ExtentRef[] }, path: string, bytes: Uint8Array, options: PutOptions,
    how: { readonly reserved: boolean; readonly repeated: boolean; readonly scope: CallScope; readonly attempt: PutAttempt },
  ): Promise<PutResult> {
    const { writeId, extents } = write;
    const { scope } = how;
    try {
      let offset = 0;
      const slices = extents.map((e) => {
        const s = { ref: e, bytes: bytes.subarray(offset, offset + e.length) };
        offset += e.length;
        return s;
      });
      const receipts = this.#receipts(writeId, scope);
      await mapLimit(slices, this.client.extentsInflightMax, async (s) => receipts.add(await this.#writeExtent(s.ref, s.bytes, scope)));
      const size = bytes.byteLength;
      const rest = await receipts.rest();
      how.attempt.committed = true;
      const done = (await scope.committing(() => this.#shard(ShardOps.objectCommit, {
        token: this.token, writeId, receipts: rest,
        ...(how.reserved ? { path, createOnly: options.createOnly } : {}),
        ...(how.repeated && this.#ahead.wants(size) ? { ahead: 1, size } : {}),
      }, scope.request()))).reply;
      this.#ahead.keep(size, done.ahead);
      return { version: done.version, size: done.size };
    } catch (e) {
      await this.#abort(writeId);
      throw e;
    }
  }

  /**
   * Stores an object from a stream (a Readable, an async generator of
   * Uint8Array, Buffer or string chunks), with backpressure: at most
   * `extentsInflightMax + 1` extents of it are in memory at once. Not
   * retried (the source cannot be read again); an aborted call stops
   * reading the source and releases it (a Readable is destroyed).
   */
  async putStream(path: string, source: AsyncIterable<Uint8Array | string>, options: StreamPutOptions = {}): Promise<PutResult> {
    checkPath(path, "putStream(path, source)");
    const chunks = checkSource(source);
    checkOptions(options, "putStream(path, source, options)");
    checkByteCount(options.size, "size", `putStream ${JSON.stringify(path)}`);
    return this.client.runCall(options, "putStream", path, Retry.Never, (scope) => this.#putStreamOnce(path, chunks, options, scope));
  }

  async #putStreamOnce(path: string, source: AsyncIterable<unknown>, options: StreamPutOptions, scope: CallScope): Promise<PutResult> {
    const limits = await this.#shardLimits(scope);
    const created = (await this.#shard(ShardOps.objectCreate, {
      token: this.token, path, size: options.size, createOnly: options.createOnly,
    }, scope.request())).reply;
    const known = options.size !== undefined ? [...created.extents] : undefined;
    const receipts = this.#receipts(created.writeId, scope);
    let extendChain: Promise<unknown> = Promise.resolve();
    const writer = new ExtentWriter(limits.extentBytesMax, this.client.extentsInflightMax, async (chunk) => {
      // Extents are appended in the order they are asked for: ask one at a time.
      let ref: ExtentRef;
      if (known) {
        ref = known.shift() ?? (() => { throw new InvalidArgumentError(`the stream is longer than its declared size ${options.size}`); })();
        if (ref.length !== chunk.byteLength) throw new InvalidArgumentError(`the stream does not match its declared size ${options.size}`);
      } else {
        const next = extendChain.then(() => this.#shard(ShardOps.objectExtend, { token: this.token, writeId: created.writeId, lengths: [chunk.byteLength] }, scope.request()));
        extendChain = next.catch(() => undefined);
        ref = (await next).reply.extents[0]!;
      }
      await receipts.add(await this.#writeExtent(ref, chunk, scope));
    });
    try {
      await readSource(source, scope, (bytes) => writer.write(bytes));
      await writer.end();
      if (known && known.length > 0) throw new InvalidArgumentError(`the stream ended at ${writer.total} bytes, short of its declared size ${options.size}`);
      const rest = await receipts.rest();
      const done = (await scope.committing(() => this.#shard(ShardOps.objectCommit, { token: this.token, writeId: created.writeId, receipts: rest }, scope.request()))).reply;
      return { version: done.version, size: done.size };
    } catch (e) {
      await writer.settle();
      await this.#abort(created.writeId);
      throw e;
    }
  }

  /**
   * Reads a whole object, or a range of it (`offset`, `length`). Never
   * returns a mix of versions, nor bytes that do not match the committed
   * checksums: those are read once more (layout and bytes: a fault on the
   * way may pass), then IntegrityError.
   */
  async get(path: string, options: GetOptions = {}): Promise<Buffer> {
    checkPath(path, "get(path)");
    checkOptions(options, "get(path, options)");
    checkRange(options, "get", path);
    return this.client.runCall(options, "get", path, Retry.Idempotent, (scope) => this.#getOnce(path, options, scope));
  }

  async #getOnce(path: string, range: Range, scope: CallScope): Promise<Buffer> {
    let integrityRetries = 0;
    for (let attempt = 0; ; attempt++) {
      const r = await this.#shard(ShardOps.objectGet, { token: this.token, path, offset: range.offset, length: range.length }, scope.request());
      try {
        if (r.reply.inline) return checkedInline(r, range);
        const { offset, length } = clampRange(r.reply.size, range);
        return await this.#readPieces(piecesFor(r.reply.extents, offset, length), length, scope);
      } catch (e) {
        if (scope.aborted) throw scope.reason;
        if (isPocketError(e, ErrorCode.Integrity) && integrityRetries++ < integrityRetriesMax) continue;
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
   * that stops early (destroys the stream) releases everything; so does an
   * aborted signal or a passed `timeoutMs` (counted until the stream ends),
   * which fail the stream with AbortError or TimeoutError. The lookup is
   * retried under the retry policy; once bytes flow, nothing is.
   * If the object is overwritten while it streams, the stream fails with
   * NotFound rather than mix versions; bytes that do not match the committed
   * checksums fail it with IntegrityError (nothing of them is emitted).
   */
  getStream(path: string, options: GetOptions = {}): Readable {
    checkPath(path, "getStream(path)");
    checkOptions(options, "getStream(path, options)");
    checkRange(options, "getStream", path);
    const { scope, policy } = this.client.callScope(options, "getStream", path);
    const lookup = (): Promise<CallResult<typeof ShardOps.objectGet>> => withRetry(scope, policy, (e) => mayRetry(Retry.Idempotent, e), () =>
      this.#shard(ShardOps.objectGet, { token: this.token, path, offset: options.offset, length: options.length }, scope.request()));
    const stream = Readable.from(this.#chunks(lookup, options, scope), { objectMode: false, highWaterMark: 1 });
    const stop = scope.onEnd((reason) => stream.destroy(reason));
    stream.once("close", () => {
      stop();
      scope.close();
    });
    return stream;
  }

  async *#chunks(lookup: () => Promise<CallResult<typeof ShardOps.objectGet>>, range: Range, scope: CallScope): AsyncGenerator<Buffer> {
    const r = await lookup();
    if (r.reply.inline) {
      const bytes = checkedInline(r, range);
      if (bytes.byteLength > 0) yield bytes;
      return;
    }
    const { offset, length } = clampRange(r.reply.size, range);
    const pieces = piecesFor(r.reply.extents, offset, length);
    const ahead: Array<Promise<Buffer>> = [];
    let next = 0;
    try {
      while (next < pieces.length || ahead.length > 0) {
        while (next < pieces.length && ahead.length < this.client.extentsInflightMax) {
          const p = this.#readPiece(pieces[next++]!, scope).then((got) => got.bytes);
          p.catch(() => undefined); // observed below, or abandoned if the consumer stops
          ahead.push(p);
        }
        yield await ahead.shift()!;
      }
    } finally {
      ahead.length = 0;
    }
  }

  /** Writes one extent under its grant, with its crc; returns the node's receipt for the commit. */
  async #writeExtent(ref: ExtentRef, bytes: Uint8Array, scope: CallScope): Promise<WriteReceipt> {
    const crc = crc32(bytes);
    const r = await this.client.callNode(ref, NodeOps.extentWrite, { token: this.token, extentId: ref.extentId, grant: ref.grant, crc }, scope.request(bytes), this);
    if (r.reply.length !== bytes.byteLength || r.reply.crc !== crc) {
      throw new IntegrityError(`extent ${ref.extentId}: the node stored ${r.reply.length} bytes with crc ${r.reply.crc}; sent ${bytes.byteLength} with crc ${crc}`);
    }
    return { extentId: ref.extentId, crc, receipt: r.reply.receipt };
  }

  /** Collects a put's receipts; batches past what one commit carries go to the shard with object.written. */
  #receipts(writeId: string, scope: CallScope): ReceiptBatches {
    return new ReceiptBatches(async (receipts) => {
      await this.#shard(ShardOps.objectWritten, { token: this.token, writeId, receipts }, scope.request());
    });
  }

  /** Reads one piece and checks it against its extent's committed crc (IntegrityError otherwise). */
  async #readPiece(p: Piece, scope: CallScope): Promise<{ bytes: Buffer; owned: boolean }> {
    const whole = p.offset === 0 && p.length === p.ref.length;
    const r = await this.client.callNode(p.ref, NodeOps.extentRead, {
      token: this.token, extentId: p.ref.extentId, offset: whole ? undefined : p.offset, length: whole ? undefined : p.length,
    }, scope.request(), this);
    const got = r.payload ?? new Uint8Array(0);
    checkBytes(`extent ${p.ref.extentId}`, got, { offset: p.offset, length: p.length, total: p.ref.length, crc: p.ref.crc }, r.reply);
    return { bytes: Buffer.isBuffer(got) ? got : Buffer.from(got.buffer, got.byteOffset, got.byteLength), owned: r.payloadOwned === true };
  }

  async #readPieces(pieces: readonly Piece[], length: number, scope: CallScope): Promise<Buffer> {
    // One piece in a buffer of its own (a large extent read whole): hand it over as it came, no copy.
    if (pieces.length === 1 && pieces[0]!.length === length) {
      const only = await this.#readPiece(pieces[0]!, scope);
      return only.owned ? only.bytes : Buffer.from(only.bytes);
    }
    const out = Buffer.allocUnsafe(length);
    const at: number[] = [];
    let pos = 0;
    for (const p of pieces) {
      at.push(pos);
      pos += p.length;
    }
    if (pos !== length) throw new IntegrityError(`extents cover ${pos} bytes, expected ${length}`);
    await mapLimit(pieces, this.client.extentsInflightMax, async (p, i) => {
      out.set((await this.#readPiece(p, scope)).bytes, at[i]!);
    });
    return out;
  }

  /** Gives a write up at the shard (its extents are freed): sent whether or not the call was aborted. */
  async #abort(writeId: string): Promise<void> {
    try {
      await this.#shard(ShardOps.objectAbort, { token: this.token, writeId });
    } catch {
      // The shard frees an abandoned write's extents itself when its deadline passes.
    }
  }

  async stat(path: string, options: OperationOptions = {}): Promise<ObjectStat> {
    checkPath(path, "stat(path)");
    checkOptions(options, "stat(path, options)");
    return this.client.runCall(options, "stat", path, Retry.Idempotent, async (scope) =>
      (await this.#shard(ShardOps.stat, { token: this.token, path }, scope.request())).reply);
  }

  /** Deletes an object, or a directory with `recursive`. Retried only when the request was not carried out. */
  async delete(path: string, options: RecursiveOptions = {}): Promise<{ objects: number; bytes: number }> {
    checkPath(path, "delete(path)");
    checkOptions(options, "delete(path, options)");
    return this.client.runCall(options, "delete", path, Retry.Once, (scope) => scope.committing(async () =>
      (await this.#shard(ShardOps.delete, { token: this.token, path, recursive: options.recursive }, scope.request())).reply));
  }

  async mkdir(path: string, options: OperationOptions = {}): Promise<void> {
    checkPath(path, "mkdir(path)");
    checkOptions(options, "mkdir(path, options)");
    await this.client.runCall(options, "mkdir", path, Retry.Once, (scope) => scope.committing(() =>
      this.#shard(ShardOps.mkdir, { token: this.token, path }, scope.request())));
  }

  /** One page of a directory listing, in name order. */
  async list(path = "", options: ListOptions = {}): Promise<ListPage> {
    checkPath(path, "list(path)");
    checkOptions(options, "list(path, options)");
    if (options.limit !== undefined && !(Number.isSafeInteger(options.limit) && options.limit >= 1)) throw new InvalidArgumentError(`limit must be a whole number, at least 1, not ${String(options.limit)}`);
    return this.client.runCall(options, "list", path, Retry.Idempotent, async (scope) =>
      (await this.#shard(ShardOps.list, { token: this.token, path, after: options.after, limit: options.limit }, scope.request())).reply);
  }

  /** Every entry of a directory, page by page (`options` or the page size). */
  async *listAll(path = "", options: ListAllOptions | number = {}): AsyncGenerator<ListEntry> {
    const { pageSize = 1000, ...call } = typeof options === "number" ? { pageSize: options } : checkOptions(options, "listAll(path, options)") ?? {};
    let after: string | undefined;
    for (;;) {
      const page = await this.list(path, { ...call, after, limit: pageSize });
      for (const e of page.entries) yield e;
      if (!page.more || page.entries.length === 0) return;
      after = page.entries[page.entries.length - 1]!.name;
    }
  }

  async count(path = "", options: RecursiveOptions = {}): Promise<DirectoryCount> {
    checkPath(path, "count(path)");
    checkOptions(options, "count(path, options)");
    return this.client.runCall(options, "count", path, Retry.Idempotent, async (scope) =>
      (await this.#shard(ShardOps.count, { token: this.token, path, recursive: options.recursive }, scope.request())).reply);
  }

  /** True if an object or directory exists at `path`. */
  async exists(path: string, options: OperationOptions = {}): Promise<boolean> {
    try {
      await this.stat(path, options);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }
}

/** `offset` and `length`, when given, are whole numbers of bytes (InvalidArgument otherwise). */
function checkRange(range: Range, op: string, path: string): void {
  if (range.offset === undefined && range.length === undefined) return; // the whole object: nothing to check (nor to name)
  const what = `${op} ${JSON.stringify(path)}`;
  checkByteCount(range.offset, "offset", what);
  checkByteCount(range.length, "length", what);
}

/**
 * Reads `source` chunk by chunk into `take`, which may wait (backpressure).
 * An aborted call stops waiting for the next chunk at once and releases the
 * source, as a failure does: its iterator is returned, and a stream is
 * destroyed (an iterator waiting for data would return only once data came).
 */
async function readSource(source: AsyncIterable<unknown>, scope: CallScope, take: (bytes: Uint8Array) => Promise<void>): Promise<void> {
  const it = source[Symbol.asyncIterator]();
  let done = false;
  try {
    for (let i = 0; ; i++) {
      const next = await scope.race(it.next());
      if (next.done) {
        done = true;
        return;
      }
      await take(chunkBytes(next.value, i));
    }
  } finally {
    if (!done) {
      it.return?.().catch(() => undefined);
      const stream = source as { destroy?: unknown };
      if (typeof stream.destroy === "function") (stream.destroy as () => void).call(source);
    }
  }
}
