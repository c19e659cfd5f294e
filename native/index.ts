import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../lib/process";

/** 4 KiB: offsets and lengths on the device are multiples of it (O_DIRECT). */
export const BlockBytes = 4096;
/** Largest single request (one extent plus room). */
export const RequestBytesMax = 16 * 1024 * 1024;

/** An I/O error from the native engine, with the caller's stack. */
export class NativeIoError extends Error {
  override readonly name = "NativeIoError";
  constructor(message: string, readonly code: string, readonly errno: number, readonly operation: string) {
    super(message);
  }
}

/** What the device sustains within a latency limit (`pocket calibrate` measures it). */
export interface DeviceModel {
  /** Tokens per second at the latency limit (a 4 KiB read costs `readCost`). */
  readonly tokensPerSec: number;
  readonly readCost: number;
  readonly writeCost: number;
  readonly latencyLimitUs: number;
}

/** Embedded until calibrated: generous enough not to hold a local SSD back, with ReFlex's read cost and a mid write cost. */
export const DefaultDeviceModel: DeviceModel = { tokensPerSec: 40e6, readCost: 100, writeCost: 1000, latencyLimitUs: 1000 };

export interface EngineOptions {
  /** A block device or a regular file (created and preallocated to `sizeBytes` when given). */
  readonly path: string;
  readonly sizeBytes?: number;
  readonly queueDepth?: number;
  readonly sqpoll?: boolean;
  /** Requests queued in the engine at most; past it, submissions fail with EBUSY. */
  readonly submitQueueMax?: number;
  /**
   * Microseconds a thread polls before it sleeps (default 0: never; above 0 the engine gets a thread
   * of its own, and `thread: false` with it is refused): the engine thread when idle or waiting for
   * the device, and the JavaScript thread, while requests are out and its event loop has nothing
   * else to run, for completions (so they need no wake-up to reach it). Polling pays where the
   * device answers in a few microseconds and has cores of its own (bare-metal NVMe): 4 KiB reads
   * the device need not fetch ran at 0.4x fio without it and 0.9-1.0x with 50 on this 2-core VM. Where
   * a host emulates the disk it slows it (the spinning vCPU takes the host's CPU from the I/O): reads
   * of written blocks at queue depth 1 took 60 µs at 0 and 88 µs at 50 (p50, engine alone), and 52-53K
   * against 43-46K IOPS from JavaScript at depth 32.
   */
  readonly spinUs?: number;
  /** Registered I/O buffers: requests up to `poolBufferBytes` (default 64 KiB) use one instead of an allocation; count default 2 × queueDepth. */
  readonly poolBuffers?: number;
  readonly poolBufferBytes?: number;
  readonly model?: DeviceModel;
  /**
   * Run the engine on a thread of its own (default: only when `spinUs` is
   * above 0, since polling needs a thread; otherwise on the JavaScript
   * thread, which submits to the ring itself and reaps when the ring's
   * eventfd is readable, so a round trip costs one wake-up, not two).
   */
  readonly thread?: boolean;
}

export interface Slo {
  readonly iops: number;
  readonly readRatio: number;
  readonly p95Us: number;
}

interface NativeBatch {
  /** Per completion: id, result (bytes or -errno), latency (ns), offset of a read's bytes in `data` or -1. */
  readonly records: Float64Array;
  /** The bytes of the reads that were held in pool buffers, one after the other (copied once, natively). */
  readonly data?: ArrayBuffer;
  /** A read in memory of its own: that memory as a Buffer (no copy). Absent when there is none. */
  readonly buffers?: Array<Buffer | undefined>;
}

interface NativeEngine {
  submit(n: number, ids: Float64Array, tenants: Uint32Array, offsets: Float64Array, lengths: Uint32Array, ops: Uint8Array, writes: Array<Uint8Array | undefined>, rcs: Int32Array): void;
  addLatencyCritical(tenant: number, iops: number, readRatio: number, p95Us: number): string | undefined;
  addBestEffort(tenant: number): void;
  removeTenant(tenant: number): void;
  setMode(mode: "qos" | "fifo"): void;
  info(): { capacityBytes: number; queueDepth: number; sqpoll: boolean; fixedBuffers: boolean; completed: number; thread: boolean };
  close(): void;
  join(): void;
}

