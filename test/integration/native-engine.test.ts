import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { crc32 as zlibCrc32 } from "node:zlib";
import { NativeIoError, NvmeEngine, nativeCrc32 } from "../../native";
import { accelerateCrc32, crc32 } from "../../lib/checksum";
import { NvmeStore } from "../../actors/storage/nvme-store";
import { readDeviceModel } from "../../native/calibrate";
import { projectRoot } from "../../lib/process";
import { patternBytes } from "../harness/cluster";
import { within } from "../harness/wait";

const MiB = 2 ** 20;
// O_DIRECT needs a file system that supports it (not tmpfs): /var/tmp by default.
const dir = fs.mkdtempSync(path.join(process.env["POCKET_TEST_DIR"] ?? "/var/tmp", "pocket-nvme-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test("the engine's C++ tests pass under AddressSanitizer and UndefinedBehaviorSanitizer", () => {
  const r = spawnSync("bash", [path.join(projectRoot(), "scripts", "native-test.sh"), "--asan"], { encoding: "utf8", timeout: 240_000, env: { ...process.env, POCKET_TEST_DIR: dir } });
  expect(r.stderr).not.toMatch(/ERROR: AddressSanitizer|runtime error:|FAIL/);
  expect(r.stdout).toContain("scheduler: all checks passed");
  expect(r.stdout).toContain("engine: all checks passed");
  expect(r.status).toBe(0);
}, 300_000);

// The engine on the JavaScript thread (the default) and on a thread of its own.
const modes = [{ mode: "on the JavaScript thread", thread: false }, { mode: "on its own thread", thread: true }];

test.each(modes)("random offsets and sizes from several tenants at once come back byte-exact, the engine $mode", async ({ thread }) => {
  const e = NvmeEngine.open({ path: path.join(dir, `integrity-${thread}.img`), sizeBytes: 64 * MiB, queueDepth: 32, thread });
  try {
    e.addBestEffort(1);
    e.addBestEffort(2);
    e.addLatencyCritical(3, { iops: 20_000, readRatio: 0.5, p95Us: 2_000 });
    let seed = 7;
    const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
    // 256 slots of 256 KiB; each write a random 4 KiB multiple up to 256 KiB, from a random tenant.
    const writes = Array.from({ length: 256 }, (_, i) => ({ offset: i * 256 * 1024, data: patternBytes(4096 * (1 + rand(64)), 100 + i), tenant: 1 + rand(3) }));
    await Promise.all(writes.map((w) => e.write(w.tenant, w.offset, w.data)));
    const reads = await Promise.all(writes.map((w) => e.read(1 + rand(3), w.offset, w.data.byteLength)));
    reads.forEach((b, i) => expect(b.equals(writes[i]!.data)).toBe(true));
    // Overwrites of part of a slot, then a read across old and new.
    await e.write(2, writes[5]!.offset, Buffer.alloc(4096, 0xab));
    const mixed = await e.read(3, writes[5]!.offset, 8192);
    expect(mixed.subarray(0, 4096).equals(Buffer.alloc(4096, 0xab))).toBe(true);
    if (writes[5]!.data.byteLength >= 8192) expect(mixed.subarray(4096).equals(writes[5]!.data.subarray(4096, 8192))).toBe(true);
  } finally {
    await e.close();
  }
}, 60_000);

