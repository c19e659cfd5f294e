import { ErrorCode } from "../../schemas/errors";
import { AssertionError } from "../../lib/assert";
import { encodeFrame, FrameDecoder, FrameError, FrameKind, frameBytes, FrameReader, ownedFrameBytesMin, readScratchBytes, type Frame } from "../../bus/frame";

function frame(id: number, name: string, meta: object, payload?: Buffer): Buffer {
  const [head, body] = encodeFrame(FrameKind.Request, id, name, Buffer.from(JSON.stringify(meta)), payload);
  return body ? Buffer.concat([head, body]) : head;
}

test("frames survive any split into chunks", () => {
  const payload = Buffer.alloc(10_000, 7);
  const stream = Buffer.concat([frame(1, "a.b", { x: 1 }), frame(2, "c", {}, payload), frame(3, "d", { y: "z" })]);
  for (const step of [1, 3, 7, 64, 4096, stream.length]) {
    const d = new FrameDecoder(1 << 20);
    const got = [];
    for (let i = 0; i < stream.length; i += step) got.push(...d.push(stream.subarray(i, i + step)));
    expect(got.map((f) => f.requestId)).toEqual([1, 2, 3]);
    expect(got.map((f) => f.name)).toEqual(["a.b", "c", "d"]);
    expect(Buffer.from(got[1]!.payload!).equals(payload)).toBe(true);
    expect(got[0]!.payload).toBeUndefined();
    expect(JSON.parse(Buffer.from(got[2]!.meta).toString())).toEqual({ y: "z" });
    expect(d.bufferedBytes).toBe(0);
  }
});

