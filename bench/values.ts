/**
 * The bytes the benchmark writes, made so that every read can be checked
 * whole: a filler stamped at each 4 KiB block with the block's number and a
 * hash of the key (so a block from another offset or another key differs),
 * and for objects a write sequence number in the last 4 bytes (so a stale
 * version differs).
 *
 * @example
 *   const v = valueFor("b0/ops/3", 1024, 7);
 *   v.equals(valueFor("b0/ops/3", 1024, 7)) === true;
 */
import type { ReadCounts } from "./work";

const blockBytes = 4096;

/** The filler of every 4 KiB block, before its stamp. */
const filler = Buffer.from(Array.from({ length: blockBytes }, (_, i) => (i * 131 + (i >> 8) * 17 + 7) & 0xff));

/** FNV-1a of a key, 32 bits. */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Stamps `b` (the bytes from block `firstBlock` on) with each block's number and `hash`. */
function stamp(b: Buffer, firstBlock: number, hash: number): void {
  for (let at = 0, k = firstBlock; at + 8 <= b.byteLength; at += blockBytes, k++) {
    b.writeUInt32LE(k >>> 0, at);
    b.writeUInt32LE(hash, at + 4);
  }
}

/** Sets the write sequence number of a value made by `valueFor` (its last 4 bytes). */
export function setSequence(value: Buffer, sequence: number): void {
  if (value.byteLength >= 12) value.writeUInt32LE(sequence >>> 0, value.byteLength - 4);
}

/** The bytes of write number `sequence` of `key`. */
export function valueFor(key: string, size: number, sequence = 0): Buffer {
  const b = Buffer.allocUnsafe(size);
  b.fill(filler);
  stamp(b, 0, keyHash(key));
  setSequence(b, sequence);
  return b;
}

/**
 * A long object made in chunks, for streams: chunk `i` holds the pattern's
 * bytes `[i × chunkBytes, (i + 1) × chunkBytes)`. `matches` checks a piece
 * read back at any offset and of any length against the same bytes.
 */
export class StreamPattern {
  readonly #hash: number;
  readonly #expected: Buffer;
  #expectedChunk = -1;

  constructor(key: string, readonly size: number, readonly chunkBytes = 1024 * 1024) {
    if (chunkBytes % blockBytes !== 0) throw new RangeError(`chunkBytes ${chunkBytes} is not a multiple of ${blockBytes}`);
    this.#hash = keyHash(key);
    this.#expected = Buffer.alloc(chunkBytes);
    this.#expected.fill(filler);
  }

  /** The object's bytes, chunk by chunk, in one buffer re-stamped for each (the consumer copies what it keeps). */
  async *chunks(): AsyncGenerator<Buffer> {
    const chunk = Buffer.alloc(this.chunkBytes);
    chunk.fill(filler);
    const count = Math.ceil(this.size / this.chunkBytes);
    for (let i = 0; i < count; i++) {
      stamp(chunk, (i * this.chunkBytes) / blockBytes, this.#hash);
      yield chunk.subarray(0, Math.min(this.chunkBytes, this.size - i * this.chunkBytes));
    }
  }

  /** True when `piece` is the object's bytes from offset `at`. */
  matches(piece: Uint8Array, at: number): boolean {
    if (at + piece.byteLength > this.size) return false;
    for (let done = 0; done < piece.byteLength;) {
      const pos = at + done;
      const chunk = Math.floor(pos / this.chunkBytes);
      const from = pos - chunk * this.chunkBytes;
      const n = Math.min(piece.byteLength - done, this.chunkBytes - from);
      if (chunk !== this.#expectedChunk) {
        stamp(this.#expected, (chunk * this.chunkBytes) / blockBytes, this.#hash);
        this.#expectedChunk = chunk;
      }
      if (!this.#expected.subarray(from, from + n).equals(piece.subarray(done, done + n))) return false;
      done += n;
    }
    return true;
  }
}

/** Counts reads as they are compared with what was written. */
export class ReadCheck {
  #reads = 0;
  #verified = 0;
  #wrong = 0;
  #firstWrong: string | undefined;

  /** Compares a read of `key` with `want`; `got` undefined means the store found nothing. */
  compare(key: string, got: Uint8Array | undefined, want: Buffer): void {
    this.result(key, got !== undefined && got.byteLength === want.byteLength && want.equals(got),
      got === undefined ? "nothing found" : `${got.byteLength} bytes, expected ${want.byteLength}`);
  }

  /** Counts a compared read: `ok` says whether it matched; `detail` describes it if not. */
  result(key: string, ok: boolean, detail: string): void {
    this.#reads++;
    this.#verified++;
    if (ok) return;
    this.#wrong++;
    this.#firstWrong ??= `${key}: ${detail}`;
  }

  get counts(): ReadCounts {
    return { reads: this.#reads, verified: this.#verified, wrong: this.#wrong, ...(this.#firstWrong ? { firstWrong: this.#firstWrong } : {}) };
  }
}