test("more requests than pool buffers, tails zero-filled, one refusal in a batch: the rest are unaffected", async () => {
  // 4 pool buffers of 8 KiB: most of these requests take memory of their own, some a pool slot, some are too big for one.
  const e = NvmeEngine.open({ path: path.join(dir, "pool.img"), sizeBytes: 16 * MiB, queueDepth: 16, poolBuffers: 4, poolBufferBytes: 8192 });
  try {
    e.addBestEffort(1);
    const sizes = Array.from({ length: 200 }, (_, i) => 4096 * (1 + (i % 5)));
    const data = sizes.map((n, i) => patternBytes(n, 900 + i));
    await Promise.all(data.map((d, i) => e.write(1, i * 32 * 1024, d)));
    const back = await Promise.all(data.map((d, i) => e.read(1, i * 32 * 1024, d.byteLength)));
    expect(back.filter((b, i) => !b.equals(data[i]!)).length).toBe(0);
    // Bytes short of the length: the device gets zeros after them (no caller-side padding).
    await e.write(1, 0, Buffer.alloc(5000, 0x7e), 8192);
    const padded = await e.read(1, 0, 8192);
    expect(padded.subarray(0, 5000).equals(Buffer.alloc(5000, 0x7e))).toBe(true);
    expect(padded.subarray(5000).equals(Buffer.alloc(8192 - 5000))).toBe(true);
    await expect(e.write(1, 0, Buffer.alloc(9000), 8192)).rejects.toThrow(RangeError);
    // Gathered into one submission: only the unknown tenant's request fails.
    const mixed = await Promise.allSettled([e.read(1, 0, 4096), e.read(77, 0, 4096), e.read(1, 4096, 4096)]);
    expect(mixed.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((mixed[1] as PromiseRejectedResult).reason).toMatchObject({ name: "NativeIoError", code: "ENOENT", operation: "read" });
  } finally {
    await e.close();
  }
});

test("an engine error's stack runs through the caller (no stack is captured for requests that succeed)", async () => {
  const e = NvmeEngine.open({ path: path.join(dir, "stack.img"), sizeBytes: 4 * MiB });
  e.addBestEffort(1);
  async function readerOfUnknownTenant(): Promise<unknown> {
    return await e.read(55, 0, 4096);
  }
  const err = await readerOfUnknownTenant().catch((x: unknown) => x);
  expect(err).toBeInstanceOf(NativeIoError);
  expect((err as NativeIoError).stack).toContain("readerOfUnknownTenant");
  await e.close();
  async function readerAfterClose(): Promise<unknown> {
    return await e.read(1, 0, 4096);
  }
  const closed = await readerAfterClose().catch((x: unknown) => x);
  expect(closed).toMatchObject({ code: "ESHUTDOWN" });
  expect((closed as Error).stack).toContain("readerAfterClose");
});

test("bad arguments and states are typed errors; nothing crashes or hangs", async () => {
  expect(() => NvmeEngine.open({ path: path.join(dir, "no", "such", "dir", "x.img"), sizeBytes: MiB })).toThrow(NativeIoError);
  try {
    NvmeEngine.open({ path: path.join(dir, "no", "x.img"), sizeBytes: MiB });
  } catch (err) {
    expect((err as NativeIoError).code).toBe("ENOENT");
  }
  expect(() => NvmeEngine.open({ path: path.join(dir, "odd.img"), sizeBytes: 1000 })).toThrow(RangeError);
  expect(() => NvmeEngine.open({ path: path.join(dir, "spin.img"), sizeBytes: MiB, spinUs: 10, thread: false })).toThrow(/cannot go with thread: false/);
  // A slow device model and a reservation (so best-effort is metered): a burst waits in the queue, whatever the device's speed.
  const e = NvmeEngine.open({ path: path.join(dir, "args.img"), sizeBytes: 4 * MiB, submitQueueMax: 64, model: { tokensPerSec: 2e5, readCost: 100, writeCost: 1000, latencyLimitUs: 1000 } });
  e.addLatencyCritical(3, { iops: 10, readRatio: 1, p95Us: 1000 });
  e.addBestEffort(1);
  expect(() => e.read(1, 100, 4096)).toThrow(/offset 100/);
  expect(() => e.read(1, 0, 1000)).toThrow(/length 1000/);
  expect(() => e.read(1, 4 * MiB - 4096, 8192)).toThrow(/past the end/);
  await expect(e.write(1, 0, Buffer.alloc(100))).rejects.toThrow(/length 100/);
  await expect(e.read(42, 0, 4096)).rejects.toMatchObject({ name: "NativeIoError", code: "ENOENT" });
  expect(() => e.addLatencyCritical(2, { iops: 1e9, readRatio: 1, p95Us: 2_000 })).toThrow(/reservation refused: .*does not fit/);
  expect(() => e.addLatencyCritical(2, { iops: 10, readRatio: 1, p95Us: 10 })).toThrow(/cannot promise/);
  // A burst past the queue bound: the excess is refused at once, the rest completes.
  const burst = await Promise.allSettled(Array.from({ length: 500 }, (_, i) => e.read(1, (i % 1024) * 4096, 4096)));
  const refused = burst.filter((r) => r.status === "rejected");
  expect(refused.length).toBeGreaterThan(0);
  for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: "EBUSY" });
  expect(burst.filter((r) => r.status === "fulfilled").length).toBeGreaterThan(0);
  await e.close();
  await expect(e.read(1, 0, 4096)).rejects.toMatchObject({ code: "ESHUTDOWN" });
  expect(() => e.addBestEffort(3)).toThrow(NativeIoError);
  await e.close(); // again: harmless
});

