import { AlreadyExistsError, CapacityExceededError, InvalidArgumentError, NotFoundError } from "../../schemas/errors";
import { Tier } from "../../schemas/operations";
import { assert } from "../../lib/assert";
import type { BufferPool } from "../../lib/buffer-pool";
import type { ExtentBytes, ExtentStore } from "./extent-store";

/**
 * Extents in process memory, bounded by `capacityBytes`. With a pool, an
 * extent's memory goes back to it when the extent is freed, once no read of
 * it is still being sent (reads hold it until they release it).
 */
export class DramStore implements ExtentStore {
  readonly tier = Tier.Dram;
  readonly #jobs = new Map<string, Map<string, Buffer>>();
  /** Reads not yet released, by the memory they view (pooled extents only). */
  readonly #reads = new Map<ArrayBuffer, number>();
  /** Memory of extents freed while reads of them were out: back to the pool when the last is released. */
  readonly #freedWhileRead = new Set<ArrayBuffer>();
  #used = 0;
  #extents = 0;

  /** `extentsMax` bounds the count as well as the bytes: each extent costs memory beyond its bytes. */
  constructor(readonly capacityBytes: number, private readonly extentsMax = 4_000_000, private readonly pool?: BufferPool) {
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0) throw new InvalidArgumentError(`bad DRAM capacity ${capacityBytes}`);
  }

  get usedBytes(): number { return this.#used; }
  get extentCount(): number { return this.#extents; }
  get jobCount(): number { return this.#jobs.size; }
  /** Reads handed out and not yet released. */
  get readsOut(): number {
    let n = 0;
    for (const count of this.#reads.values()) n += count;
    return n;
  }
  /** Memory of freed extents waiting in the pool; 0 without one. */
  get idleBytes(): number { return this.pool?.idleBytes ?? 0; }
  /** Frames and copies that reused a freed extent's memory, since start. */
  get reusedBlocks(): number { return this.pool?.reused ?? 0; }
  jobIds(): IterableIterator<string> { return this.#jobs.keys(); }

  async write(jobId: string, extentId: string, bytes: Uint8Array, owned = false): Promise<void> {
    let job = this.#jobs.get(jobId);
    if (job?.has(extentId)) throw new AlreadyExistsError(`extent ${extentId} exists`);
    if (bytes.byteLength === 0) throw new InvalidArgumentError("an extent holds at least one byte");
    if (this.#extents >= this.extentsMax) throw new CapacityExceededError(`node holds ${this.extentsMax} extents at most`);
    if (this.#used + bytes.byteLength > this.capacityBytes) {
      throw new CapacityExceededError(`node full: ${bytes.byteLength} bytes do not fit in ${this.capacityBytes - this.#used} free`);
    }
    // A buffer given up by its caller is kept as it is; any other may be shared with other frames: copy it.
    let copy: Buffer;
    if (owned) {
      copy = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } else {
      copy = this.pool ? this.pool.take(bytes.byteLength) : Buffer.allocUnsafeSlow(bytes.byteLength);
      copy.set(bytes);
    }
    if (!job) {
      job = new Map();
      this.#jobs.set(jobId, job);
    }
    job.set(extentId, copy);
    this.#used += copy.byteLength;
    this.#extents++;
  }

  async read(jobId: string, extentId: string, offset: number, length: number | undefined): Promise<ExtentBytes> {
    const stored = this.#jobs.get(jobId)?.get(extentId);
    if (!stored) throw new NotFoundError(`extent ${extentId} not found`);
    const end = length === undefined ? stored.byteLength : offset + length;
    if (offset > stored.byteLength || end > stored.byteLength) {
      throw new InvalidArgumentError(`range [${offset}, ${end}) is outside extent of ${stored.byteLength} bytes`);
    }
    const bytes = offset === 0 && end === stored.byteLength ? stored : stored.subarray(offset, end);
    if (this.pool === undefined) return { bytes };
    const memory = stored.buffer as ArrayBuffer;
    this.#reads.set(memory, (this.#reads.get(memory) ?? 0) + 1);
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        this.#releaseRead(memory);
      },
    };
  }

  #releaseRead(memory: ArrayBuffer): void {
    const left = this.#reads.get(memory)! - 1;
    assert(left >= 0, "a read released twice", () => ({ left }));
    if (left > 0) {
      this.#reads.set(memory, left);
      return;
    }
    this.#reads.delete(memory);
    if (this.#freedWhileRead.delete(memory)) this.pool!.give(memory);
  }

  /** The memory of a freed extent goes back to the pool now, or when its last read is released. */
  #recycle(stored: Buffer): void {
    if (this.pool === undefined) return;
    const memory = stored.buffer as ArrayBuffer;
    if (this.#reads.has(memory)) this.#freedWhileRead.add(memory);
    else this.pool.give(stored);
  }

  async free(jobId: string, extentIds: readonly string[]): Promise<number> {
    const job = this.#jobs.get(jobId);
    if (!job) return 0;
    let freed = 0;
    for (const id of extentIds) {
      const b = job.get(id);
      if (!b) continue;
      job.delete(id);
      this.#recycle(b);
      freed += b.byteLength;
      this.#extents--;
    }
    this.#used -= freed;
    if (job.size === 0) this.#jobs.delete(jobId);
    return freed;
  }

  async dropJob(jobId: string): Promise<number> {
    const job = this.#jobs.get(jobId);
    if (!job) return 0;
    return this.free(jobId, [...job.keys()]);
  }

  async close(): Promise<void> {
    this.#jobs.clear();
    this.#used = 0;
    this.#extents = 0;
  }
}