let addon: {
  Engine: new (options: object, onCompletions: (batch: NativeBatch | null) => void) => NativeEngine;
  crc32: (bytes: Uint8Array, previous: number) => number;
  crc32Accelerated: boolean;
} | undefined;

/** The built addon (`npm ci` builds it with node-gyp). */
function loadAddon(): NonNullable<typeof addon> {
  if (addon) return addon;
  const file = path.join(projectRoot(), "build", "Release", "pocket_nvme.node");
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: the NVMe engine is built by \`npm ci\` (needs liburing-dev: \`bash scripts/provision.sh liburing-dev\`, then \`npx node-gyp rebuild\`)`);
  addon = require(file) as NonNullable<typeof addon>;
  return addon;
}

const errnoNames: Record<number, string> = { 1: "EPERM", 2: "ENOENT", 5: "EIO", 12: "ENOMEM", 16: "EBUSY", 22: "EINVAL", 28: "ENOSPC", 108: "ESHUTDOWN", 125: "ECANCELED" };

/** How a request ended: bytes moved or -errno; `refused` when the engine did not take it. */
interface Done {
  readonly result: number;
  readonly refused: boolean;
  /** Why the submission itself failed, when it threw. */
  readonly message?: string;
  readonly buffer?: Buffer;
  readonly latencyNs: number;
}

/**
 * Requests gathered before one call into the engine: a batch goes in at the end of the microtask, or
 * as soon as this many have gathered, so the device works on the first of a burst while JavaScript
 * is still issuing the rest (4 KiB reads at queue depth 32: 8 against 32 or 256, alternated on this
 * machine, gave 480-716K against 259-505K IOPS).
 */
const BatchMax = 8;

const closedDone: Done = { result: -108, refused: true, latencyNs: 0 };

/**
 * The addon's CRC-32 (zlib's values, by carry-less multiplication), or
 * undefined where the addon is not built or the CPU lacks the instructions
 * (its table fallback would be slower than zlib; `unavailable` is told
 * why). For `accelerateCrc32`.
 *
 * @example
 *   const fast = nativeCrc32();
 *   if (fast) accelerateCrc32(fast);
 */
export function nativeCrc32(unavailable: (why: string) => void = () => undefined): ((bytes: Uint8Array, previous: number) => number) | undefined {
  let a: NonNullable<typeof addon>;
  try {
    a = loadAddon();
  } catch (e) {
    unavailable(e instanceof Error ? e.message : String(e));
    return undefined;
  }
  if (!a.crc32Accelerated) unavailable("this CPU has no carry-less multiplication (PCLMULQDQ)");
  return a.crc32Accelerated ? a.crc32 : undefined;
}

/**
 * One device, driven by the native engine (io_uring, O_DIRECT, QoS
 * scheduling) on the JavaScript thread: a batch is submitted to the ring in
 * the call that hands it over, and completions are reaped when the ring's
 * eventfd wakes the event loop (`thread: true` runs the engine on a thread
 * of its own instead). Requests are promises; tenants are jobs (numbers here).
 *
 * @example
 *   const e = NvmeEngine.open({ path: "/var/tmp/pocket.img", sizeBytes: 1 << 30 });
 *   e.addBestEffort(1);
 *   await e.write(1, 0, Buffer.alloc(4096, 7));
 *   const back = await e.read(1, 0, 4096);
 *   await e.close();
 */
export class NvmeEngine {
  readonly #native: NativeEngine;
  readonly #pending = new Map<number, (d: Done) => void>();
  // The batch being gathered (column arrays handed to the engine as they are).
  readonly #ids = new Float64Array(BatchMax);
  readonly #tenants = new Uint32Array(BatchMax);
  readonly #offsets = new Float64Array(BatchMax);
  readonly #lengths = new Uint32Array(BatchMax);
  readonly #ops = new Uint8Array(BatchMax);
  readonly #writes: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(BatchMax).fill(undefined);
  readonly #rcs = new Int32Array(BatchMax);
  #queued = 0;
  #flushQueued = false;
  readonly #flushTask = (): void => { this.#flushQueued = false; this.#flush(); };
  #nextId = 1;
  #closed = false;
  #closing: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;
  readonly capacityBytes: number;
  readonly queueDepth: number;
  readonly sqpoll: boolean;
  /** The engine runs on a thread of its own (else on the JavaScript thread). */
  readonly thread: boolean;
  /** The pool buffers are registered with io_uring (the kernel does not pin pages per request). */
  readonly fixedBuffers: boolean;
  /** The device model the scheduler runs by. */
  readonly model: DeviceModel;