test.each(modes)("closing with requests queued and in flight settles every one of them, the engine $mode", async ({ thread }) => {
  const e = NvmeEngine.open({
    path: path.join(dir, `close-${thread}.img`), sizeBytes: 8 * MiB, queueDepth: 4, thread,
    // A slow device model and a reservation (so best-effort is metered): most requests wait in the scheduler when the engine closes.
    model: { tokensPerSec: 2e5, readCost: 100, writeCost: 1000, latencyLimitUs: 1000 },
  });
  e.addLatencyCritical(2, { iops: 10, readRatio: 1, p95Us: 1000 });
  e.addBestEffort(1);
  let firstDone: (() => void) | undefined;
  const started = new Promise<void>((resolve) => { firstDone = resolve; });
  const all = Array.from({ length: 1000 }, (_, i) => e.read(1, (i % 2048) * 4096, 4096).then(
    () => { firstDone?.(); return "ok"; },
    (err: NativeIoError) => err.code,
  ));
  // Closed once the engine is serving them: the first read is back, the rest are queued or in flight.
  await within(started, 10_000, "the first read of 1000");
  expect(e.inflight).toBeGreaterThan(0);
  await e.close();
  const results = await within(Promise.all(all), 10_000, "every request settled after close");
  expect(results.filter((r) => r === "ok").length + results.filter((r) => r === "ECANCELED").length).toBe(1000);
  expect(results.filter((r) => r === "ECANCELED").length).toBeGreaterThan(0);
  expect(e.inflight).toBe(0);
});

test("a node's NVMe store runs the engine on the JavaScript thread, and on a polling thread of its own when spinUs is set: byte-exact either way", async () => {
  for (const spinUs of [0, 20]) {
    const store = NvmeStore.open({ path: path.join(dir, `store-${spinUs}.img`), sizeBytes: 8 * MiB, spinUs });
    try {
      expect(store.engine.thread).toBe(spinUs > 0);
      const bytes = patternBytes(3 * 4096 + 123, spinUs + 1);
      await store.write("job-a", "e1", bytes);
      const back = await store.read("job-a", "e1", 0, undefined);
      expect(Buffer.compare(Buffer.from(back.bytes), bytes)).toBe(0);
      back.release?.();
    } finally {
      await store.close();
    }
  }
});

