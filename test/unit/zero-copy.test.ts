import { encodeFrame, FrameDecoder, FrameKind, ownedFrameBytesMin } from "../../bus/frame";
import { DramStore } from "../../actors/storage/dram-store";
import { BufferPool } from "../../lib/buffer-pool";

/** Encodes one request frame and splits it into socket-sized chunks. */
function chunked(payload: Buffer, chunkBytes: number): Buffer[] {
  const [head, body] = encodeFrame(FrameKind.Request, 7, "extent.write", Buffer.from("{}"), payload);
  const all = Buffer.concat([head, body ?? Buffer.alloc(0)]);
  const out: Buffer[] = [];
  for (let i = 0; i < all.byteLength; i += chunkBytes) out.push(all.subarray(i, i + chunkBytes));
  return out;
}

test("a large frame reassembled from chunks is owned: its payload shares its buffer with nothing else", () => {
  const payload = Buffer.alloc(1024 * 1024, 9);
  const d = new FrameDecoder(2 * 1024 * 1024);
  const frames = chunked(payload, 64 * 1024).flatMap((c) => d.push(c));
  expect(frames).toHaveLength(1);
  const f = frames[0]!;
  expect(f.owned).toBe(true);
  expect(Buffer.from(f.payload!).equals(payload)).toBe(true);
  // The buffer holds this one frame and nothing more.
  expect(f.payload!.buffer.byteLength).toBeLessThan(payload.byteLength + 128);
});

test("a frame read from within one chunk, or a small one, is not owned (its buffer is shared)", () => {
  const d = new FrameDecoder(2 * 1024 * 1024);
  const whole = d.push(Buffer.concat(chunked(Buffer.alloc(100_000, 1), 1 << 30)));
  expect(whole[0]!.owned).toBeUndefined();
  const small = chunked(Buffer.alloc(ownedFrameBytesMin / 2, 2), 1000).flatMap((c) => d.push(c));
  expect(small[0]!.owned).toBeUndefined();
});

test("the DRAM store keeps an owned buffer as it is, and copies one it is lent", async () => {
  const store = new DramStore(4 * 1024 * 1024);
  const given = Buffer.alloc(200_000, 3);
  await store.write("j", "owned", given, true);
  expect((await store.read("j", "owned", 0, undefined)).bytes.buffer).toBe(given.buffer);
  const lent = Buffer.alloc(200_000, 4);
  await store.write("j", "lent", lent, false);
  const { bytes: kept } = await store.read("j", "lent", 0, undefined);
  expect(kept.buffer).not.toBe(lent.buffer);
  lent.fill(0);
  expect(kept[0]).toBe(4);
});

test("a pool hands a block back out only after it was given back, by size class, and keeps no more idle than its bound", () => {
  const pool = new BufferPool(3 * 64 * 1024, 64 * 1024);
  const a = pool.take(100_000);
  expect(a.byteLength).toBe(100_000);
  expect(a.buffer.byteLength).toBe(128 * 1024);
  const b = pool.take(100_000);
  expect(b.buffer).not.toBe(a.buffer);
  expect(pool.give(a)).toBe(true);
  expect(pool.give(a)).toBe(false); // already idle: kept once
  expect(pool.give(Buffer.allocUnsafeSlow(128 * 1024))).toBe(false); // not one of its own
  expect(pool.take(70_000).buffer).toBe(a.buffer); // same class (65537..131072 bytes)
  expect(pool.take(100_000).buffer).not.toBe(b.buffer); // b was never given back
  expect(pool.give(b)).toBe(true);
  expect(pool.idleBytes).toBe(128 * 1024);
  expect(pool.give(pool.take(1_000_000))).toBe(false); // larger than the bound: left to the collector
  expect(pool.take(10).buffer.byteLength).toBe(64 * 1024); // a smaller class does not take b
  expect(pool.reused).toBe(1);
  // Past the bound, the block idle longest (b) makes room.
  const c = pool.take(3 * 64 * 1024);
  expect(pool.give(c)).toBe(true);
  expect(pool.idleBytes).toBe(3 * 64 * 1024);
  expect(pool.take(100_000).buffer).not.toBe(b.buffer);
  expect(pool.take(3 * 64 * 1024).buffer).toBe(c.buffer);
});

test("a pooled DRAM store reuses a freed extent's memory only once every read of it has been released", async () => {
  const pool = new BufferPool(64 * 1024 * 1024);
  const store = new DramStore(64 * 1024 * 1024, 100, pool);
  const first = pool.take(300_000).fill(1);
  await store.write("j", "e1", first, true);
  const r1 = await store.read("j", "e1", 0, undefined);
  const r2 = await store.read("j", "e1", 10, 100);
  expect(r1.bytes.buffer).toBe(first.buffer);
  expect(store.readsOut).toBe(2);
  await store.free("j", ["e1"]);
  // Freed while two reads are out: a new extent of the same size gets other memory, and the reads still see their bytes.
  await store.write("j", "e2", Buffer.alloc(300_000, 2));
  expect((await store.read("j", "e2", 0, undefined)).bytes.buffer).not.toBe(first.buffer);
  r1.release!();
  r1.release!(); // a second call is nothing
  expect(pool.take(300_000).buffer).not.toBe(first.buffer);
  expect(r2.bytes.every((x) => x === 1)).toBe(true);
  r2.release!();
  // The last read released: the memory is reused.
  await store.write("j", "e3", Buffer.alloc(300_000, 3));
  const r3 = await store.read("j", "e3", 0, undefined);
  expect(r3.bytes.buffer).toBe(first.buffer);
  expect(r3.bytes.every((x) => x === 3)).toBe(true);
});
