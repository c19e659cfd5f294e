import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ErrorCode, isPocketError } from "../../schemas/errors";
import { Defaults } from "../../actors/runtime/config";
import { ClientTransport, PocketClient, type PocketJob } from "../../client/pocket";
import { connectJob, eventually, patternBytes, Role, startTestCluster, type TestCluster, type TestJob } from "../harness/cluster";
import { usedBytes } from "../harness/nodes";

let t: TestCluster;
const extent = 256 * 1024;
beforeAll(async () => {
  t = await startTestCluster({ shards: 1, dram: 2, dramCapacityBytes: 400 * 1024 * 1024, extentBytesMax: extent });
});
afterAll(async () => { await t?.stop(); });

/** `total` bytes in chunks of odd sizes, the same for the same seed, without holding them all. */
async function* generated(total: number, seed: number, failAt?: number): AsyncGenerator<Buffer> {
  let sent = 0;
  let i = 0;
  while (sent < total) {
    const n = Math.min(total - sent, 65_537 + ((i * 7919) % 200_000));
    if (failAt !== undefined && sent + n > failAt) throw new Error("the source broke");
    yield patternBytes(n, seed + i++);
    sent += n;
  }
}

async function sha(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const h = createHash("sha256");
  for await (const c of stream) h.update(c);
  return h.digest("hex");
}

describe.each([ClientTransport.Auto, ClientTransport.Nats])("streams over %s", (transport) => {
  let tj: TestJob;
  let job: PocketJob;
  beforeAll(async () => {
    tj = await connectJob(t, transport, `streams-${transport}`);
    job = tj.job;
  });
  afterAll(async () => { await tj?.close(); });

  test("inline threshold edges are byte-exact", async () => {
    for (const size of [Defaults.inlineBytesMax - 1, Defaults.inlineBytesMax, Defaults.inlineBytesMax + 1]) {
      const data = patternBytes(size, size);
      await job.put(`edge/${size}`, data);
      expect((await job.get(`edge/${size}`)).equals(data)).toBe(true);
      expect((await job.get(`edge/${size}`, { offset: 10, length: 100 })).equals(data.subarray(10, 110))).toBe(true);
      expect(await sha(job.getStream(`edge/${size}`))).toBe(createHash("sha256").update(data).digest("hex"));
    }
    // Overwrites across the threshold, both ways.
    await job.put("edge/flip", patternBytes(10_000, 1));
    await job.put("edge/flip", "small");
    expect((await job.get("edge/flip")).toString()).toBe("small");
    await job.put("edge/flip", patternBytes(10_000, 2));
    expect((await job.get("edge/flip")).equals(patternBytes(10_000, 2))).toBe(true);
  });

  test("range reads at extent boundaries", async () => {
    const data = patternBytes(3 * extent + 123, 5);
    await job.put("ranges", data);
    const cases: Array<[number, number]> = [
      [0, 1], [extent - 1, 2], [extent, extent], [extent - 1, extent + 2], [2 * extent, extent + 123],
      [3 * extent, 123], [3 * extent + 122, 1], [0, data.length], [5, 3 * extent], [3 * extent + 123, 0],
    ];
    for (const [offset, length] of cases) {
      expect((await job.get("ranges", { offset, length })).equals(data.subarray(offset, offset + length))).toBe(true);
      const chunks: Buffer[] = [];
      for await (const c of job.getStream("ranges", { offset, length })) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data.subarray(offset, offset + length))).toBe(true);
    }
    expect((await job.get("ranges", { offset: 3 * extent })).equals(data.subarray(3 * extent))).toBe(true);
    expect((await job.get("ranges", { offset: data.length + 10, length: 5 })).byteLength).toBe(0);
    await expect(job.get("ranges", { offset: -1 })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
  });

  test("a writer that fails mid-stream leaves no object and no extents", async () => {
    const before = await usedBytes(t);
    const e = await job.putStream("broken", generated(20 * 1024 * 1024, 3, 9 * 1024 * 1024)).catch((err: unknown) => err);
    expect((e as Error).message).toBe("the source broke");
    await expect(job.stat("broken")).rejects.toMatchObject({ code: ErrorCode.NotFound });
    await eventually(async () => (await usedBytes(t)) === before, 5000, "extents of the broken put freed");
    // A declared size that the stream does not match is refused the same way.
    const short = await job.putStream("short", generated(1_000_000, 4), { size: 1_500_000 }).catch((err: unknown) => err);
    expect(isPocketError(short, ErrorCode.InvalidArgument)).toBe(true);
    await expect(job.stat("short")).rejects.toMatchObject({ code: ErrorCode.NotFound });
    await eventually(async () => (await usedBytes(t)) === before, 5000, "extents of the short put freed");
  });

  test("a reader that stops early releases the stream; the client keeps working", async () => {
    await job.putStream("long", generated(40 * 1024 * 1024, 6));
    const s = job.getStream("long");
    let got = 0;
    for await (const c of s) {
      got += (c as Buffer).byteLength;
      if (got > 3 * extent) break; // breaking out of for-await destroys the stream
    }
    expect(s.destroyed).toBe(true);
    expect(await sha(job.getStream("long"))).toBe(await sha(generated(40 * 1024 * 1024, 6)));
  });
});

test("a 300 MB object streams in and out byte-exact", async () => {
  const client = await PocketClient.connect({ servers: t.nats.url, credentials: t.auth.credentials(Role.Driver, "big-stream") });
  const { token } = await client.registerJob("big-stream");
  const job = client.job(token);
  const size = 300 * 1000 * 1000;
  const put = await job.putStream("big", Readable.from(generated(size, 7)));
  expect(put.size).toBe(size);
  expect((await job.stat("big")).size).toBe(size);
  const [expected, actual] = [await sha(generated(size, 7)), await sha(job.getStream("big"))];
  expect(actual).toBe(expected);
  // Piping to a slow consumer: backpressure, no error.
  let seen = 0;
  await pipeline(job.getStream("big", { offset: size - 10 * extent }), async function* (src) {
    for await (const c of src) {
      seen += (c as Buffer).byteLength;
      await new Promise((r) => setImmediate(r));
    }
    yield Buffer.alloc(0);
  });
  expect(seen).toBe(10 * extent);
  await client.deregisterJob(token);
  await client.close();
}, 120_000);

test("a stale shard address is looked up again; a restarted shard answers with a clear error", async () => {
  const client = await PocketClient.connect({ servers: t.nats.url, credentials: t.auth.credentials(Role.Driver, "stale") });
  const reg = await client.registerJob("stale");
  const job = client.job(reg.token);
  await job.put("x", "1");
  const before = await client.shardInfo(reg.shardId, reg.jobId);
  // The shard dies and comes back elsewhere (new port, empty: shards are in memory).
  await t.cluster.kill(reg.shardId);
  await t.cluster.addShard(reg.shardId);
  // A request already on the old connection when it broke fails NodeUnavailable (it may have been
  // processed, so it is not retried); the next one finds the new address.
  let e = await job.get("x").catch((err: unknown) => err);
  if (isPocketError(e, ErrorCode.NodeUnavailable)) e = await job.get("x").catch((err: unknown) => err);
  expect(isPocketError(e, ErrorCode.UnknownJob)).toBe(true);
  const after = await client.shardInfo(reg.shardId, reg.jobId);
  expect(after.addr).not.toBe(before.addr);
  await client.close();
});
