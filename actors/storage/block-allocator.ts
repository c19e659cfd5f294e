import { assert } from "../../lib/assert";

/**
 * Space on a block device in 4 KiB blocks: extents get runs of whole blocks.
 * Free runs are kept by length (exact fit first, then the smallest longer
 * run, split); fresh space comes from a bump pointer. Freed runs are not
 * merged with their neighbours: extents are at most a few hundred blocks,
 * so fragmentation costs little and the bookkeeping stays O(log n).
 *
 * Invariants, asserted on every call: used + in free runs + past the bump
 * pointer == total; every run handed out lies within the device; a block is
 * handed out at most once and given back at most once (one bit per block:
 * 32 KiB of memory per GiB of device).
 */
export class BlockAllocator {
  /** run length (blocks) → start blocks of free runs of that length. */
  readonly #free = new Map<number, number[]>();
  /** Free-run lengths present, sorted. */
  #lengths: number[] = [];
  #bump = 0;
  #usedBlocks = 0;
  /** Blocks in the free runs of `#free`. */
  #freeRunBlocks = 0;
  /** One bit per block, set while the block is handed out. */
  readonly #inUse: Uint32Array;

  constructor(readonly blocks: number, readonly blockBytes = 4096) {
    if (!Number.isSafeInteger(blocks) || blocks <= 0) throw new RangeError(`bad block count ${blocks}`);
    this.#inUse = new Uint32Array(Math.ceil(blocks / 32));
  }

  get usedBlocks(): number { return this.#usedBlocks; }
  get freeBlocks(): number { return this.blocks - this.#usedBlocks; }

  blocksFor(bytes: number): number {
    return Math.max(1, Math.ceil(bytes / this.blockBytes));
  }

  /** A run of `count` blocks (its first block), or undefined when no run that long is free. */
  allocate(count: number): number | undefined {
    if (!Number.isSafeInteger(count) || count <= 0) throw new RangeError(`bad block count ${count}`);
    // Smallest free run that fits (binary search over the sorted lengths).
    let lo = 0, hi = this.#lengths.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#lengths[mid]! < count) lo = mid + 1;
      else hi = mid;
    }
    let start: number;
    if (lo < this.#lengths.length) {
      const len = this.#lengths[lo]!;
      start = this.#take(len);
      if (len > count) this.#put(start + count, len - count);
    } else if (this.#bump + count <= this.blocks) {
      start = this.#bump;
      this.#bump += count;
    } else {
      return undefined;
    }
    assert(start >= 0 && start + count <= this.#bump, "allocated run outside the space handed out", () => ({ start, count, bump: this.#bump }));
    this.#mark(start, count, true);
    this.#usedBlocks += count;
    this.#checkTotals();
    return start;
  }

  /** Gives back a run `allocate(count)` returned, once. */
  free(start: number, count: number): void {
    assert(Number.isSafeInteger(start) && Number.isSafeInteger(count) && count > 0 && start >= 0 && start + count <= this.#bump,
      "freed run outside the space handed out", () => ({ start, count, bump: this.#bump, blocks: this.blocks }));
    this.#mark(start, count, false);
    if (start + count === this.#bump) {
      this.#bump = start; // the last run handed out: give it back to fresh space
    } else {
      this.#put(start, count);
    }
    this.#usedBlocks -= count;
    this.#checkTotals();
  }

  /** Sets (`used`) or clears the run's bits; asserts first that none is in that state already (a block handed out or freed twice). */
  #mark(start: number, count: number, used: boolean): void {
    for (let pass = 0; pass < 2; pass++) {
      for (let word = Math.floor(start / 32); word <= Math.floor((start + count - 1) / 32); word++) {
        const mask = runMask(start - word * 32, start + count - word * 32);
        if (pass === 0) {
          const bits = (this.#inUse[word]! & mask) >>> 0;
          assert(bits === (used ? 0 : mask), used ? "a block handed out twice" : "a block freed twice (or never handed out)", () => ({ start, count }));
        } else {
          this.#inUse[word] = used ? this.#inUse[word]! | mask : this.#inUse[word]! & ~mask;
        }
      }
    }
  }

  /** Asserts every block is accounted for once: used, in a free run, or past the bump pointer. */
  #checkTotals(): void {
    assert(this.#usedBlocks >= 0 && this.#bump <= this.blocks && this.#usedBlocks + this.#freeRunBlocks + (this.blocks - this.#bump) === this.blocks,
      "used + free blocks != total", () => ({ used: this.#usedBlocks, freeRuns: this.#freeRunBlocks, bump: this.#bump, blocks: this.blocks }));
  }

  #take(len: number): number {
    const list = this.#free.get(len)!;
    const start = list.pop()!;
    if (list.length === 0) {
      this.#free.delete(len);
      this.#lengths.splice(this.#lengths.indexOf(len), 1);
    }
    this.#freeRunBlocks -= len;
    return start;
  }

  #put(start: number, len: number): void {
    let list = this.#free.get(len);
    if (!list) {
      list = [];
      this.#free.set(len, list);
      let i = 0;
      while (i < this.#lengths.length && this.#lengths[i]! < len) i++;
      this.#lengths.splice(i, 0, len);
    }
    list.push(start);
    this.#freeRunBlocks += len;
  }
}

/** The bits of one 32-block word that the run [from, to) covers (offsets relative to the word's first block), unsigned. */
function runMask(from: number, to: number): number {
  const lo = Math.max(0, from);
  const hi = Math.min(32, to);
  return (hi - lo === 32 ? 0xffff_ffff : ((1 << (hi - lo)) - 1) << lo) >>> 0;
}
