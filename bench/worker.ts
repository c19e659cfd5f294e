/**
 * A benchmark client process: one Pocket client and one Redis client (ioredis),
 * each with one connection, running the work the driver sends.
 */
import { Redis } from "ioredis";
import { ShardOps } from "../schemas/operations";
import { PocketClient, type PocketJob } from "../client/pocket";
import type { FromWorker, ToWorker, Work, WorkerSetup, WorkResult } from "./work";

const setup = JSON.parse(process.env["POCKET_BENCH_SETUP"] ?? "null") as WorkerSetup | null;
if (!setup || !process.send) throw new Error("run by the benchmark driver");

function send(m: FromWorker): void {
  process.send!(m);
}

/** The bytes stored under a key: recognisable per key, so reads can be checked. */
function valueFor(key: string, size: number): Buffer {
  const b = Buffer.alloc(size, key.length & 0xff);
  b.write(key, 0, Math.min(size, key.length), "latin1");
  if (size >= 8) b.writeUInt32LE(size, size - 4);
  return b;
}

interface Store {
  put(key: string, value: Buffer): Promise<void>;
  get(key: string): Promise<Buffer>;
  stat(key: string): Promise<number>;
}

function pocketStore(job: PocketJob): Store {
  return {
    put: async (k, v) => { await job.put(k, v); },
    get: (k) => job.get(k),
    stat: async (k) => (await job.stat(k)).size,
  };
}

function redisStore(redis: Redis): Store {
  return {
    put: async (k, v) => { await redis.set(k, v); },
    get: async (k) => {
      const v = await redis.getBuffer(k);
      if (!v) throw new Error(`redis: ${k} missing`);
      return v;
    },
    stat: (k) => redis.strlen(k),
  };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function check(key: string, got: Buffer, size: number): void {
  if (got.byteLength !== size || !got.equals(valueFor(key, size))) throw new Error(`read of ${key} returned wrong bytes`);
}

/** The work of one kind. */
type WorkOf<K extends Work["kind"]> = Extract<Work, { kind: K }>;

/** Seconds since `t0` (from `process.hrtime.bigint()`). */
function secondsSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** One request in flight, `count` times, on one key: per-request latency; every 64th get is checked. */
async function latencyWork(work: WorkOf<"latency">, store: Store, tag: string): Promise<WorkResult> {
  const key = `${tag}/lat/${work.size}`;
  const value = valueFor(key, work.size);
  await store.put(key, value);
  const samples = new Float64Array(work.count);
  let verified = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < work.count; i++) {
    const s = process.hrtime.bigint();
    if (work.op === "put") await store.put(key, value);
    else if (work.op === "stat") {
      if ((await store.stat(key)) !== work.size) throw new Error("stat returned the wrong size");
    } else {
      const got = await store.get(key);
      if (i % 64 === 0) { check(key, got, work.size); verified++; }
    }
    samples[i] = Number(process.hrtime.bigint() - s) / 1000;
  }
  const seconds = secondsSince(t0);
  samples.sort();
  return { ops: work.count, bytes: work.count * work.size, seconds, p50Us: percentile(samples, 50), p99Us: percentile(samples, 99), verified };
}

/** `inflight` requests in flight, one key each, for `durationMs`: requests per second. */
async function opsWork(work: WorkOf<"ops">, store: Store, tag: string): Promise<WorkResult> {
  const keys = Array.from({ length: work.inflight }, (_, i) => `${tag}/ops/${i}`);
  const values = keys.map((k) => valueFor(k, work.size));
  for (let i = 0; i < keys.length; i++) await store.put(keys[i]!, values[i]!);
  let ops = 0;
  let verified = 0;
  const end = Date.now() + work.durationMs;
  const t0 = process.hrtime.bigint();
  await Promise.all(keys.map(async (k, i) => {
    while (Date.now() < end) {
      if (work.op === "put") await store.put(k, values[i]!);
      else {
        const got = await store.get(k);
        if (ops % 256 === 0) { check(k, got, work.size); verified++; }
      }
      ops++;
    }
  }));
  const seconds = secondsSince(t0);
  return { ops, bytes: ops * work.size, seconds, verified };
}

/** One request at a time over `keys` large objects for `durationMs`: bytes per second. */
async function throughputWork(work: WorkOf<"throughput">, store: Store, tag: string): Promise<WorkResult> {
  const keys = Array.from({ length: work.keys }, (_, i) => `${tag}/tp/${work.size}/${i}`);
  const value = valueFor(keys[0]!, work.size);
  if (work.op === "get") for (const k of keys) await store.put(k, valueFor(k, work.size));
  let ops = 0;
  let verified = 0;
  const end = Date.now() + work.durationMs;
  const t0 = process.hrtime.bigint();
  while (Date.now() < end) {
    const k = keys[ops % keys.length]!;
    if (work.op === "put") await store.put(k, value);
    else {
      const got = await store.get(k);
      if (ops % 16 === 0) { check(k, got, work.size); verified++; }
    }
    ops++;
  }
  const seconds = secondsSince(t0);
  return { ops, bytes: ops * work.size, seconds, verified };
}