  private constructor(options: EngineOptions) {
    const model = options.model ?? DefaultDeviceModel;
    checkModel(model);
    this.model = model;
    const Engine = loadAddon().Engine;
    try {
      this.#native = new Engine({
        path: options.path, sizeBytes: options.sizeBytes ?? 0, queueDepth: options.queueDepth ?? 128, sqpoll: options.sqpoll ?? false,
        submitQueueMax: options.submitQueueMax ?? 8192, spinUs: options.spinUs ?? 0,
        poolBuffers: options.poolBuffers ?? 0, poolBufferBytes: options.poolBufferBytes ?? 64 * 1024, thread: options.thread ?? (options.spinUs ?? 0) > 0, ...model,
      }, (batch) => this.#complete(batch));
    } catch (e) {
      const n = e as { errno?: number; syscall?: string; message?: string };
      throw new NativeIoError(n.message ?? String(e), errnoNames[n.errno ?? 0] ?? `errno ${n.errno}`, n.errno ?? 0, n.syscall ?? "open");
    }
    const info = this.#native.info();
    this.fixedBuffers = info.fixedBuffers;
    this.capacityBytes = info.capacityBytes;
    this.queueDepth = info.queueDepth;
    this.sqpoll = info.sqpoll;
    this.thread = info.thread;
  }

  static open(options: EngineOptions): NvmeEngine {
    if (typeof options.path !== "string" || options.path.length === 0) throw new RangeError("path is required");
    if (options.spinUs !== undefined && !(Number.isInteger(options.spinUs) && options.spinUs >= 0 && options.spinUs <= 1_000_000)) {
      throw new RangeError("spinUs must be 0..1000000");
    }
    if ((options.spinUs ?? 0) > 0 && options.thread === false) throw new RangeError("spinUs polls on the engine's own thread: it cannot go with thread: false");
    if (options.sizeBytes !== undefined && (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes < 0 || options.sizeBytes % BlockBytes !== 0)) {
      throw new RangeError(`sizeBytes must be a multiple of ${BlockBytes}`);
    }
    if (options.queueDepth !== undefined && !(Number.isInteger(options.queueDepth) && options.queueDepth >= 1 && options.queueDepth <= 4096)) {
      throw new RangeError("queueDepth must be 1..4096");
    }
    if (options.poolBufferBytes !== undefined && !(Number.isInteger(options.poolBufferBytes) && options.poolBufferBytes >= BlockBytes && options.poolBufferBytes <= RequestBytesMax && options.poolBufferBytes % BlockBytes === 0)) {
      throw new RangeError(`poolBufferBytes must be a multiple of ${BlockBytes} up to ${RequestBytesMax}`);
    }
    if (options.poolBuffers !== undefined && !(Number.isInteger(options.poolBuffers) && options.poolBuffers >= 1 && options.poolBuffers <= 65536)) {
      throw new RangeError("poolBuffers must be 1..65536");
    }
    return new NvmeEngine(options);
  }

  get closed(): boolean { return this.#closed; }
  get inflight(): number { return this.#pending.size; }

  /** A latency-critical tenant with its SLO; throws (with the reason) when admission control refuses it. */
  addLatencyCritical(tenant: number, slo: Slo): void {
    this.#checkOpen("addLatencyCritical");
    checkTenant(tenant);
    const why = this.#native.addLatencyCritical(tenant, slo.iops, slo.readRatio, slo.p95Us);
    if (why !== undefined) throw new NativeIoError(`reservation refused: ${why}`, "EADMISSION", 0, "addLatencyCritical");
  }

  addBestEffort(tenant: number): void {
    this.#checkOpen("addBestEffort");
    checkTenant(tenant);
    this.#native.addBestEffort(tenant);
  }

  /** Drops a tenant; its queued requests fail with ECANCELED. */
  removeTenant(tenant: number): void {
    this.#checkOpen("removeTenant");
    this.#native.removeTenant(tenant);
  }

  /** "fifo" turns the QoS scheduler off (for comparison). */
  setMode(mode: "qos" | "fifo"): void {
    this.#checkOpen("setMode");
    this.#native.setMode(mode);
  }

  /**
   * Reads `length` bytes at `offset` (both multiples of 4 KiB) into a new
   * Buffer. Arguments are checked before anything is queued (RangeError);
   * device and engine errors reject with a NativeIoError whose stack runs
   * through the caller (created after the await, so V8's async stack
   * trace carries it: no stack is captured for requests that succeed).
   */
  read(tenant: number, offset: number, length: number): Promise<Buffer> {
    this.#checkRange("read", offset, length);
    return this.#read(tenant, offset, length);
  }

  /** Like `read`, with the device latency the engine measured (submission to completion). */
  readTimed(tenant: number, offset: number, length: number): Promise<{ buffer: Buffer; latencyNs: number }> {
    this.#checkRange("read", offset, length);
    return this.#readTimed(tenant, offset, length);
  }

  /**
   * Writes `bytes` at `offset`. `length` (default: the bytes' length) is
   * what goes to the device, a multiple of 4 KiB; bytes short of it are
   * followed by zeros (so callers need not pad: the engine copies once
   * into aligned memory anyway).
   */
  async write(tenant: number, offset: number, bytes: Uint8Array, length?: number): Promise<void> {
    await this.writeTimed(tenant, offset, bytes, length);
  }

  writeTimed(tenant: number, offset: number, bytes: Uint8Array, length?: number): Promise<{ latencyNs: number }> {
    if (!(bytes instanceof Uint8Array)) return Promise.reject(new TypeError("bytes must be a Buffer or Uint8Array"));
    const n = length ?? bytes.byteLength;
    try {
      this.#checkRange("write", offset, n);
      if (bytes.byteLength > n) throw new RangeError(`write: ${bytes.byteLength} bytes do not fit in length ${n}`);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#write(tenant, offset, bytes, n);
  }

  async #read(tenant: number, offset: number, length: number): Promise<Buffer> {
    const d = await this.#enqueue(tenant, 0, offset, length, undefined);
    if (d.result !== length) throw readError(d, offset, length);
    return d.buffer!;
  }

  async #readTimed(tenant: number, offset: number, length: number): Promise<{ buffer: Buffer; latencyNs: number }> {
    const d = await this.#enqueue(tenant, 0, offset, length, undefined);
    if (d.result !== length) throw readError(d, offset, length);
    return { buffer: d.buffer!, latencyNs: d.latencyNs };
  }

  async #write(tenant: number, offset: number, bytes: Uint8Array, length: number): Promise<{ latencyNs: number }> {
    const d = await this.#enqueue(tenant, 1, offset, length, bytes);
    if (d.result < 0) throw ioError("write", d);
    if (d.result !== length) throw ioError("write", { ...d, result: -5 }, `short write: ${d.result} of ${length} bytes at ${offset}`);
    return { latencyNs: d.latencyNs };
  }

  /** Stops: queued requests fail with ECANCELED, in-flight ones finish; resolves when the engine thread has ended. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#flush();  // what was gathered goes in, to be cancelled or finished like the rest
    this.#closed = true;
    this.#closing = new Promise<void>((resolve) => { this.#onClosed = resolve; });
    this.#native.close();
    return this.#closing;
  }

  /** Adds a request to the batch being gathered; the batch goes to the engine at the end of this microtask (or when full). */
  #enqueue(tenant: number, op: 0 | 1, offset: number, length: number, bytes: Uint8Array | undefined): Promise<Done> {
    if (this.#closed) return Promise.resolve(closedDone);
    const id = this.#nextId++;
    const i = this.#queued++;
    this.#ids[i] = id;
    this.#tenants[i] = tenant >>> 0 === tenant ? tenant : 0xffffffff;
    this.#offsets[i] = offset;
    this.#lengths[i] = length;
    this.#ops[i] = op;
    this.#writes[i] = bytes;
    const done = new Promise<Done>((resolve) => this.#pending.set(id, resolve));
    if (this.#queued === BatchMax) this.#flush();
    else if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushTask);
    }
    return done;
  }

  #flush(): void {
    const n = this.#queued;
    if (n === 0) return;
    this.#queued = 0;
    let failure: string | undefined;
    try {
      this.#native.submit(n, this.#ids, this.#tenants, this.#offsets, this.#lengths, this.#ops, this.#writes, this.#rcs);
    } catch (e) {
      // Not one of the batch was taken: each request fails with the reason (nothing is left waiting).
      this.#rcs.fill(-5, 0, n);
      failure = e instanceof Error ? e.message : String(e);
    }
    for (let i = 0; i < n; i++) {
      this.#writes[i] = undefined;
      const rc = this.#rcs[i]!;
      if (rc === 0) continue;
      const id = this.#ids[i]!;
      const resolve = this.#pending.get(id);
      this.#pending.delete(id);
      resolve?.({ result: rc, refused: true, latencyNs: 0, message: failure });
    }
  }

  #complete(batch: NativeBatch | null): void {
    if (batch === null) {
      this.#native.join();
      const cancelled: Done = { result: -125, refused: false, latencyNs: 0 };
      for (const resolve of this.#pending.values()) resolve(cancelled);
      this.#pending.clear();
      this.#onClosed?.();
      return;
    }
    const { records, data, buffers } = batch;
    for (let i = 0, k = 0; k < records.length; i++, k += 4) {
      const id = records[k]!;
      const resolve = this.#pending.get(id);
      if (!resolve) continue;
      this.#pending.delete(id);
      const result = records[k + 1]!;
      const at = records[k + 3]!;
      const buffer = at >= 0 ? Buffer.from(data!, at, result) : buffers?.[i];
      resolve({ result, refused: false, buffer, latencyNs: records[k + 2]! });
    }
  }

  #checkOpen(operation: string): void {
    if (this.#closed) throw new NativeIoError("the engine is closed", "ESHUTDOWN", 108, operation);
  }

  #checkRange(operation: string, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % BlockBytes !== 0) throw new RangeError(`${operation}: offset ${offset} is not a non-negative multiple of ${BlockBytes}`);
    if (!Number.isSafeInteger(length) || length <= 0 || length % BlockBytes !== 0) throw new RangeError(`${operation}: length ${length} is not a positive multiple of ${BlockBytes}`);
    if (length > RequestBytesMax) throw new RangeError(`${operation}: length ${length} exceeds ${RequestBytesMax}`);
    if (offset + length > this.capacityBytes) throw new RangeError(`${operation}: ${offset}+${length} is past the end of the device (${this.capacityBytes} bytes)`);
  }
}