test("an oversized declared length is refused before its bytes arrive", () => {
  const d = new FrameDecoder(1000);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(1001, 0);
  let err: unknown;
  try { d.push(head); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(FrameError);
  expect((err as FrameError).code).toBe(ErrorCode.TooLarge);
});

test("malformed headers are FrameErrors", () => {
  const f = frame(1, "x", {});
  const badKind = Buffer.from(f);
  badKind.writeUInt8(0, 4);
  expect(() => new FrameDecoder(1000).push(badKind)).toThrow(FrameError);
  const badMeta = Buffer.from(f);
  badMeta.writeUInt32BE(9999, 11);
  expect(() => new FrameDecoder(1000).push(badMeta)).toThrow(FrameError);
  const tiny = Buffer.alloc(6);
  tiny.writeUInt32BE(2, 0);
  expect(() => new FrameDecoder(1000).push(tiny)).toThrow(FrameError);
});

test("the limit can be raised after a handshake, never lowered", () => {
  const f = frame(1, "x", {}, Buffer.alloc(5000, 1));
  expect(() => new FrameDecoder(4096).push(f)).toThrow(FrameError);
  const d = new FrameDecoder(4096);
  d.raiseLimit(1 << 20);
  d.raiseLimit(100);
  expect(d.frameBytesMax).toBe(1 << 20);
  expect(d.push(f)).toHaveLength(1);
});

test("the size of a partial frame is known once its length field has arrived", () => {
  const f = frame(1, "a.b", { x: 1 }, Buffer.alloc(1000, 3));
  const d = new FrameDecoder(1 << 20);
  expect(d.partialFrameBytes).toBe(0);
  d.push(f.subarray(0, 3));
  expect(d.partialFrameBytes).toBe(0);
  d.push(f.subarray(3, 500));
  expect(d.partialFrameBytes).toBe(f.byteLength);
  const [whole] = d.push(f.subarray(500));
  expect(d.partialFrameBytes).toBe(0);
  expect(frameBytes(whole!)).toBe(f.byteLength);
});

test("a frame our own code gets wrong is an assertion: an unknown kind, a request id outside 32 bits", () => {
  const meta = Buffer.from("{}");
  expect(() => encodeFrame(9 as FrameKind, 1, "x", meta)).toThrow(AssertionError);
  expect(() => encodeFrame(FrameKind.Request, -1, "x", meta)).toThrow(AssertionError);
  expect(() => encodeFrame(FrameKind.Request, 2 ** 32, "x", meta)).toThrow(AssertionError);
  expect(() => encodeFrame(FrameKind.Request, 1.5, "x", meta)).toThrow(AssertionError);
  expect(() => encodeFrame(FrameKind.Reply, 0xffff_ffff, "", meta)).not.toThrow();
  // A name too long stays the typed error it was.
  expect(() => encodeFrame(FrameKind.Request, 1, "n".repeat(65), meta)).toThrow(FrameError);
});

test("corrupted bytes from a peer are FrameErrors, never assertions", () => {
  const good = Buffer.concat([frame(1, "a.b", { x: 1 }, Buffer.alloc(300, 5)), frame(2, "c", {}), frame(3, "d.e.f", { y: "z" }, Buffer.alloc(20, 1))]);
  let x = 12345;
  const rand = (n: number): number => { x = (x * 1103515245 + 12345) >>> 0; return x % n; };
  const kinds = new Map<string, number>();
  for (let round = 0; round < 2000; round++) {
    const bytes = Buffer.from(good);
    for (let k = 1 + rand(4); k > 0; k--) bytes[rand(bytes.length)] = rand(256);
    const d = new FrameDecoder(4096);
    let outcome = "ok";
    try {
      for (let i = 0; i < bytes.length; i += 1 + rand(64)) d.push(bytes.subarray(i, i + 1 + rand(64)));
    } catch (e) {
      outcome = e instanceof FrameError ? "FrameError" : `${(e as Error).name}: ${(e as Error).message}`;
    }
    kinds.set(outcome, (kinds.get(outcome) ?? 0) + 1);
  }
  expect([...kinds.keys()].filter((k) => k !== "ok" && k !== "FrameError")).toEqual([]);
  expect(kinds.get("FrameError")).toBeGreaterThan(100); // the corruption did reach the checks
});


/** Reads `stream` through a FrameReader as a socket would: each read takes at most `readMax` bytes into the reader's target. */
function readThrough(stream: Buffer, readMax: (i: number) => number): { frames: Frame[]; inPlaceReads: number; reads: number } {
  const reader = new FrameReader(new FrameDecoder(1 << 22));
  const frames: Frame[] = [];
  let inPlaceReads = 0;
  let reads = 0;
  for (let at = 0; at < stream.length; reads++) {
    const target = reader.target();
    if (target.byteLength !== readScratchBytes) inPlaceReads++;
    const n = Math.min(target.byteLength, readMax(reads), stream.length - at);
    stream.copy(target, 0, at, at + n);
    at += n;
    frames.push(...reader.landed(n, target));
  }
  expect(reader.bufferedBytes).toBe(0);
  return { frames, inPlaceReads, reads };
}

test("a frame reader puts frames together from reads of any size, the rest of a large one read straight into its own buffer", () => {
  const big = Buffer.alloc(3 * ownedFrameBytesMin + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const small = Buffer.alloc(100, 9);
  const stream = Buffer.concat([frame(1, "a", { x: 1 }, small), frame(2, "b", {}, big), frame(3, "c", { y: 2 }), frame(4, "d", {}, big), frame(5, "e", {}, small)]);
  for (const readMax of [() => 1, () => 7, () => 4096, () => readScratchBytes, (i: number) => 1 + ((i * 7919) % 70_000)]) {
    const { frames, inPlaceReads } = readThrough(stream, readMax);
    expect(frames.map((f) => f.requestId)).toEqual([1, 2, 3, 4, 5]);
    expect(Buffer.from(frames[1]!.payload!).equals(big)).toBe(true);
    expect(Buffer.from(frames[3]!.payload!).equals(big)).toBe(true);
    expect(Buffer.from(frames[4]!.payload!).equals(small)).toBe(true);
    expect(JSON.parse(Buffer.from(frames[2]!.meta).toString())).toEqual({ y: 2 });
    // The large frames are their own buffers, exactly their size, and most of their bytes were read in place.
    for (const f of [frames[1]!, frames[3]!]) {
      expect(f.owned).toBe(true);
      expect(f.payload!.buffer.byteLength).toBe(frameBytes(f));
    }
    expect(inPlaceReads).toBeGreaterThan(0);
  }
});

test("what a frame reader hands out does not change when its scratch buffer is read into again", () => {
  const stream = Buffer.concat(Array.from({ length: 50 }, (_, i) => frame(i + 1, "x", { i }, Buffer.alloc(200, i))));
  const { frames } = readThrough(stream, () => 1000);
  expect(frames.map((f) => JSON.parse(Buffer.from(f.meta).toString()).i)).toEqual([...Array(50).keys()]);
  frames.forEach((f, i) => expect(Buffer.from(f.payload!).equals(Buffer.alloc(200, i))).toBe(true));
});

test("a reader that claims large frames when told holds only what has arrived until then, and takes reads into the scratch buffer after a claim", () => {
  const big = Buffer.alloc(2 * ownedFrameBytesMin + 5);
  for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
  const stream = Buffer.concat([frame(1, "w", { a: 1 }, big), frame(2, "s", {}, Buffer.alloc(10, 4))]);
  const scratch = Buffer.alloc(readScratchBytes);
  const reader = new FrameReader(new FrameDecoder(1 << 22), { scratch, claimLargeAtOnce: false });
  let at = 0;
  const read = (max: number, into = reader.target()): Frame[] => {
    const n = Math.min(into.byteLength, max, stream.length - at);
    stream.copy(into, 0, at, at + n);
    at += n;
    return reader.landed(n, into);
  };
  expect(read(1000)).toEqual([]);
  // Not claimed: reads still go to the scratch buffer, and only the bytes that came are held.
  expect(reader.target()).toBe(scratch);
  expect(reader.heldBytes).toBe(1000);
  expect(reader.partialFrameBytes).toBe(frameBytes({ kind: 1, requestId: 1, name: "w", meta: Buffer.from(JSON.stringify({ a: 1 })), payload: big }));
  reader.claimLarge();
  expect(reader.heldBytes).toBe(reader.partialFrameBytes);
  expect(reader.bufferedBytes).toBe(1000);
  // A read that the socket had already aimed at the scratch buffer lands there; then reads go in place.
  expect(read(5000, scratch)).toEqual([]);
  expect(reader.target()).not.toBe(scratch);
  const frames: Frame[] = [];
  while (at < stream.length) frames.push(...read(readScratchBytes));
  expect(frames.map((f) => f.requestId)).toEqual([1, 2]);
  expect(Buffer.from(frames[0]!.payload!).equals(big)).toBe(true);
  expect(frames[0]!.owned).toBe(true);
  expect(Buffer.from(frames[1]!.payload!).equals(Buffer.alloc(10, 4))).toBe(true);
  expect(reader.heldBytes).toBe(0);
});

test("a scratch read that completes a claimed frame hands the bytes after it to the next frames", () => {
  const big = Buffer.alloc(ownedFrameBytesMin + 3, 7);
  const stream = Buffer.concat([frame(1, "w", {}, big), frame(2, "a", { i: 2 }), frame(3, "b", { i: 3 })]);
  const scratch = Buffer.alloc(readScratchBytes);
  const reader = new FrameReader(new FrameDecoder(1 << 22), { scratch, claimLargeAtOnce: false });
  stream.copy(scratch, 0, 0, 100);
  expect(reader.landed(100, scratch)).toEqual([]);
  reader.claimLarge();
  // The rest of the stream arrives in one read into the scratch buffer.
  const rest = stream.length - 100;
  stream.copy(scratch, 0, 100);
  const frames = reader.landed(rest, scratch);
  expect(frames.map((f) => f.requestId)).toEqual([1, 2, 3]);
  expect(Buffer.from(frames[0]!.payload!).equals(big)).toBe(true);
  expect(reader.heldBytes).toBe(0);
});
