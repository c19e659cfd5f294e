/**
 * Large buffers kept for reuse by size class, so memory written and freed at
 * a high rate (a storage node's extents, each in the frame it arrived in) is
 * used again instead of being left to the garbage collector: V8 runs a full
 * collection for every few tens of MiB of buffers dropped, and frees their
 * memory on its worker threads. Bounded: at most `idleBytesMax` bytes wait
 * for reuse; past that the blocks idle longest are left to the collector.
 *
 * A buffer must be given back only once nothing will read or write any view
 * of it again: its memory is handed out as is (not zeroed) by a later `take`.
 *
 * @example
 *   const pool = new BufferPool(32 * 1024 * 1024);
 *   const b = pool.take(1 << 20);   // 1 MiB view over a 1 MiB block
 *   pool.give(b);                   // next take of up to 1 MiB reuses it
 */
export class BufferPool {
  /** Idle blocks by size. */
  readonly #idle = new Map<number, ArrayBuffer[]>();
  /** Every block this pool made (a buffer from elsewhere is never kept). */
  readonly #ours = new WeakSet<ArrayBuffer>();
  /** Blocks idle now, longest idle first (a block given back twice is kept once). */
  readonly #idleSet = new Set<ArrayBuffer>();
  #idleBytes = 0;
  #reused = 0;

  /** `classBytes`: block sizes are its multiples, so a block serves requests within one class of each other. */
  constructor(readonly idleBytesMax: number, readonly classBytes = 16 * 1024) {
    if (!Number.isSafeInteger(idleBytesMax) || idleBytesMax < 0) throw new RangeError(`BufferPool: bad idleBytesMax ${idleBytesMax}`);
    if (!Number.isSafeInteger(classBytes) || classBytes <= 0) throw new RangeError(`BufferPool: bad classBytes ${classBytes}`);
  }

  /** Bytes of idle blocks now. */
  get idleBytes(): number {
    return this.#idleBytes;
  }

  /** Takes that reused an idle block, since the start. */
  get reused(): number {
    return this.#reused;
  }

  /** A buffer of exactly `size` bytes (> 0), over an idle block of its class if there is one. Its bytes are whatever they were. */
  take(size: number): Buffer {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`BufferPool.take: bad size ${size}`);
    const blockBytes = Math.ceil(size / this.classBytes) * this.classBytes;
    const block = this.#idle.get(blockBytes)?.pop();
    if (block === undefined) {
      const made = Buffer.allocUnsafeSlow(blockBytes).buffer as ArrayBuffer;
      this.#ours.add(made);
      return Buffer.from(made, 0, size);
    }
    this.#idleSet.delete(block);
    this.#idleBytes -= blockBytes;
    this.#reused++;
    return Buffer.from(block, 0, size);
  }

  /**
   * Gives back a block (or the block under a view of it), if this pool made
   * it and it fits the bound (the blocks idle longest make room); true if it
   * was kept. The caller vouches that no view of the block is used again.
   */
  give(memory: Uint8Array | ArrayBuffer): boolean {
    const block = (memory instanceof ArrayBuffer ? memory : memory.buffer) as ArrayBuffer;
    if (!this.#ours.has(block) || this.#idleSet.has(block) || block.byteLength > this.idleBytesMax) return false;
    while (this.#idleBytes + block.byteLength > this.idleBytesMax) this.#dropOldest();
    let list = this.#idle.get(block.byteLength);
    if (list === undefined) {
      list = [];
      this.#idle.set(block.byteLength, list);
    }
    list.push(block);
    this.#idleSet.add(block);
    this.#idleBytes += block.byteLength;
    return true;
  }

  #dropOldest(): void {
    const oldest: ArrayBuffer = this.#idleSet.values().next().value!;
    this.#idleSet.delete(oldest);
    const list = this.#idle.get(oldest.byteLength)!;
    list.splice(list.indexOf(oldest), 1);
    if (list.length === 0) this.#idle.delete(oldest.byteLength);
    this.#idleBytes -= oldest.byteLength;
  }
}
