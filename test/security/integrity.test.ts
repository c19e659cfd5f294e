import { Transform, type Readable, type TransformCallback } from "node:stream";
import { ErrorCode, isPocketError, type PocketError } from "../../schemas/errors";
import { NodeOps, ShardOps, type ExtentRef, type WriteReceipt } from "../../schemas/operations";
import { crc32 } from "../../lib/checksum";
import type { PocketJob } from "../../client/pocket";
import { NatsCaller } from "../../bus/nats-rpc";
import { parseAddr } from "../../bus/tcp-client";
import { Subjects } from "../../bus/subjects";
import { eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";
import { nodeStats } from "../harness/nodes";
import { TcpProxy } from "../harness/proxy";

/**
 * What a job's own lambda (holding a valid job token) can do to a storage
 * node and a shard, and what a node (or anything between) that returns
 * other bytes can do to a reader: never store outside a grant, never commit
 * what was not written, never return bytes that differ from what was put.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
/** Small extents: a few MiB make many of them, and a put past one commit's worth of receipts stays small. */
const extentBytes = 64 * KiB;
/** The proxy flips the byte this far into a reply frame's body: past its header and JSON meta, inside an extent's payload. */
const flipAfterBytes = 1024;

/**
 * A TCP proxy in front of a storage node (which advertises the proxy's
 * address). It passes bytes through, or, while `flipping`, XORs one byte of
 * every reply frame longer than `flipAfterBytes`: a node, or anything on the
 * way, returning other bytes of the right length.
 */
class FlipProxy {
  flipping = false;
  /** Bytes flipped so far. */
  flipped = 0;

  private constructor(readonly proxy: TcpProxy) {}

  static async listen(): Promise<FlipProxy> {
    let self: FlipProxy | undefined;
    const proxy = await TcpProxy.listen({ replies: () => new ReplyFlipper(self!) });
    self = new FlipProxy(proxy);
    return self;
  }

  get addr(): string { return this.proxy.addr; }
  set target(t: { host: string; port: number } | undefined) { this.proxy.target = t; }
  close(): Promise<void> { return this.proxy.close(); }
}

/** Follows the direct transport's framing (u32 length, then the body) and flips one byte per long frame. */
class ReplyFlipper extends Transform {
  #lengthField: number[] = [];
  /** Body bytes of the current frame not yet seen, and those seen. */
  #left = 0;
  #seen = 0;

  constructor(private readonly proxy: FlipProxy) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const out = Buffer.from(chunk);
    let i = 0;
    while (i < out.length) {
      if (this.#left === 0) {
        this.#lengthField.push(out[i++]!);
        if (this.#lengthField.length === 4) {
          this.#left = Buffer.from(this.#lengthField).readUInt32BE(0);
          this.#seen = 0;
          this.#lengthField = [];
        }
        continue;
      }
      const n = Math.min(this.#left, out.length - i);
      if (this.proxy.flipping && flipAfterBytes >= this.#seen && flipAfterBytes < this.#seen + n) {
        out[i + flipAfterBytes - this.#seen]! ^= 0x20;
        this.proxy.flipped++;
      }
      this.#seen += n;
      this.#left -= n;
      i += n;
    }
    done(null, out);
  }
}

/** Starts a DRAM node that advertises `proxy`, and points the proxy at the node's own address. */
async function startBehindProxy(t: TestCluster, nodeId: string, proxy: FlipProxy): Promise<void> {
  // The node tells everyone the proxy's address, and the proxy forwards to where the node listens.
  const { listen } = await t.cluster.addNode(nodeId, 256 * MiB, { advertiseAddr: proxy.addr });
  proxy.target = parseAddr(listen);
}

async function failure(p: Promise<unknown>): Promise<PocketError> {
  const r = await p.then(() => "resolved", (e: unknown) => e);
  if (!isPocketError(r)) throw new Error(`expected a Pocket error, got ${r instanceof Error ? r.stack : String(r)}`);
  return r;
}

/** Reads a stream to its end or failure; every chunk it gave must be the expected bytes at that point. */
async function drain(stream: Readable, expected: Buffer): Promise<{ bytes: Buffer; error: unknown }> {
  const chunks: Buffer[] = [];
  let at = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (!chunk.equals(expected.subarray(at, at + chunk.byteLength))) throw new Error(`the stream gave other bytes at ${at}`);
      at += chunk.byteLength;
      chunks.push(chunk);
    }
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
  return { bytes: Buffer.concat(chunks), error: undefined };
}

let t: TestCluster;
let job: PocketJob;
let other: PocketJob;
const proxies: FlipProxy[] = [];

beforeAll(async () => {
  t = await startTestCluster({ shards: 1, dram: 0, minNodes: 2, maxNodes: 2, extentBytesMax: extentBytes });
  for (const nodeId of ["dram-a", "dram-b"]) {
    const proxy = await FlipProxy.listen();
    proxies.push(proxy);
    await startBehindProxy(t, nodeId, proxy);
  }
  await eventually(async () => (await t.client.listNodes()).filter((n) => n.state === "active").length === 2, 10_000, "both nodes active");
  job = t.client.job((await t.client.registerJob("integrity")).token);
  other = t.client.job((await t.client.registerJob("integrity-other")).token);
});

afterAll(async () => {
  await t?.stop();
  for (const p of proxies) await p.close();
});

afterEach(() => {
  for (const p of proxies) p.flipping = false;
});

function setFlipping(on: boolean): number {
  for (const p of proxies) p.flipping = on;
  return proxies.reduce((s, p) => s + p.flipped, 0);
}

function flippedSince(before: number): number {
  return proxies.reduce((s, p) => s + p.flipped, 0) - before;
}

async function usedOnNodes(): Promise<Record<string, number>> {
  return Object.fromEntries((await nodeStats(t)).map((n) => [n.nodeId, n.usedBytes]));
}

describe("a storage node stores only inside a shard's grant", () => {
  let ref100: ExtentRef;
  let ref3000: ExtentRef;
  let onA: ExtentRef;
  let onB: ExtentRef;
  const writeAs = (j: PocketJob, ref: ExtentRef, request: { extentId?: string; grant?: string; crc?: number }, bytes: Buffer): Promise<unknown> =>
    t.client.callNode(ref, NodeOps.extentWrite, { token: j.token, extentId: ref.extentId, grant: ref.grant, crc: crc32(bytes), ...request }, { payload: bytes });

  beforeAll(async () => {
    const create = async (path: string, size: number): Promise<ExtentRef[]> =>
      (await t.client.callShard(job, ShardOps.objectCreate, { token: job.token, path, size })).reply.extents;
    [ref100] = (await create("attack/100", 100)) as [ExtentRef];
    [ref3000] = (await create("attack/3000", 3000)) as [ExtentRef];
    const spread = await create("attack/spread", 8 * extentBytes);
    onA = spread.find((r) => r.nodeId === "dram-a")!;
    onB = spread.find((r) => r.nodeId === "dram-b")!;
    expect(onA && onB).toBeTruthy();
    for (const r of [ref100, ref3000, onA]) expect(r.grant).toEqual(expect.any(String));
  });

  test("without a grant, outside its length, for another extent, node or job, forged, or with a wrong crc: refused, nothing stored", async () => {
    const before = await usedOnNodes();
    const b100 = patternBytes(100, 1);
    const [length, expiry, tag] = ref100.grant!.split(".") as [string, string, string];
    const cases: Array<[string, Promise<unknown>, ErrorCode]> = [
      ["no grant", writeAs(job, ref100, { grant: undefined }, b100), ErrorCode.Unauthorized],
      ["200 B under a grant for 100 B", writeAs(job, ref100, {}, patternBytes(200, 2)), ErrorCode.InvalidArgument],
      ["10 B under a grant for 3000 B", writeAs(job, ref3000, {}, patternBytes(10, 3)), ErrorCode.InvalidArgument],
      ["an extent id no shard allocated", writeAs(job, ref100, { extentId: "attack.not-allocated" }, b100), ErrorCode.Unauthorized],
      ["another allocated extent's id", writeAs(job, ref100, { extentId: ref3000.extentId }, b100), ErrorCode.Unauthorized],
      ["a grant for another node", writeAs(job, { ...onB, extentId: onA.extentId, grant: onA.grant }, {}, patternBytes(onA.length, 4)), ErrorCode.Unauthorized],
      ["another job's token", writeAs(other, ref100, {}, b100), ErrorCode.Unauthorized],
      ["a grant with its length changed", writeAs(job, ref100, { grant: `${(200).toString(36)}.${expiry}.${tag}` }, patternBytes(200, 5)), ErrorCode.Unauthorized],
      ["a grant with its expiry changed", writeAs(job, ref100, { grant: `${length}.${(parseInt(expiry, 36) + 1).toString(36)}.${tag}` }, b100), ErrorCode.Unauthorized],
      ["a made-up grant", writeAs(job, ref100, { grant: `${length}.${expiry}.${"A".repeat(22)}` }, b100), ErrorCode.Unauthorized],
      ["a payload whose crc is not the sender's", writeAs(job, ref100, { crc: (crc32(b100) ^ 1) >>> 0 }, b100), ErrorCode.Integrity],
    ];
    for (const [what, attempt, code] of cases) {
      const e = await failure(attempt);
      if (e.code !== code) throw new Error(`${what}: expected ${code}, got ${e.code}: ${e.message}`);
    }
    const over = await failure(writeAs(job, ref100, {}, patternBytes(200, 2)));
    expect(over.message).toMatch(/100 bytes.*200/);
    expect(await usedOnNodes()).toEqual(before);
    // The genuine grant still works, once.
    await writeAs(job, ref100, {}, b100);
    expect((await failure(writeAs(job, ref100, {}, b100))).code).toBe(ErrorCode.AlreadyExists);
  });
});

describe("a commit needs a node's receipt for every extent", () => {
  const commit = (writeId: string, receipts: WriteReceipt[]): Promise<unknown> =>
    t.client.callShard(job, ShardOps.objectCommit, { token: job.token, writeId, receipts });

  test("extents never written are not committed; the write stays pending and commits once written", async () => {
    const data = patternBytes(3 * extentBytes, 31);
    const created = (await t.client.callShard(job, ShardOps.objectCreate, { token: job.token, path: "commit/x", size: data.byteLength })).reply;
    const refs = created.extents;
    const missing = await failure(commit(created.writeId, []));
    expect(missing.code).toBe(ErrorCode.InvalidArgument);
    expect(missing.message).toContain(refs[0]!.extentId);
    const made = refs.map((r) => ({ extentId: r.extentId, crc: 0, receipt: "A".repeat(22) }));
    expect((await failure(commit(created.writeId, made))).code).toBe(ErrorCode.Unauthorized);
    expect((await failure(job.stat("commit/x"))).code).toBe(ErrorCode.NotFound);

    const receipts: WriteReceipt[] = [];
    for (const [i, ref] of refs.entries()) {
      const bytes = data.subarray(i * extentBytes, (i + 1) * extentBytes);
      const w = await t.client.callNode(ref, NodeOps.extentWrite, { token: job.token, extentId: ref.extentId, grant: ref.grant, crc: crc32(bytes) }, { payload: bytes });
      expect(w.reply).toMatchObject({ length: bytes.byteLength, crc: crc32(bytes) });
      receipts.push({ extentId: ref.extentId, crc: w.reply.crc, receipt: w.reply.receipt });
    }
    // A receipt vouches for one extent with one crc.
    expect((await failure(commit(created.writeId, [{ ...receipts[0]!, crc: (receipts[0]!.crc ^ 1) >>> 0 }]))).code).toBe(ErrorCode.Unauthorized);
    expect((await failure(commit(created.writeId, [{ ...receipts[0]!, extentId: receipts[1]!.extentId }]))).code).toBe(ErrorCode.Unauthorized);
    // Part of them in a batch ahead of the commit, the rest with it.
    const written = await t.client.callShard(job, ShardOps.objectWritten, { token: job.token, writeId: created.writeId, receipts: receipts.slice(0, 1) });
    expect(written.reply.written).toBe(1);
    expect((await failure(commit(created.writeId, []))).message).toContain(refs[1]!.extentId);
    await commit(created.writeId, receipts.slice(1));
    expect((await job.get("commit/x")).equals(data)).toBe(true);
  });

  test("a put of more extents than one commit carries hands its receipts in batches", async () => {
    const data = patternBytes(1100 * extentBytes + 7, 41);
    expect((await job.put("commit/many", data)).size).toBe(data.byteLength);
    expect((await job.get("commit/many")).equals(data)).toBe(true);
  });
});

describe("reads never return bytes that differ from what was put", () => {
  const big = patternBytes(3 * MiB, 11);
  const small = patternBytes(3000, 12);
  const across = { offset: extentBytes - 5000, length: 10_000 };

  beforeAll(async () => {
    await job.put("read/big", big);
    await job.putStream("read/streamed", (async function* () { yield big.subarray(0, MiB); yield big.subarray(MiB); })());
    await job.put("read/small", small);
  });

  test("through an honest path, whole, range, stream and inline reads are byte-exact", async () => {
    for (const path of ["read/big", "read/streamed"]) {
      expect((await job.get(path)).equals(big)).toBe(true);
      expect((await job.get(path, across)).equals(big.subarray(across.offset, across.offset + across.length))).toBe(true);
      const streamed = await drain(job.getStream(path), big);
      expect(streamed.error).toBeUndefined();
      expect(streamed.bytes.equals(big)).toBe(true);
    }
    expect((await job.get("read/small")).equals(small)).toBe(true);
    expect((await job.get("read/small", { offset: 100, length: 1000 })).equals(small.subarray(100, 1100))).toBe(true);
  });

  test("a whole get of flipped bytes fails with IntegrityError, after reading the layout once more", async () => {
    const before = setFlipping(true);
    expect((await failure(job.get("read/big"))).code).toBe(ErrorCode.Integrity);
    // Each attempt reads a window of extents (and stops at the first bad one): two windows mean one retry.
    expect(flippedSince(before)).toBe(2 * t.client.extentsInflightMax);
  });

  test("a range across an extent boundary with flipped bytes fails with IntegrityError", async () => {
    const before = setFlipping(true);
    expect((await failure(job.get("read/big", across))).code).toBe(ErrorCode.Integrity);
    expect(flippedSince(before)).toBeGreaterThan(0);
  });

  test("getStream of flipped bytes fails with IntegrityError and gives none of them", async () => {
    const before = setFlipping(true);
    const whole = await drain(job.getStream("read/big"), big);
    expect(isPocketError(whole.error, ErrorCode.Integrity)).toBe(true);
    const part = await drain(job.getStream("read/big", across), big.subarray(across.offset, across.offset + across.length));
    expect(isPocketError(part.error, ErrorCode.Integrity)).toBe(true);
    expect(flippedSince(before)).toBeGreaterThan(0);
  });

  test("an inline put whose bytes do not match its crc is refused and stores nothing", async () => {
    const bytes = patternBytes(2000, 13);
    const put = (path: string, crc: number | undefined): Promise<unknown> =>
      t.client.callShard(job, ShardOps.objectPut, { token: job.token, path, crc }, { payload: bytes });
    const wrong = (crc32(bytes) ^ 0x20) >>> 0;
    expect((await failure(put("read/small", wrong))).code).toBe(ErrorCode.Integrity);
    expect((await job.get("read/small")).equals(small)).toBe(true);
    expect((await failure(put("read/never", wrong))).code).toBe(ErrorCode.Integrity);
    expect((await failure(put("read/never", undefined))).code).toBe(ErrorCode.InvalidArgument);
    expect((await failure(job.stat("read/never"))).code).toBe(ErrorCode.NotFound);
  });
});

describe("moving extents off a node keeps their committed crcs", () => {
  test("after a migration, reads of the moved extents are checked and byte-exact", async () => {
    const data = patternBytes(6 * extentBytes + 1, 51);
    await job.put("move/x", data);
    const moved = await new NatsCaller(t.inspect, Subjects.shardControl(job.shardId)).call(ShardOps.migrate, { nodeId: "dram-a" });
    expect(moved.reply).toMatchObject({ failed: 0 });
    expect(moved.reply.extents).toBeGreaterThan(0);
    // Every byte went from the draining node straight to the other (extent.copy), none through the shard.
    expect(moved.reply.directBytes).toBe(moved.reply.bytes);
    const layout = (await t.client.callShard(job, ShardOps.objectLookup, { token: job.token, path: "move/x" })).reply.extents;
    expect(layout.map((r) => r.nodeId)).toEqual(layout.map(() => "dram-b"));
    expect(layout.every((r) => r.crc !== undefined)).toBe(true);
    expect((await job.get("move/x")).equals(data)).toBe(true);
    expect((await job.get("move/x", { offset: extentBytes - 10, length: 20 })).equals(data.subarray(extentBytes - 10, extentBytes + 10))).toBe(true);
  });

  test("when the draining node cannot reach the other one directly, the shard moves the extents itself, still checked", async () => {
    const data = patternBytes(8 * extentBytes + 3, 52);
    await job.put("move/y", data);
    const onA = (await t.client.callShard(job, ShardOps.objectLookup, { token: job.token, path: "move/y" })).reply.extents.filter((r) => r.nodeId === "dram-a");
    expect(onA.length).toBeGreaterThan(0);
    // dram-b's advertised address leads nowhere for now (connections it carried are cut): extent.copy to it fails to connect.
    const target = proxies[1]!.proxy.target;
    proxies[1]!.target = undefined;
    proxies[1]!.proxy.cut();
    let moved;
    try {
      moved = (await new NatsCaller(t.inspect, Subjects.shardControl(job.shardId)).call(ShardOps.migrate, { nodeId: "dram-a" })).reply;
    } finally {
      proxies[1]!.target = target;
    }
    expect(moved).toMatchObject({ failed: 0, directBytes: 0 });
    expect(moved.bytes).toBe(onA.reduce((s, r) => s + r.length, 0));
    const layout = (await t.client.callShard(job, ShardOps.objectLookup, { token: job.token, path: "move/y" })).reply.extents;
    expect(layout.every((r) => r.nodeId === "dram-b" && r.crc !== undefined)).toBe(true);
    expect((await job.get("move/y")).equals(data)).toBe(true);
  });
});
