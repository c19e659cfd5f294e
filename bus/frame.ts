import { ErrorCode } from "../schemas/errors";
import { assert, assertInRange } from "../lib/assert";

/**
 * Frames of the direct TCP transport. Every frame:
 *
 *   u32 length      bytes after this field
 *   u8  kind        1 request, 2 reply, 3 error reply
 *   u32 requestId   chosen by the client, echoed by the server
 *   u8  nameLength  operation name length (0 on replies)
 *   ... name        ASCII operation name
 *   u32 metaLength
 *   ... meta        JSON request / reply / {code, message}
 *   ... payload     the rest: raw bytes, if any
 *
 * Many requests may be in flight on one connection; replies come in any order.
 *
 * Bytes from the peer that cannot be framed are FrameErrors (typed, told to the
 * peer); assertions here check our own code: what we encode, and what the
 * decoder hands out once the bytes have passed those checks.
 */
export const FrameKind = { Request: 1, Reply: 2, Error: 3 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export interface Frame {
  readonly kind: FrameKind;
  readonly requestId: number;
  readonly name: string;
  readonly meta: Uint8Array;
  readonly payload: Uint8Array | undefined;
  /**
   * The frame's bytes are in a buffer of its own, shared with no other frame
   * and no socket chunk: a receiver may keep the payload instead of copying it
   * (a storage node keeps an extent so).
   */
  readonly owned?: boolean;
}

/** Frames at least this large that span socket chunks are reassembled into a buffer of their own (and marked owned). */
export const ownedFrameBytesMin = 64 * 1024;

const fixedBytes = 4 + 1 + 4 + 1 + 4;
const nameBytesMax = 64;
const requestIdMax = 0xffff_ffff;
const chunksHeldMax = 1024;

/** A stream that cannot be framed; `code` is what the peer is told before the connection closes. */
export class FrameError extends Error {
  override readonly name = "FrameError";
  constructor(message: string, readonly code: ErrorCode = ErrorCode.InvalidArgument) {
    super(message);
  }
}

/** Bytes a decoded frame took on the wire, its length field included. */
export function frameBytes(frame: Frame): number {
  return fixedBytes + frame.name.length + frame.meta.byteLength + (frame.payload?.byteLength ?? 0);
}

/** Bytes of a frame's head (length field to meta, inclusive) for a name of `nameLength` and meta of `metaBytes`. */
export function frameHeadBytes(nameLength: number, metaBytes: number): number {
  return fixedBytes + nameLength + metaBytes;
}

/**
 * Writes a frame's head (everything but the payload) into `into` at `at`,
 * for a payload of `payloadBytes` to follow it; returns where the head ends.
 * `into` must have `frameHeadBytes(name.length, meta.byteLength)` bytes from `at`.
 */
export function encodeFrameHead(into: Buffer, at: number, kind: FrameKind, requestId: number, name: string, meta: Uint8Array, payloadBytes: number): number {
  const nameLength = name.length;
  if (nameLength > nameBytesMax) throw new FrameError(`operation name of ${nameLength} characters`);
  assertKind(kind);
  assertInRange(requestId, 0, requestIdMax, "requestId");
  const headBytes = frameHeadBytes(nameLength, meta.byteLength);
  assert(at >= 0 && at + headBytes <= into.byteLength, "frame head does not fit its buffer", () => ({ at, headBytes, room: into.byteLength }));
  // The length field covers exactly the parts the decoder will split off (frameBytes counts the same).
  into.writeUInt32BE(headBytes - 4 + payloadBytes, at);
  into.writeUInt8(kind, at + 4);
  into.writeUInt32BE(requestId >>> 0, at + 5);
  into.writeUInt8(nameLength, at + 9);
  if (nameLength > 0) into.write(name, at + 10, "latin1");
  into.writeUInt32BE(meta.byteLength, at + 10 + nameLength);
  into.set(meta, at + 14 + nameLength);
  return at + headBytes;
}

/** Encodes a frame as a header buffer plus the payload (sent as is, not copied). */
export function encodeFrame(kind: FrameKind, requestId: number, name: string, meta: Uint8Array, payload?: Uint8Array): [Buffer, Uint8Array | undefined] {
  const head = Buffer.allocUnsafe(frameHeadBytes(name.length, meta.byteLength));
  encodeFrameHead(head, 0, kind, requestId, name, meta, payload?.byteLength ?? 0);
  return [head, payload && payload.byteLength > 0 ? payload : undefined];
}

/** A kind our own code chose is one of FrameKind's (a peer's unknown kind is a FrameError in parseFrame). */
function assertKind(kind: number): void {
  assert(kind === FrameKind.Request || kind === FrameKind.Reply || kind === FrameKind.Error, "unknown frame kind", () => ({ kind }));
}

/**
 * Reassembles frames from stream chunks. Holds at most one frame's bytes
 * plus one chunk; rejects a frame whose declared length exceeds `frameBytesMax`
 * before reading it.
 */
export class FrameDecoder {
  /** Unconsumed chunks are `#chunks[#head..]`; the consumed prefix is dropped in bulk, so many tiny chunks cost O(n), not O(n²). */
  #chunks: Buffer[] = [];
  #head = 0;
  #buffered = 0;
  #frameBytesMax: number;
  readonly #allocLarge: (size: number) => Buffer;

  /** `allocLarge` makes the buffer of its own that a large frame gets (a storage node takes them from a pool it refills as extents are freed). */
  constructor(frameBytesMax: number, allocLarge: (size: number) => Buffer = Buffer.allocUnsafeSlow) {
    this.#frameBytesMax = frameBytesMax;
    this.#allocLarge = allocLarge;
  }

  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Largest declared length accepted. */
  get frameBytesMax(): number {
    return this.#frameBytesMax;
  }

  /**
   * Size (length field included) of the frame being reassembled, once its
   * length field has arrived; 0 between frames. Valid after a `push` that did
   * not throw.
   */
  get partialFrameBytes(): number {
    return this.#buffered >= 4 ? 4 + this.#peekLength() : 0;
  }

  /** Raises the limit (once a peer has authenticated); a frame already started was checked against the old one. */
  raiseLimit(frameBytesMax: number): void {
    this.#frameBytesMax = Math.max(this.#frameBytesMax, frameBytesMax);
  }

  /** Adds a chunk; returns the frames it completes. Throws FrameError on malformed input. */
  push(chunk: Buffer): Frame[] {
    if (chunk.byteLength === 0) return [];
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
    const frames: Frame[] = [];
    for (;;) {
      if (this.#buffered < 4) break;
      const length = this.#peekLength();
      if (length > this.#frameBytesMax) throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.#frameBytesMax}`, ErrorCode.TooLarge);
      if (length < fixedBytes - 4) throw new FrameError(`frame of ${length} bytes is shorter than its header`);
      if (this.#buffered < 4 + length) break;
      const { bytes, owned } = this.#take(4 + length);
      const frame = parseFrame(bytes, owned);
      assert(frameBytes(frame) === 4 + length, "decoded frame's parts do not add up to its length", () => ({ length, name: frame.name.length, meta: frame.meta.byteLength, payload: frame.payload?.byteLength }));
      frames.push(frame);
    }
    if (this.#head > 0 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    // A peer dripping tiny chunks must not make us hold a million small buffers.
    if (this.#chunks.length - this.#head > chunksHeldMax) {
      this.#chunks = [Buffer.concat(this.#chunks.slice(this.#head))];
      this.#head = 0;
    }
    assert(this.#buffered >= 0 && this.#head <= this.#chunks.length && this.#chunks.length - this.#head <= chunksHeldMax,
      "decoder buffer bookkeeping", () => ({ buffered: this.#buffered, head: this.#head, chunks: this.#chunks.length }));
    return frames;
  }

  /**
   * Hands over the large frame (≥ `ownedFrameBytesMin`) being reassembled, if
   * one is: a buffer of its own, sized to the whole frame, holding the bytes
   * that have arrived (`at`); the decoder then holds nothing. The rest of the
   * frame may then be read straight into `buf.subarray(at)` (see FrameReader)
   * and handed back to `completeFrame`. Call only after a `push` that did not
   * throw (the frame's length has been checked).
   */
  takeLargePartial(): { buf: Buffer; at: number } | undefined {
    const total = this.partialFrameBytes;
    if (total < ownedFrameBytesMin || this.#buffered >= total) return undefined;
    const buf = this.#allocLarge(total);
    assert(buf.byteLength === total, "a large frame's buffer is its size", () => ({ total, got: buf.byteLength }));
    let at = 0;
    for (let i = this.#head; i < this.#chunks.length; i++) {
      buf.set(this.#chunks[i]!, at);
      at += this.#chunks[i]!.byteLength;
    }
    assert(at === this.#buffered, "a partial frame's bytes", () => ({ at, buffered: this.#buffered }));
    this.#chunks = [];
    this.#head = 0;
    this.#buffered = 0;
    return { buf, at };
  }

  #peekLength(): number {
    const first = this.#chunks[this.#head]!;
    if (first.byteLength >= 4) return first.readUInt32BE(0);
    const four = Buffer.allocUnsafe(4);
    let at = 0;
    for (let i = this.#head; at < 4; i++) {
      const c = this.#chunks[i]!;
      const n = Math.min(c.byteLength, 4 - at);
      c.copy(four, at, 0, n);
      at += n;
    }
    return four.readUInt32BE(0);
  }

  #take(n: number): { bytes: Buffer; owned: boolean } {
    const first = this.#chunks[this.#head]!;
    let out: Buffer;
    let owned = false;
    if (first.byteLength >= n) {
      out = first.subarray(0, n);
      if (first.byteLength === n) this.#head++;
      else this.#chunks[this.#head] = first.subarray(n);
    } else {
      // A large frame gets a buffer of its own (never a slice of the shared pool), which its receiver may keep.
      owned = n >= ownedFrameBytesMin;
      out = owned ? this.#allocLarge(n) : Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.#chunks[this.#head]!;
        const want = n - at;
        if (c.byteLength <= want) {
          out.set(c, at);
          at += c.byteLength;
          this.#head++;
        } else {
          out.set(c.subarray(0, want), at);
          this.#chunks[this.#head] = c.subarray(want);
          at += want;
        }
      }
    }
    this.#buffered -= n;
    assert(out.byteLength === n, "took the wrong number of bytes", () => ({ want: n, got: out.byteLength }));
    return { bytes: out, owned };
  }
}

/** A whole frame handed back by `takeLargePartial`, filled: the frame it holds (owned). */
export function completeFrame(buf: Buffer): Frame {
  return parseFrame(buf, true);
}

/** Bytes of the buffer a FrameReader reads into between large frames. */
export const readScratchBytes = 64 * 1024;

export interface FrameReaderOptions {
  /**
   * Where reads between large frames land. Readers may share one (a server's
   * connections do): every read is copied out of it before `landed` returns,
   * and Node calls `landed` in the same turn as the read.
   */
  readonly scratch?: Buffer;
  /**
   * False: a large frame gets its own buffer only once `claimLarge` is called
   * (a server claims it once its budget has admitted the frame), so a frame
   * waiting for room holds only the bytes that have arrived. Default true.
   */
  readonly claimLargeAtOnce?: boolean;
}

/**
 * A socket's reads into memory chosen per read (Node's `onread` option): the
 * rest of a large frame in progress is read straight into that frame's own
 * buffer (no per-read allocation, no copy when it is put together), and
 * anything else into a scratch buffer, whose bytes are copied out before the
 * next read (small frames into the shared pool).
 *
 * @example
 *   const reader = new FrameReader(new FrameDecoder(max));
 *   net.connect({ host, port, onread: { buffer: () => reader.target(), callback: (n, buf) => { for (const f of reader.landed(n, buf)) ... } } });
 */
export class FrameReader {
  readonly #scratch: Buffer;
  readonly #claimAtOnce: boolean;
  #partial: { buf: Buffer; at: number } | undefined;

  constructor(readonly decoder: FrameDecoder, options: FrameReaderOptions = {}) {
    this.#scratch = options.scratch ?? Buffer.allocUnsafeSlow(readScratchBytes);
    this.#claimAtOnce = options.claimLargeAtOnce ?? true;
  }

  /** Bytes that have arrived for frames not yet complete. */
  get bufferedBytes(): number {
    return this.#partial ? this.#partial.at : this.decoder.bufferedBytes;
  }

  /** Bytes held for frames not yet complete: a claimed large frame's whole buffer. */
  get heldBytes(): number {
    return this.#partial ? this.#partial.buf.byteLength : this.decoder.bufferedBytes;
  }

  /** Size (length field included) of the frame in progress once its length is known; 0 between frames. */
  get partialFrameBytes(): number {
    return this.#partial ? this.#partial.buf.byteLength : this.decoder.partialFrameBytes;
  }

  /** Where the next read goes. */
  target(): Buffer {
    const p = this.#partial;
    return p ? p.buf.subarray(p.at) : this.#scratch;
  }

  /** Gives the large frame in progress (if any, and not yet given) a buffer of its own, which the next reads fill. */
  claimLarge(): void {
    if (this.#partial === undefined) this.#partial = this.decoder.takeLargePartial();
  }

  /**
   * `n` bytes were read into `into` (a buffer `target()` returned: Node may
   * still read once into the scratch buffer after a claim); returns the frames
   * they complete. Throws FrameError on malformed input.
   */
  landed(n: number, into: Buffer): Frame[] {
    const p = this.#partial;
    if (p && into !== this.#scratch) {
      assert(into.buffer === p.buf.buffer && into.byteOffset === p.buf.byteOffset + p.at && n <= p.buf.byteLength - p.at,
        "a read landed outside the frame it was given", () => ({ n, at: p.at, size: p.buf.byteLength }));
      p.at += n;
      return p.at < p.buf.byteLength ? [] : [this.#completePartial(p.buf)];
    }
    assert(into === this.#scratch && n <= this.#scratch.byteLength, "a read landed outside the scratch buffer", () => ({ n }));
    let from = 0;
    let done: Frame | undefined;
    if (p) {
      from = Math.min(n, p.buf.byteLength - p.at);
      this.#scratch.copy(p.buf, p.at, 0, from);
      p.at += from;
      if (p.at < p.buf.byteLength) return [];
      done = this.#completePartial(p.buf);
      if (from === n) return [done];
    }
    // The scratch buffer is read into again next time: what the decoder keeps must be a copy.
    const copy = Buffer.allocUnsafe(n - from);
    this.#scratch.copy(copy, 0, from, n);
    const frames = this.decoder.push(copy);
    if (done) frames.unshift(done);
    if (this.#claimAtOnce) this.claimLarge();
    return frames;
  }

  #completePartial(buf: Buffer): Frame {
    this.#partial = undefined;
    return completeFrame(buf);
  }
}

function parseFrame(buf: Buffer, owned: boolean): Frame {
  const kind = buf.readUInt8(4);
  if (kind !== FrameKind.Request && kind !== FrameKind.Reply && kind !== FrameKind.Error) {
    throw new FrameError(`unknown frame kind ${kind}`);
  }
  const requestId = buf.readUInt32BE(5);
  const nameLength = buf.readUInt8(9);
  if (nameLength > nameBytesMax || 14 + nameLength > buf.byteLength) throw new FrameError(`operation name of ${nameLength} bytes`);
  const name = buf.toString("latin1", 10, 10 + nameLength);
  const metaLength = buf.readUInt32BE(10 + nameLength);
  const metaStart = 14 + nameLength;
  if (metaStart + metaLength > buf.byteLength) throw new FrameError(`meta of ${metaLength} bytes overruns the frame`);
  const meta = buf.subarray(metaStart, metaStart + metaLength);
  const payload = buf.byteLength > metaStart + metaLength ? buf.subarray(metaStart + metaLength) : undefined;
  // Past the checks above, the header's fields are within their bounds; a failure here is ours.
  assertKind(kind);
  assertInRange(requestId, 0, requestIdMax, "requestId");
  assert(name.length === nameLength && nameLength <= nameBytesMax && meta.byteLength === metaLength, "decoded header fields out of bounds",
    () => ({ nameLength, name: name.length, metaLength, meta: meta.byteLength }));
  return owned ? { kind: kind as FrameKind, requestId, name, meta, payload, owned } : { kind: kind as FrameKind, requestId, name, meta, payload };
}
