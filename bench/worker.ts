/**
 * A benchmark client process: one Pocket client, one Redis client (ioredis)
 * and one NATS KV client, each with one connection, running the work the
 * driver sends. Every read is compared with what was written; the counts go
 * back with each result.
 */
import { Redis } from "ioredis";
import { ShardOps, type ExtentRef } from "../schemas/operations";
import { PocketClient, type PocketJob } from "../client/pocket";
import { crc32, crc32Combine } from "../lib/checksum";
import { openKv } from "./kv";
import { natsKvStore, pocketStore, redisStore, type Store } from "./stores";
import { ReadCheck, StreamPattern, setSequence, valueFor } from "./values";
import type { FromWorker, System, ToWorker, Work, WorkerSetup, WorkResult } from "./work";

const setup = JSON.parse(process.env["POCKET_BENCH_SETUP"] ?? "null") as WorkerSetup | null;
if (!setup || !process.send) throw new Error("run by the benchmark driver");

function send(m: FromWorker): void {
  process.send!(m);
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The work of one kind. */
type WorkOf<K extends Work["kind"]> = Extract<Work, { kind: K }>;

const now = (): bigint => process.hrtime.bigint();

/** Seconds since `t0` (from `now()`), less `excludedNs`. */
function secondsSince(t0: bigint, excludedNs = 0n): number {
  return Number(now() - t0 - excludedNs) / 1e9;
}

/**
 * One request in flight on one key: `warmup` requests, then `count` timed
 * ones. Gets are compared with the value after their time is taken; puts
 * number their writes and the last one is read back.
 */
async function latencyWork(work: WorkOf<"latency">, store: Store, tag: string): Promise<WorkResult> {
  const key = `${tag}/lat/${work.size}`;
  const value = valueFor(key, work.size);
  await store.put(key, value);
  const stat = store.stat;
  if (work.op === "stat" && !stat) throw new Error(`${work.system} has no stat`);
  const check = new ReadCheck();
  const samples = new Float64Array(work.count);
  const total = work.warmup + work.count;
  let t0 = now();
  for (let i = 0; i < total; i++) {
    if (i === work.warmup) t0 = now();
    const s = now();
    let got: Uint8Array | undefined;
    let size = 0;
    if (work.op === "put") {
      setSequence(value, i + 1);
      await store.put(key, value);
    } else if (work.op === "get") got = await store.get(key);
    else size = await stat!(key);
    if (i >= work.warmup) samples[i - work.warmup] = Number(now() - s) / 1000;
    if (work.op === "get") check.compare(key, got, value);
    else if (work.op === "stat") check.result(key, size === work.size, `stat says ${size} bytes, expected ${work.size}`);
  }
  const seconds = secondsSince(t0);
  if (work.op === "put") check.compare(key, await store.get(key), valueFor(key, work.size, total));
  samples.sort();
  return { ops: work.count, bytes: work.count * work.size, seconds, p50Us: percentile(samples, 50), p99Us: percentile(samples, 99), ...check.counts };
}

/** `inflight` requests in flight, one key each, for `durationMs`: requests per second. */
async function opsWork(work: WorkOf<"ops">, store: Store, tag: string): Promise<WorkResult> {
  const keys = Array.from({ length: work.inflight }, (_, i) => `${tag}/ops/${i}`);
  const values = keys.map((k) => valueFor(k, work.size));
  for (let i = 0; i < keys.length; i++) await store.put(keys[i]!, values[i]!);
  const sequences = keys.map(() => 0);
  const check = new ReadCheck();
  let ops = 0;
  const end = Date.now() + work.durationMs;
  const t0 = now();
  // One lane per key, `inflight` of them: the bound is the work's own.
  await Promise.all(keys.map(async (k, i) => {
    const v = values[i]!;
    while (Date.now() < end) {
      if (work.op === "put") {
        setSequence(v, ++sequences[i]!);
        await store.put(k, v);
      } else check.compare(k, await store.get(k), v);
      ops++;
    }
  }));
  const seconds = secondsSince(t0);
  if (work.op === "put") for (let i = 0; i < keys.length; i++) check.compare(keys[i]!, await store.get(keys[i]!), valueFor(keys[i]!, work.size, sequences[i]));
  return { ops, bytes: ops * work.size, seconds, ...check.counts };
}

/** One request at a time over `keys` large objects for `durationMs`: bytes per second (comparing reads is not timed). */
async function throughputWork(work: WorkOf<"throughput">, store: Store, tag: string): Promise<WorkResult> {
  const keys = Array.from({ length: work.keys }, (_, i) => `${tag}/tp/${work.size}/${i}`);
  const values = keys.map((k) => valueFor(k, work.size));
  if (work.op === "get") for (let i = 0; i < keys.length; i++) await store.put(keys[i]!, values[i]!);
  const sequences = keys.map(() => 0);
  const check = new ReadCheck();
  let ops = 0;
  let checkNs = 0n;
  const end = Date.now() + work.durationMs;
  const t0 = now();
  while (Date.now() < end || ops < work.opsMin) {
    const i = ops % keys.length;
    if (work.op === "put") {
      setSequence(values[i]!, ++sequences[i]!);
      await store.put(keys[i]!, values[i]!);
    } else {
      const got = await store.get(keys[i]!);
      const c0 = now();
      check.compare(keys[i]!, got, values[i]!);
      checkNs += now() - c0;
    }
    ops++;
  }
  const seconds = secondsSince(t0, checkNs);
  if (work.op === "put") for (let i = 0; i < keys.length; i++) check.compare(keys[i]!, await store.get(keys[i]!), valueFor(keys[i]!, work.size, sequences[i]));
  return { ops, bytes: ops * work.size, seconds, ...check.counts };
}

/** The CRC-32 of an object from its extents' crcs, in order; undefined if one has none. */
function extentsCrc(extents: readonly ExtentRef[]): number | undefined {
  let crc = 0;
  for (const e of extents) {
    if (e.crc === undefined) return undefined;
    crc = crc32Combine(crc, e.crc, e.length);
  }
  return crc;
}

/** Lookups of one extent object on the job's shard, `inflight` pipelined, for `durationMs`; each layout is checked against the put. */
async function metadataWork(work: WorkOf<"metadata">, job: PocketJob, client: PocketClient, tag: string): Promise<WorkResult> {
  const key = `${tag}/meta`;
  const data = valueFor(key, 64 * 1024); // an extent object: a lookup returns its layout
  const { version } = await job.put(key, data);
  const crc = crc32(data);
  const check = new ReadCheck();
  let ops = 0;
  const end = Date.now() + work.durationMs;
  const t0 = now();
  await Promise.all(Array.from({ length: work.inflight }, async () => {
    while (Date.now() < end) {
      const r = (await client.callShard(job, ShardOps.objectLookup, { token: job.token, path: key })).reply;
      const ok = r.size === data.byteLength && r.version === version && extentsCrc(r.extents) === crc;
      check.result(key, ok, `layout of ${r.size} bytes, version ${r.version}, does not describe what was put`);
      ops++;
    }
  }));
  return { ops, bytes: 0, seconds: secondsSince(t0), ...check.counts };
}

/** Reads `pattern`'s object back as a stream, comparing every piece; returns the nanoseconds spent comparing. */
async function readPattern(job: PocketJob, key: string, pattern: StreamPattern, check: ReadCheck): Promise<bigint> {
  let got = 0;
  let checkNs = 0n;
  for await (const c of job.getStream(key)) {
    const piece = c as Buffer;
    const c0 = now();
    check.result(key, pattern.matches(piece, got), `${piece.byteLength} bytes at offset ${got} differ from what was written`);
    checkNs += now() - c0;
    got += piece.byteLength;
  }
  if (got !== pattern.size) check.result(key, false, `streamed ${got} bytes of ${pattern.size}`);
  return checkNs;
}

/** One object of `size` bytes streamed in and out, every piece read compared; the peak growth of this process's RSS meanwhile. */
async function streamWork(work: WorkOf<"stream">, job: PocketJob, tag: string): Promise<WorkResult> {
  const key = `${tag}/stream`;
  const pattern = new StreamPattern(key, work.size);
  const check = new ReadCheck();
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  try {
    const p0 = now();
    await job.putStream(key, pattern.chunks(), { size: work.size });
    const putSeconds = secondsSince(p0);
    const g0 = now();
    const checkNs = await readPattern(job, key, pattern, check);
    const getSeconds = secondsSince(g0, checkNs);
    peak = Math.max(peak, process.memoryUsage().rss);
    await job.delete(key);
    return { ops: 2, bytes: 2 * work.size, seconds: putSeconds + getSeconds, putSeconds, getSeconds, rssGrowthBytes: peak - baseline, ...check.counts };
  } finally {
    clearInterval(sampler);
  }
}

/** Runs one piece of work the driver sent, on the store it names. */
async function run(work: Work, stores: Record<System, Store>, job: PocketJob, client: PocketClient): Promise<WorkResult> {
  const tag = `b${setup!.index}`;
  switch (work.kind) {
    case "latency":
      return latencyWork(work, stores[work.system], tag);
    case "ops":
      return opsWork(work, stores[work.system], tag);
    case "throughput":
      return throughputWork(work, stores[work.system], tag);
    case "metadata":
      return metadataWork(work, job, client, tag);
    case "stream":
      return streamWork(work, job, tag);
  }
}

async function main(): Promise<void> {
  const name = `bench-${setup!.index}`;
  const client = await PocketClient.connect({ servers: setup!.natsUrl, name, credentials: setup!.credentials });
  const job = client.job(setup!.token);
  const redis = new Redis({ port: setup!.redisPort, host: "127.0.0.1", maxRetriesPerRequest: 1 });
  const kv = await openKv(setup!.kvUrl, setup!.kvBucket, name);
  const stores: Record<System, Store> = { pocket: pocketStore(job), redis: redisStore(redis), "nats-kv": natsKvStore(kv.bucket) };
  process.on("message", (m: ToWorker) => {
    run(m.work, stores, job, client).then(
      (result) => send({ kind: "done", id: m.id, result }),
      (e: unknown) => send({ kind: "failed", id: m.id, message: e instanceof Error ? e.message : String(e) }),
    );
  });
  process.on("disconnect", () => {
    redis.disconnect();
    void Promise.allSettled([kv.close(), client.close()]).finally(() => process.exit(0));
  });
  send({ kind: "ready" });
}

main().catch((e: unknown) => {
  process.stderr.write(`bench worker: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
