import { IntegrityError, InvalidArgumentError } from "../schemas/errors";
import { ShardOps, WireLimits, type ExtentRef, type WriteReceipt } from "../schemas/operations";
import type { CallResult } from "../bus/caller";
import { crc32, crc32Combine, isCrc32 } from "../lib/checksum";

/*
 * The pieces of a put or get that are about extents, not calls: which parts
 * of which extents a range covers, checking bytes against committed crcs,
 * batching a put's receipts, cutting a stream into extents, and the writes
 * a job keeps reserved ahead.
 */

/** A byte range of an object: `length` bytes from `offset` (to the end when absent). */
export interface Range {
  readonly offset?: number | undefined;
  readonly length?: number | undefined;
}

export interface Piece {
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

export function clampRange(size: number, range: Range): { offset: number; length: number } {
  const offset = range.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`bad offset ${offset}`);
  if (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length < 0)) throw new InvalidArgumentError(`bad length ${range.length}`);
  const from = Math.min(offset, size);
  return { offset: from, length: Math.min(size - from, range.length ?? size) };
}

/**
 * Fails with IntegrityError unless `bytes` are `[offset, offset + length)` of
 * something of `total` bytes whose committed CRC-32 is `crc`. A whole read is
 * checked by its own crc; a range by combining the crcs of the bytes around
 * it (from whoever served it) with its own: prefix ‖ range ‖ suffix must give
 * `crc`. This catches bytes damaged in a store or on the way; crcs are no
 * defence against a peer that forges them on purpose.
 */
export function checkBytes(what: string, bytes: Uint8Array, want: { offset: number; length: number; total: number; crc: number | undefined }, around: { prefixCrc?: number; suffixCrc?: number }): void {
  if (bytes.byteLength !== want.length) throw new IntegrityError(`${what}: ${bytes.byteLength} bytes, expected ${want.length}`);
  if (want.crc === undefined) throw new IntegrityError(`${what}: the layout carries no crc to check the bytes by`);
  const suffixLength = want.total - want.offset - want.length;
  // An empty part's crc is 0, whatever the server says.
  const prefixCrc = want.offset === 0 ? 0 : around.prefixCrc;
  const suffixCrc = suffixLength === 0 ? 0 : around.suffixCrc;
  if (!isCrc32(prefixCrc) || !isCrc32(suffixCrc)) throw new IntegrityError(`${what}: no crcs of the bytes around the range`);
  const got = crc32Combine(crc32Combine(prefixCrc, crc32(bytes), want.length), suffixCrc, suffixLength);
  if (got !== want.crc) {
    throw new IntegrityError(`${what}: bytes [${want.offset}, ${want.offset + want.length}) do not match the committed crc ${want.crc} (got ${got}); not returned`);
  }
}

/** An inline object's bytes from object.get, checked against its committed crc. */
export function checkedInline(r: CallResult<typeof ShardOps.objectGet>, range: Range): Buffer {
  const got = r.payload ?? new Uint8Array(0);
  const { offset, length } = clampRange(r.reply.size, range);
  checkBytes(`inline object ${r.reply.path}`, got, { offset, length, total: r.reply.size, crc: r.reply.crc }, r.reply);
  return Buffer.from(got);
}

/**
 * A put's receipts: held until one commit's worth (`receiptsPerCallMax`) is
 * full, which then goes to the shard (`send`, one batch at a time); `rest()`
 * gives what the commit carries.
 */
export class ReceiptBatches {
  #batch: WriteReceipt[] = [];
  #sent: Promise<void> = Promise.resolve();

  constructor(private readonly send: (receipts: WriteReceipt[]) => Promise<void>) {}

  /** Adds a receipt; resolves once a batch it completed has been handed in. */
  add(receipt: WriteReceipt): Promise<void> {
    this.#batch.push(receipt);
    if (this.#batch.length < WireLimits.receiptsPerCallMax) return Promise.resolve();
    const full = this.#batch;
    this.#batch = [];
    this.#sent = this.#sent.then(() => this.send(full));
    return this.#sent;
  }

  /** Waits for the batches sent so far; returns the receipts left for the commit. */
  async rest(): Promise<WriteReceipt[]> {
    await this.#sent;
    return this.#batch;
  }
}

/** Object sizes a job keeps writes reserved ahead for. */
const aheadSizesMax = 4;
/** Reserved writes kept per size. */
const aheadPerSizeMax = 2;
/** A reserved write older than this is not used (the shard sweeps pending writes after 120 s by default). */
const aheadKeptMs = 30_000;

/**
 * Writes the shard laid out ahead for the next puts of a size that repeats
 * (a shuffle's partitions): such a put skips object.create and costs one
 * round trip to the nodes and one to the shard. Bounded in sizes, per size
 * and in age; an unused one expires at the shard and its room is freed then.
 */
export class WritesAhead {
  readonly #bySize = new Map<number, Array<{ readonly writeId: string; readonly extents: readonly ExtentRef[]; readonly atMs: number }>>();