test("a worker thread that ends with reads in flight takes its engine with it: no crash, no hang, the process goes on", () => {
  // Each worker keeps 32 reads in flight on an engine it never closes and is terminated mid-stream: the
  // engine on its own thread with the JavaScript thread's completion poll on and off, and on the
  // JavaScript thread, where teardown waits out the reads in flight. Before the teardown hook, this aborted
  // (a C++ exception out of a thread-safe call; an error object made while terminating) or hung (the
  // mailbox used after the thread-safe function's finalizer had deleted it).
  const file = path.join(dir, "worker.img");
  const engine = path.join(projectRoot(), "dist", "native", "index.js");
  const worker = `
    const { parentPort, workerData } = require("node:worker_threads");
    const { NvmeEngine } = require(${JSON.stringify(engine)});
    const e = NvmeEngine.open({ path: ${JSON.stringify(file)}, sizeBytes: ${8 * MiB}, queueDepth: 32, spinUs: workerData.spinUs, thread: workerData.thread });
    e.addBestEffort(1);
    let rounds = 0;
    (async () => {
      for (;;) {
        await Promise.all(Array.from({ length: 32 }, (_, i) => e.read(1, i * 4096, 4096)));
        if (++rounds === 20) parentPort.postMessage("busy");
      }
    })();`;
  const parent = `
    const { Worker } = require("node:worker_threads");
    (async () => {
      for (let i = 0; i < 8; i++) {
        const w = new Worker(${JSON.stringify(worker)}, { eval: true, workerData: { spinUs: i % 4 === 0 ? 50 : 0, thread: i % 4 < 2 } });
        await new Promise((resolve, reject) => { w.once("message", resolve); w.once("error", reject); });
        await w.terminate();
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      console.log("8 workers ended");
    })();`;
  const r = spawnSync(process.execPath, ["-e", parent], { encoding: "utf8", timeout: 60_000 });
  expect(r.stderr).toBe("");
  expect(r.signal).toBeNull();
  expect(r.status).toBe(0);
  expect(r.stdout).toContain("8 workers ended");
}, 90_000);

test("the native CRC-32 gives zlib's values for any length, view offset and starting crc; crc32 takes it from 256 bytes once installed", () => {
  const fast = nativeCrc32();
  expect(fast).toBeDefined();  // this project's machines have carry-less multiplication
  const big = Buffer.alloc(3 * MiB + 77);
  let x = 0x9e3779b9;
  for (let i = 0; i < big.length; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; big[i] = x & 0xff; }
  const lengths = [0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 4096, 4097, 65_536 + 13, MiB, 3 * MiB];
  for (const length of lengths) {
    for (const offset of [0, 1, 7, 16, 61]) {
      for (const previous of [0, 0xffffffff, 0x12345678]) {
        const view = big.subarray(offset, offset + length);
        expect([length, offset, previous, fast!(view, previous)]).toEqual([length, offset, previous, zlibCrc32(view, previous)]);
      }
    }
  }
  let calls = 0;
  accelerateCrc32((bytes, previous) => { calls++; return fast!(bytes, previous); });
  try {
    expect(crc32(big.subarray(5, 5 + 255), 3)).toBe(zlibCrc32(big.subarray(5, 5 + 255), 3));
    expect(calls).toBe(0);
    expect(crc32(big.subarray(5, 5 + MiB))).toBe(zlibCrc32(big.subarray(5, 5 + MiB)));
    expect(calls).toBe(1);
  } finally {
    accelerateCrc32(undefined);
  }
});

test("pocket calibrate measures latency against offered load and writes a device model nodes can load", () => {
  const out = path.join(dir, "model.json");
  const r = spawnSync(process.execPath, [path.join(projectRoot(), "dist", "cli", "pocket.js"), "calibrate", "--device", path.join(dir, "cal.img"), "--size", "64MiB", "--seconds", "0.2", "--out", out], { encoding: "utf8", timeout: 60_000 });
  expect(r.stderr).toMatch(/calibrate: read +offered +\d+ IOPS → +\d+ IOPS, p95 \d+ µs/);
  expect(r.stderr).toMatch(/calibrate: mixed/);
  expect(r.status).toBe(0);
  const model = JSON.parse(fs.readFileSync(out, "utf8")) as { tokensPerSec: number; readCost: number; writeCost: number; latencyLimitUs: number; points: unknown[] };
  expect(model.tokensPerSec).toBeGreaterThan(0);
  expect(model.readCost).toBe(100);
  expect(model.writeCost).toBeGreaterThanOrEqual(100);
  expect(model.latencyLimitUs).toBe(1000);
  expect(model.points.length).toBeGreaterThanOrEqual(2);
  // The model is what an engine schedules by.
  const e = NvmeEngine.open({ path: path.join(dir, "cal.img"), model: readDeviceModel(out) });
  expect(() => e.addLatencyCritical(1, { iops: model.tokensPerSec / 100 + 1, readRatio: 1, p95Us: 1000 })).toThrow(/does not fit/);
  return e.close();
}, 90_000);
