import net from "node:net";
import { FrameDecoder, FrameKind, type Frame } from "../../bus/frame";
import { FrameWriter, framesPerBatchMax, inlinePayloadBytesMax } from "../../bus/frame-writer";

/** A connected pair of loopback sockets: `a` writes, `b`'s bytes are decoded into `frames`. */
async function socketPair(): Promise<{ a: net.Socket; frames: Frame[]; arrived: (n: number) => Promise<void>; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  const a = net.connect({ port, host: "127.0.0.1", noDelay: true });
  await new Promise<void>((resolve) => a.once("connect", resolve));
  const b = await accepted;
  const decoder = new FrameDecoder(8 * 1024 * 1024);
  const frames: Frame[] = [];
  let waiter: { n: number; resolve: () => void } | undefined;
  b.on("data", (chunk: Buffer) => {
    frames.push(...decoder.push(chunk));
    if (waiter && frames.length >= waiter.n) waiter.resolve();
  });
  const arrived = (n: number): Promise<void> => (frames.length >= n ? Promise.resolve() : new Promise((resolve) => { waiter = { n, resolve }; }));
  return { a, frames, arrived, close: () => { a.destroy(); b.destroy(); server.close(); } };
}

/** Runs `body` with a socket pair and a writer on its sending end; closes the pair whatever happens. */
async function withPair(body: (pair: Awaited<ReturnType<typeof socketPair>>, w: FrameWriter) => Promise<void>): Promise<void> {
  const pair = await socketPair();
  try {
    await body(pair, new FrameWriter(pair.a));
  } finally {
    pair.close();
  }
}

const bytes = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

test("frames of every size arrive whole and in the order written: small ones batched, large payloads and metas on their own", async () => {
  await withPair(async (pair, w) => {
    const sent: Array<{ id: number; name: string; meta: Buffer; payload: Buffer | undefined }> = [];
    const sizes = [0, 1, 1000, inlinePayloadBytesMax, inlinePayloadBytesMax + 1, 1024 * 1024, 3, 70 * 1024];
    sizes.forEach((n, i) => {
      // One meta larger than a batch buffer (70 KiB), the rest small.
      const meta = bytes(i === 2 ? 70 * 1024 : 20 + i, i);
      const payload = n === 0 ? undefined : bytes(n, i + 100);
      sent.push({ id: i + 1, name: i % 2 === 0 ? "object.get" : "", meta, payload });
      w.write(i % 2 === 0 ? FrameKind.Request : FrameKind.Reply, i + 1, sent[i]!.name, meta, payload);
  });
  await pair.arrived(sent.length);
  expect(pair.frames.map((f) => f.requestId)).toEqual(sent.map((s) => s.id));
  pair.frames.forEach((f, i) => {
    expect(f.name).toBe(sent[i]!.name);
    expect(Buffer.from(f.meta).equals(sent[i]!.meta)).toBe(true);
    expect(Buffer.from(f.payload ?? new Uint8Array(0)).equals(sent[i]!.payload ?? Buffer.alloc(0))).toBe(true);
  });
  });
});

test("small frames written in one tick leave together, a batch at most framesPerBatchMax frames", async () => {
  await withPair(async (pair, w) => {
    const n = framesPerBatchMax * 3 + 5;
    for (let i = 0; i < n; i++) w.write(FrameKind.Request, i + 1, "object.get", bytes(40, i));
    // Three full batches went to the socket at once; the last five wait for the end of the tick.
    expect(w.pendingBytes).toBeGreaterThan(0);
    expect(pair.a.bytesWritten).toBeGreaterThan(0);
    await pair.arrived(n);
    expect(w.pendingBytes).toBe(0);
    expect(pair.frames.map((f) => f.requestId)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  });
});

test("an inline payload is released at once (it was copied); a large one once the socket has written it", async () => {
  await withPair(async (pair, w) => {
    const releases: string[] = [];
    const small = bytes(100, 1);
    w.write(FrameKind.Reply, 1, "", bytes(10, 2), small, () => releases.push("small"));
    expect(releases).toEqual(["small"]);
    // What was copied is what leaves, whatever the caller does to its buffer afterwards.
    small.fill(0);
    const large = bytes(inlinePayloadBytesMax * 4, 3);
    const left = new Promise<void>((resolve) => w.write(FrameKind.Reply, 2, "", bytes(10, 4), large, () => { releases.push("large"); resolve(); }));
    await left;
    expect(releases).toEqual(["small", "large"]);
    await pair.arrived(2);
    expect(Buffer.from(pair.frames[0]!.payload!).equals(bytes(100, 1))).toBe(true);
    expect(Buffer.from(pair.frames[1]!.payload!).equals(large)).toBe(true);
  });
});

test("flush hands the batch over now, so a frame written before the socket ends is not lost", async () => {
  await withPair(async (pair, w) => {
    w.write(FrameKind.Error, 0, "", Buffer.from('{"code":"InvalidArgument","message":"bye"}'));
    w.flush();
    pair.a.end();
    await pair.arrived(1);
    expect(pair.frames[0]!.kind).toBe(FrameKind.Error);
  });
});