  /** A fresh reserved write of exactly `size` bytes, if one is kept. */
  take(size: number): { writeId: string; extents: readonly ExtentRef[] } | undefined {
    const list = this.#bySize.get(size);
    const now = Date.now();
    while (list && list.length > 0) {
      const w = list.shift()!;
      if (now - w.atMs < aheadKeptMs) return w;
    }
    return undefined;
  }

  /** Whether one more reserved write of `size` would be kept. */
  wants(size: number): boolean {
    return (this.#bySize.get(size)?.length ?? 0) < aheadPerSizeMax;
  }

  keep(size: number, writes: ReadonlyArray<{ writeId: string; extents: readonly ExtentRef[] }> | undefined): void {
    if (!writes || writes.length === 0) return;
    let list = this.#bySize.get(size);
    if (!list) {
      if (this.#bySize.size >= aheadSizesMax) this.#bySize.delete(this.#bySize.keys().next().value!);
      this.#bySize.set(size, (list = []));
    }
    const now = Date.now();
    for (const w of writes) if (list.length < aheadPerSizeMax) list.push({ ...w, atMs: now });
  }

  drop(size: number): void {
    this.#bySize.delete(size);
  }

  get empty(): boolean {
    return this.#bySize.size === 0;
  }

  /** Every reserved write kept, now no longer kept. */
  takeAll(): Array<{ writeId: string }> {
    const all = [...this.#bySize.values()].flat();
    this.#bySize.clear();
    return all;
  }
}


/**
 * A stream's bytes cut into extents of `extentBytes`, each handed to
 * `writeExtent` as soon as it is full, at most `inflightMax` at once: the
 * reader of the stream waits for a slot (backpressure), so at most
 * `inflightMax + 1` extents of it are in memory.
 */
export class ExtentWriter {
  #buf: Buffer;
  #used = 0;
  #total = 0;
  readonly #writes = new Set<Promise<void>>();
  #failure: { readonly e: unknown } | undefined;

  constructor(private readonly extentBytes: number, private readonly inflightMax: number, private readonly writeExtent: (chunk: Buffer) => Promise<void>) {
    this.#buf = Buffer.allocUnsafe(extentBytes);
  }

  /** Bytes taken so far. */
  get total(): number {
    return this.#total;
  }

  /** Takes the next bytes of the stream; throws the first failed extent write. */
  async write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.byteLength) {
      const n = Math.min(bytes.byteLength - at, this.extentBytes - this.#used);
      this.#buf.set(bytes.subarray(at, at + n), this.#used);
      this.#used += n;
      at += n;
      this.#total += n;
      if (this.#used === this.extentBytes) {
        this.#start(this.#buf);
        this.#buf = Buffer.allocUnsafe(this.extentBytes);
        this.#used = 0;
        while (this.#writes.size >= this.inflightMax && this.#failure === undefined) await Promise.race(this.#writes);
      }
      if (this.#failure !== undefined) throw this.#failure.e;
    }
  }

  /** Writes the last, partial extent and waits for every write; throws the first failure. */
  async end(): Promise<void> {
    if (this.#used > 0) this.#start(this.#buf.subarray(0, this.#used));
    this.#used = 0;
    await this.settle();
    if (this.#failure !== undefined) throw this.#failure.e;
  }

  /** Waits until no write is in flight (before a failed put is aborted). */
  async settle(): Promise<void> {
    while (this.#writes.size > 0) await Promise.race(this.#writes);
  }

  #start(chunk: Buffer): void {
    const p = this.writeExtent(chunk).catch((e: unknown) => { this.#failure ??= { e }; }).finally(() => this.#writes.delete(p));
    this.#writes.add(p);
  }
}