/** Lookups of one extent object on the job's shard, `inflight` pipelined, for `durationMs`. */
async function metadataWork(work: WorkOf<"metadata">, job: PocketJob, client: PocketClient, tag: string): Promise<WorkResult> {
  const key = `${tag}/meta`;
  await job.put(key, Buffer.alloc(64 * 1024, 1)); // an extent object: a lookup returns its layout
  let ops = 0;
  const end = Date.now() + work.durationMs;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: work.inflight }, async () => {
    while (Date.now() < end) {
      const r = await client.callShard(job, ShardOps.objectLookup, { token: job.token, path: key });
      if (r.reply.size !== 64 * 1024) throw new Error("lookup returned the wrong size");
      ops++;
    }
  }));
  return { ops, bytes: 0, seconds: secondsSince(t0), verified: 0 };
}

/** `size` bytes in 1 MiB chunks, each starting with its chunk number. */
async function* numberedChunks(chunk: Buffer, size: number): AsyncGenerator<Buffer> {
  const chunks = Math.ceil(size / chunk.byteLength);
  for (let i = 0; i < chunks; i++) {
    chunk.writeUInt32LE(i, 0);
    yield i === chunks - 1 ? chunk.subarray(0, size - i * chunk.byteLength) : chunk;
  }
}

/** Reads `key` back as a stream, checking each chunk number; returns the bytes read and the chunks checked. */
async function readNumberedChunks(job: PocketJob, key: string, chunkBytes: number): Promise<{ got: number; verified: number }> {
  let got = 0;
  let verified = 0;
  let index = 0;
  let carry = 0;
  for await (const c of job.getStream(key)) {
    const b = c as Buffer;
    // Every 1 MiB boundary starts with its chunk number: check those that fall inside this piece.
    for (let at = carry === 0 ? 0 : chunkBytes - carry; at + 4 <= b.byteLength; at += chunkBytes) {
      if (b.readUInt32LE(at) !== index) throw new Error(`stream chunk ${index} has the wrong bytes`);
      index++;
      verified++;
    }
    got += b.byteLength;
    carry = got % chunkBytes;
  }
  return { got, verified };
}

/** One object of `size` bytes streamed in and out; the peak growth of this process's RSS meanwhile. */
async function streamWork(work: WorkOf<"stream">, job: PocketJob, tag: string): Promise<WorkResult> {
  const chunk = Buffer.alloc(1024 * 1024, 7);
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  const key = `${tag}/stream`;
  const p0 = process.hrtime.bigint();
  await job.putStream(key, numberedChunks(chunk, work.size), { size: work.size });
  const putSeconds = secondsSince(p0);
  const g0 = process.hrtime.bigint();
  const { got, verified } = await readNumberedChunks(job, key, chunk.byteLength);
  const getSeconds = secondsSince(g0);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  if (got !== work.size) throw new Error(`streamed ${got} bytes of ${work.size}`);
  await job.delete(key);
  return { ops: 2, bytes: 2 * work.size, seconds: putSeconds + getSeconds, putSeconds, getSeconds, rssGrowthBytes: peak - baseline, verified };
}

/** Runs one piece of work the driver sent, on the store it names. */
async function run(work: Work, stores: Record<"pocket" | "redis", Store>, job: PocketJob, client: PocketClient): Promise<WorkResult> {
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
  const client = await PocketClient.connect({ servers: setup!.natsUrl, name: `bench-${setup!.index}`, credentials: setup!.credentials });
  const job = client.job(setup!.token);
  const redis = new Redis({ port: setup!.redisPort, host: "127.0.0.1", maxRetriesPerRequest: 1 });
  const stores = { pocket: pocketStore(job), redis: redisStore(redis) };
  process.on("message", (m: ToWorker) => {
    run(m.work, stores, job, client).then(
      (result) => send({ kind: "done", id: m.id, result }),
      (e: unknown) => send({ kind: "failed", id: m.id, message: e instanceof Error ? e.message : String(e) }),
    );
  });
  process.on("disconnect", () => {
    redis.disconnect();
    void client.close().finally(() => process.exit(0));
  });
  send({ kind: "ready" });
}

main().catch((e: unknown) => {
  process.stderr.write(`bench worker: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
