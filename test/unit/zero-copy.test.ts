import { encodeFrame, FrameDecoder, FrameKind, ownedFrameBytesMin } from "../../bus/frame";
import { DramStore } from "../../actors/storage/dram-store";

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
  expect((await store.read("j", "owned", 0, undefined)).buffer).toBe(given.buffer);
  const lent = Buffer.alloc(200_000, 4);
  await store.write("j", "lent", lent, false);
  const kept = await store.read("j", "lent", 0, undefined);
  expect(kept.buffer).not.toBe(lent.buffer);
  lent.fill(0);
  expect(kept[0]).toBe(4);
});
