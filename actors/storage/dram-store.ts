import { AlreadyExistsError, CapacityExceededError, InvalidArgumentError, NotFoundError } from "../../schemas/errors";
import { Tier } from "../../schemas/operations";
import type { ExtentStore } from "./extent-store";

/** Extents in process memory, bounded by `capacityBytes`. */
export class DramStore implements ExtentStore {
  readonly tier = Tier.Dram;
  readonly #jobs = new Map<string, Map<string, Buffer>>();
  #used = 0;
  #extents = 0;

  /** `extentsMax` bounds the count as well as the bytes: each extent costs memory beyond its bytes. */
  constructor(readonly capacityBytes: number, private readonly extentsMax = 4_000_000) {
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0) throw new InvalidArgumentError(`bad DRAM capacity ${capacityBytes}`);
  }

  get usedBytes(): number { return this.#used; }
  get extentCount(): number { return this.#extents; }
  get jobCount(): number { return this.#jobs.size; }
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
      copy = Buffer.allocUnsafeSlow(bytes.byteLength);
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

  async read(jobId: string, extentId: string, offset: number, length: number | undefined): Promise<Uint8Array> {
    const bytes = this.#jobs.get(jobId)?.get(extentId);
    if (!bytes) throw new NotFoundError(`extent ${extentId} not found`);
    const end = length === undefined ? bytes.byteLength : offset + length;
    if (offset > bytes.byteLength || end > bytes.byteLength) {
      throw new InvalidArgumentError(`range [${offset}, ${end}) is outside extent of ${bytes.byteLength} bytes`);
    }
    return bytes.subarray(offset, end);
  }

  async free(jobId: string, extentIds: readonly string[]): Promise<number> {
    const job = this.#jobs.get(jobId);
    if (!job) return 0;
    let freed = 0;
    for (const id of extentIds) {
      const b = job.get(id);
      if (!b) continue;
      job.delete(id);
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
