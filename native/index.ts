import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../deploy/actor-process";

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
  /** Microseconds the engine thread polls before sleeping when idle or waiting (default 50; 0 never spins). */
  readonly spinUs?: number;
  readonly model?: DeviceModel;
}

export interface Slo {
  readonly iops: number;
  readonly readRatio: number;
  readonly p95Us: number;
}

interface NativeBatch {
  readonly ids: Float64Array;
  readonly results: Int32Array;
  readonly latencies: Float64Array;
  readonly buffers: Array<Buffer | undefined>;
}

interface NativeEngine {
  read(id: number, tenant: number, offset: number, length: number): number;
  write(id: number, tenant: number, offset: number, bytes: Uint8Array): number;
  addLatencyCritical(tenant: number, iops: number, readRatio: number, p95Us: number): string | undefined;
  addBestEffort(tenant: number): void;
  removeTenant(tenant: number): void;
  setMode(mode: "qos" | "fifo"): void;
  info(): { capacityBytes: number; queueDepth: number; sqpoll: boolean; completed: number };
  close(): void;
  join(): void;
}

let addon: { Engine: new (options: object, onCompletions: (batch: NativeBatch | null) => void) => NativeEngine } | undefined;

/** The built addon (`npm ci` builds it with node-gyp). */
function loadAddon(): NonNullable<typeof addon> {
  if (addon) return addon;
  const file = path.join(projectRoot(), "build", "Release", "pocket_nvme.node");
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: the NVMe engine is built by \`npm ci\` (needs liburing-dev: \`bash scripts/provision.sh liburing-dev\`, then \`npx node-gyp rebuild\`)`);
  addon = require(file) as NonNullable<typeof addon>;
  return addon;
}

const errnoNames: Record<number, string> = { 1: "EPERM", 2: "ENOENT", 5: "EIO", 12: "ENOMEM", 16: "EBUSY", 22: "EINVAL", 28: "ENOSPC", 108: "ESHUTDOWN", 125: "ECANCELED" };

interface Pending {
  resolve(v: { bytes: number; buffer?: Buffer; latencyNs: number }): void;
  reject(e: Error): void;
  readonly error: NativeIoError;
  readonly length: number;
}

/**
 * One device, driven by the native engine's own thread (io_uring, O_DIRECT,
 * QoS scheduling). Requests are promises; tenants are jobs (numbers here).
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
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  #closing: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;
  readonly capacityBytes: number;
  readonly queueDepth: number;
  readonly sqpoll: boolean;
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
        submitQueueMax: options.submitQueueMax ?? 8192, spinUs: options.spinUs ?? 50, ...model,
      }, (batch) => this.#complete(batch));
    } catch (e) {
      const n = e as { errno?: number; syscall?: string; message?: string };
      throw new NativeIoError(n.message ?? String(e), errnoNames[n.errno ?? 0] ?? `errno ${n.errno}`, n.errno ?? 0, n.syscall ?? "open");
    }
    const info = this.#native.info();
    this.capacityBytes = info.capacityBytes;
    this.queueDepth = info.queueDepth;
    this.sqpoll = info.sqpoll;
  }

  static open(options: EngineOptions): NvmeEngine {
    if (typeof options.path !== "string" || options.path.length === 0) throw new RangeError("path is required");
    if (options.sizeBytes !== undefined && (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes < 0 || options.sizeBytes % BlockBytes !== 0)) {
      throw new RangeError(`sizeBytes must be a multiple of ${BlockBytes}`);
    }
    if (options.queueDepth !== undefined && !(Number.isInteger(options.queueDepth) && options.queueDepth >= 1 && options.queueDepth <= 4096)) {
      throw new RangeError("queueDepth must be 1..4096");
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

  /** Reads `length` bytes at `offset` (both multiples of 4 KiB) into a new Buffer (no copy from the engine). */
  read(tenant: number, offset: number, length: number): Promise<Buffer> {
    const error = new NativeIoError("", "", 0, "read");
    this.#checkRange("read", offset, length);
    return this.#submit(error, length, (id) => this.#native.read(id, tenant, offset, length)).then((r) => {
      if (r.bytes !== length) throw fill(error, 5, `short read: ${r.bytes} of ${length} bytes at ${offset}`);
      return r.buffer!;
    });
  }

  /** Like `read`, with the device latency the engine measured (submission to completion). */
  async readTimed(tenant: number, offset: number, length: number): Promise<{ buffer: Buffer; latencyNs: number }> {
    const error = new NativeIoError("", "", 0, "read");
    this.#checkRange("read", offset, length);
    const r = await this.#submit(error, length, (id) => this.#native.read(id, tenant, offset, length));
    return { buffer: r.buffer!, latencyNs: r.latencyNs };
  }

  /** Writes `bytes` (a multiple of 4 KiB long) at `offset`. */
  async write(tenant: number, offset: number, bytes: Uint8Array): Promise<void> {
    await this.writeTimed(tenant, offset, bytes);
  }

  async writeTimed(tenant: number, offset: number, bytes: Uint8Array): Promise<{ latencyNs: number }> {
    const error = new NativeIoError("", "", 0, "write");
    if (!(bytes instanceof Uint8Array)) throw new TypeError("bytes must be a Buffer or Uint8Array");
    this.#checkRange("write", offset, bytes.byteLength);
    const r = await this.#submit(error, bytes.byteLength, (id) => this.#native.write(id, tenant, offset, bytes));
    if (r.bytes !== bytes.byteLength) throw fill(error, 5, `short write: ${r.bytes} of ${bytes.byteLength} bytes at ${offset}`);
    return { latencyNs: r.latencyNs };
  }

  /** Stops: queued requests fail with ECANCELED, in-flight ones finish; resolves when the engine thread has ended. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = new Promise<void>((resolve) => { this.#onClosed = resolve; });
    this.#native.close();
    return this.#closing;
  }

  #submit(error: NativeIoError, length: number, call: (id: number) => number): Promise<{ bytes: number; buffer?: Buffer; latencyNs: number }> {
    if (this.#closed) return Promise.reject(fill(error, 108, "the engine is closed"));
    const id = this.#nextId++;
    const rc = call(id);
    if (rc !== 0) {
      const why = rc === -16 ? "the engine's queue is full" : rc === -2 ? "unknown tenant (add it first)" : rc === -108 ? "the engine is closed" : "submission refused";
      return Promise.reject(fill(error, -rc, why));
    }
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject, error, length }));
  }

  #complete(batch: NativeBatch | null): void {
    if (batch === null) {
      this.#native.join();
      for (const p of this.#pending.values()) p.reject(fill(p.error, 125, "the engine closed"));
      this.#pending.clear();
      this.#onClosed?.();
      return;
    }
    for (let i = 0; i < batch.ids.length; i++) {
      const id = batch.ids[i]!;
      const p = this.#pending.get(id);
      if (!p) continue;
      this.#pending.delete(id);
      const result = batch.results[i]!;
      if (result < 0) {
        p.reject(fill(p.error, -result, -result === 125 ? "cancelled: the engine is closing or the tenant was removed" : "I/O failed"));
      } else {
        p.resolve({ bytes: result, buffer: batch.buffers[i], latencyNs: batch.latencies[i]! });
      }
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

/** Fills the error created at the call (so its stack is the caller's). */
function fill(e: NativeIoError, errno: number, message: string): NativeIoError {
  const code = errnoNames[errno] ?? `errno ${errno}`;
  Object.defineProperty(e, "code", { value: code });
  Object.defineProperty(e, "errno", { value: errno });
  e.message = `${e.operation}: ${message} (${code})`;
  return e;
}
