import fs from "node:fs";
import path from "node:path";
import { AlreadyExistsError, CapacityExceededError, InvalidArgumentError, NodeUnavailableError, NotFoundError } from "../../schemas/errors";
import { Tier } from "../../schemas/operations";
import { BlockBytes, NvmeEngine, type DeviceModel } from "../../native";
import { BlockAllocator } from "./block-allocator";
import type { ExtentBytes, ExtentStore } from "./extent-store";

export interface NvmeStoreOptions {
  /** A block device, or a file (created and preallocated to `sizeBytes`). */
  readonly path: string;
  readonly sizeBytes?: number;
  readonly queueDepth?: number;
  readonly sqpoll?: boolean;
  /** See EngineOptions.spinUs: above 0, the engine gets a thread of its own that polls; else it runs on the JavaScript thread. */
  readonly spinUs?: number;
  readonly model?: DeviceModel;
  /** Extents the node keeps track of at most. */
  readonly extentsMax?: number;
}

interface Placed {
  readonly block: number;
  readonly blocks: number;
  readonly length: number;
}

/**
 * Extents on flash through the native engine: each extent gets a run of
 * 4 KiB blocks from the allocator (the node owns the device's space);
 * reads fetch the covering blocks and slice. Each job is a tenant of the
 * engine's QoS scheduler (best-effort unless given a reservation).
 */
export class NvmeStore implements ExtentStore {
  readonly tier = Tier.Nvme;
  readonly #jobs = new Map<string, Map<string, Placed>>();
  readonly #tenants = new Map<string, number>();
  readonly #latencyCritical = new Set<string>();
  #nextTenant = 1;
  #used = 0;
  #extents = 0;
  readonly #allocator: BlockAllocator;
  readonly capacityBytes: number;

  private constructor(readonly engine: NvmeEngine, private readonly extentsMax: number) {
    this.#allocator = new BlockAllocator(Math.floor(engine.capacityBytes / BlockBytes));
    this.capacityBytes = this.#allocator.blocks * BlockBytes;
  }

  static open(options: NvmeStoreOptions): NvmeStore {
    if (options.sizeBytes) fs.mkdirSync(path.dirname(path.resolve(options.path)), { recursive: true });
    const engine = NvmeEngine.open({ path: options.path, sizeBytes: options.sizeBytes, queueDepth: options.queueDepth ?? 128, sqpoll: options.sqpoll, spinUs: options.spinUs, model: options.model });
    return new NvmeStore(engine, options.extentsMax ?? 4_000_000);
  }

  get usedBytes(): number { return this.#used; }
  get extentCount(): number { return this.#extents; }
  get jobCount(): number { return this.#jobs.size; }
  jobIds(): IterableIterator<string> { return this.#jobs.keys(); }

  /**
   * Makes a job a latency-critical tenant with its SLO (before its first
   * I/O: a tenant that exists is replaced, its queued requests cancelled).
   * Throws CapacityExceeded with the scheduler's reason when admission refuses it.
   */
  reserve(jobId: string, slo: { iops: number; readRatio: number; p95Us: number }): void {
    const old = this.#tenants.get(jobId);
    if (old !== undefined) this.engine.removeTenant(old);
    const t = this.#nextTenant++;
    try {
      this.engine.addLatencyCritical(t, slo);
    } catch (e) {
      this.engine.addBestEffort(t);
      this.#tenants.set(jobId, t);
      throw new CapacityExceededError(e instanceof Error ? e.message : String(e));
    }
    this.#tenants.set(jobId, t);
    this.#latencyCritical.add(jobId);
  }

  get latencyCriticalJobs(): number { return this.#latencyCritical.size; }

  /** The engine tenant of a job (best-effort on first sight). */
  tenantOf(jobId: string): number {
    let t = this.#tenants.get(jobId);
    if (t === undefined) {
      t = this.#nextTenant++;
      this.#tenants.set(jobId, t);
      this.engine.addBestEffort(t);
    }
    return t;
  }

  async write(jobId: string, extentId: string, bytes: Uint8Array): Promise<void> {
    let job = this.#jobs.get(jobId);
    if (job?.has(extentId)) throw new AlreadyExistsError(`extent ${extentId} exists`);
    if (bytes.byteLength === 0) throw new InvalidArgumentError("an extent holds at least one byte");
    if (this.#extents >= this.extentsMax) throw new CapacityExceededError(`node holds ${this.extentsMax} extents at most`);
    const blocks = this.#allocator.blocksFor(bytes.byteLength);
    const block = this.#allocator.allocate(blocks);
    if (block === undefined) throw new CapacityExceededError(`node full: ${bytes.byteLength} bytes do not fit (${this.#allocator.freeBlocks} blocks free, not in one run of ${blocks})`);
    try {
      // Whole blocks on the device: the engine zero-fills the tail as it copies into aligned memory.
      await this.engine.write(this.tenantOf(jobId), block * BlockBytes, bytes, blocks * BlockBytes);
    } catch (e) {
      this.#allocator.free(block, blocks);
      throw new NodeUnavailableError(`device write failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    job = this.#jobs.get(jobId);
    if (!job) {
      job = new Map();
      this.#jobs.set(jobId, job);
    }
    if (job.has(extentId)) { // written twice concurrently: keep the first
      this.#allocator.free(block, blocks);
      throw new AlreadyExistsError(`extent ${extentId} exists`);
    }
    job.set(extentId, { block, blocks, length: bytes.byteLength });
    this.#used += bytes.byteLength;
    this.#extents++;
  }

  async read(jobId: string, extentId: string, offset: number, length: number | undefined): Promise<ExtentBytes> {
    const p = this.#jobs.get(jobId)?.get(extentId);
    if (!p) throw new NotFoundError(`extent ${extentId} not found`);
    if (offset < 0 || offset > p.length) throw new InvalidArgumentError(`offset ${offset} outside extent of ${p.length} bytes`);
    const n = Math.min(length ?? p.length - offset, p.length - offset);
    if (n === 0) return { bytes: new Uint8Array(0) };
    const first = Math.floor(offset / BlockBytes);
    const last = Math.ceil((offset + n) / BlockBytes);
    let buf: Buffer;
    try {
      buf = await this.engine.read(this.tenantOf(jobId), (p.block + first) * BlockBytes, (last - first) * BlockBytes);
    } catch (e) {
      throw new NodeUnavailableError(`device read failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    // The extent may have been freed (and its blocks reused) while the read was in flight.
    if (this.#jobs.get(jobId)?.get(extentId) !== p) throw new NotFoundError(`extent ${extentId} was freed`);
    const start = offset - first * BlockBytes;
    return { bytes: buf.subarray(start, start + n) };
  }

  async free(jobId: string, extentIds: readonly string[]): Promise<number> {
    const job = this.#jobs.get(jobId);
    if (!job) return 0;
    let freed = 0;
    for (const id of extentIds) {
      const p = job.get(id);
      if (!p) continue;
      job.delete(id);
      this.#allocator.free(p.block, p.blocks);
      this.#used -= p.length;
      this.#extents--;
      freed += p.length;
    }
    if (job.size === 0) this.#jobs.delete(jobId);
    return freed;
  }

  async dropJob(jobId: string): Promise<number> {
    const job = this.#jobs.get(jobId);
    const freed = job ? await this.free(jobId, [...job.keys()]) : 0;
    const t = this.#tenants.get(jobId);
    if (t !== undefined && !this.engine.closed) {
      this.engine.removeTenant(t);
      this.#tenants.delete(jobId);
    }
    this.#latencyCritical.delete(jobId);
    return freed;
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}