function checkTenant(tenant: number): void {
  if (!Number.isInteger(tenant) || tenant < 0 || tenant >= 0xffffffff) throw new RangeError(`tenant ${tenant} must be an integer 0..2^32-2`);
}

function checkModel(m: DeviceModel): void {
  if (!(m.tokensPerSec > 0 && m.readCost > 0 && m.writeCost > 0 && m.latencyLimitUs > 0)) throw new RangeError("device model: every field must be positive");
}

const refusals: Record<number, string> = {
  16: "the engine's queue is full",
  2: "unknown tenant (add it first)",
  108: "the engine is closed",
  12: "out of memory for the request's buffer",
};

function readError(d: Done, offset: number, length: number): NativeIoError {
  return d.result < 0 ? ioError("read", d) : ioError("read", { ...d, result: -5 }, `short read: ${d.result} of ${length} bytes at ${offset}`);
}

/** The typed error for a request that ended with -errno (thrown inside the async request, so its stack is the caller's). */
function ioError(operation: string, d: Done, message?: string): NativeIoError {
  const errno = -d.result;
  const code = errnoNames[errno] ?? `errno ${errno}`;
  const why = message ?? d.message ?? (d.refused ? refusals[errno] ?? "submission refused"
    : errno === 125 ? "cancelled: the engine is closing or the tenant was removed" : "I/O failed");
  return new NativeIoError(`${operation}: ${why} (${code})`, code, errno, operation);
}
