/**
 * Space on a block device in 4 KiB blocks: extents get runs of whole blocks.
 * Free runs are kept by length (exact fit first, then the smallest longer
 * run, split); fresh space comes from a bump pointer. Freed runs are not
 * merged with their neighbours: extents are at most a few hundred blocks,
 * so fragmentation costs little and the bookkeeping stays O(log n).
 */
export class BlockAllocator {
  /** run length (blocks) → start blocks of free runs of that length. */
  readonly #free = new Map<number, number[]>();
  /** Free-run lengths present, sorted. */
  #lengths: number[] = [];
  #bump = 0;
  #usedBlocks = 0;

  constructor(readonly blocks: number, readonly blockBytes = 4096) {
    if (!Number.isSafeInteger(blocks) || blocks <= 0) throw new RangeError(`bad block count ${blocks}`);
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
    if (lo < this.#lengths.length) {
      const len = this.#lengths[lo]!;
      const start = this.#take(len);
      if (len > count) this.#put(start + count, len - count);
      this.#usedBlocks += count;
      return start;
    }
    if (this.#bump + count <= this.blocks) {
      const start = this.#bump;
      this.#bump += count;
      this.#usedBlocks += count;
      return start;
    }
    return undefined;
  }

  free(start: number, count: number): void {
    if (start + count === this.#bump) {
      this.#bump = start; // the last run handed out: give it back to fresh space
    } else {
      this.#put(start, count);
    }
    this.#usedBlocks -= count;
  }

  #take(len: number): number {
    const list = this.#free.get(len)!;
    const start = list.pop()!;
    if (list.length === 0) {
      this.#free.delete(len);
      this.#lengths.splice(this.#lengths.indexOf(len), 1);
    }
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
  }
}
