import net from "node:net";
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import { ErrorCode, NodeUnavailableError, UnauthorizedError } from "../../schemas/errors";
import { decodeJson, encodeJson } from "../../bus/body";
import { encodeFrame, FrameDecoder, FrameKind, type Frame } from "../../bus/frame";
import { helloMessage, newHello, newTransportIdentity, TransportAuth, TransportHello, verifyHello } from "../../bus/handshake";
import { PeerIdentityError, TcpPool } from "../../bus/tcp-client";
import { CancelGroup } from "../../bus/caller";
import { BusyError } from "../../schemas/errors";
import { TcpServer, type TcpServerOptions } from "../../bus/tcp-server";
import { WithPayload } from "../../bus/router";
import { Echo, echoServer, goodToken, type EchoServer } from "../harness/echo";

const KiB = 1024;
const MiB = 1024 * KiB;
/** The most one socket read delivers: the slack the budget allows itself. */
const readChunkBytes = 64 * KiB;

type Served = EchoServer;

async function serve(options: Partial<TcpServerOptions> = {}): Promise<Served> {
  return echoServer(options);
}

/** Rejects if `p` has not settled within `ms`. */
async function within<R>(ms: number, what: string, p: Promise<R>): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` until it holds, failing after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  await within(ms, what, (async () => {
    while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2));
  })());
}

/** Samples `server.stats.inflightBytes` every millisecond; `stop` returns the largest value seen. */
function sampleInflight(server: TcpServer): { stop(): number } {
  let max = 0;
  const timer = setInterval(() => { max = Math.max(max, server.stats.inflightBytes); }, 1);
  return { stop: () => { clearInterval(timer); return Math.max(max, server.stats.inflightBytes); } };
}

function requestFrame(id: number, name: string, meta: unknown, payload?: Uint8Array): Buffer {
  const [head, body] = encodeFrame(FrameKind.Request, id, name, encodeJson(meta), payload);
  return body ? Buffer.concat([head, body]) : head;
}

const errorOf = (f: Frame): { code: string; message: string } => decodeJson(f.meta) as { code: string; message: string };

/** A raw socket that records every frame it receives and whether it was closed. */
class RawPeer {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  error: Error | undefined;
  #isClosed = false;
  readonly #decoder = new FrameDecoder(64 * MiB);

  private constructor(readonly socket: net.Socket) {
    this.closed = new Promise((resolve) => socket.once("close", () => { this.#isClosed = true; resolve(); }));
    socket.on("data", (d: Buffer) => this.frames.push(...this.#decoder.push(d)));
    // A reset after the server closes is expected; the close event follows.
    socket.on("error", (e) => { this.error = e; });
  }

  static async open(addr: string): Promise<RawPeer> {
    const i = addr.lastIndexOf(":");
    const socket = net.connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) });
    await within(5_000, "connect", new Promise((resolve) => socket.once("connect", resolve)));
    return new RawPeer(socket);
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Writes and resolves once the bytes have left this process. */
  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  async frame(n: number): Promise<Frame> {
    await until(() => this.frames.length >= n, 5_000, `frame ${n}`);
    return this.frames[n - 1]!;
  }

  /** Says hello (request id 1) and returns the server's answer. */
  async hello(): Promise<Frame> {
    await this.write(requestFrame(1, TransportHello.name, newHello()));
    return this.frame(1);
  }

  /** Says hello, then authenticates with `token` (request id 2) whatever the hello's answer; returns the auth's answer. */
  async handshake(token: string): Promise<Frame> {
    await this.hello();
    await this.write(requestFrame(2, TransportAuth.name, { token }));
    return this.frame(2);
  }

  /** Waits for the server to close the connection. */
  async closedByServer(ms = 5_000): Promise<void> {
    await within(ms, "close by the server", this.closed);
  }
}

interface Impostor {
  readonly server: net.Server;
  readonly addr: string;
  /** Frames it received, and every byte. */
  readonly received: Frame[];
  readonly bytes: Buffer[];
  readonly closed: Promise<void>;
}

/** A process at an address that answers hellos as `id`, signing with `key`, accepts any token, and records what it receives. */
async function impostor(id: string, key: KeyObject): Promise<Impostor> {
  const received: Frame[] = [];
  const bytes: Buffer[] = [];
  let closedResolve!: () => void;
  const closed = new Promise<void>((resolve) => { closedResolve = resolve; });
  const server = net.createServer((socket) => {
    const decoder = new FrameDecoder(64 * MiB);
    socket.on("data", (d: Buffer) => {
      bytes.push(d);
      for (const f of decoder.push(d)) {
        received.push(f);
        if (f.name === TransportHello.name) {
          const { nonce } = decodeJson(f.meta) as { nonce: string };
          const reply = { v: 1, id, sig: sign(null, helloMessage(id, nonce), key).toString("base64url") };
          socket.write(encodeFrame(FrameKind.Reply, f.requestId, "", encodeJson(reply))[0]);
        } else if (f.name === TransportAuth.name) {
          socket.write(encodeFrame(FrameKind.Reply, f.requestId, "", encodeJson({}))[0]);
        }
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => closedResolve());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, received, bytes, closed };
}

describe("identity", () => {
  let s: Served;
  let pool: TcpPool;
  beforeAll(async () => { s = await serve(); });
  afterAll(async () => { await s.server.close(); });
  beforeEach(() => { pool = new TcpPool({ connectTimeoutMs: 3_000 }); });
  afterEach(() => pool.close());

  test("the right id and key talk; a wrong key or a wrong id gets PeerIdentityError and sends no request", async () => {
    const payload = randomBytes(100_000);
    const ok = await pool.caller(s.server.address, s.peer, goodToken).call(Echo, { n: 7 }, { payload });
    expect(ok.reply).toEqual({ n: 7, bytes: payload.byteLength });
    expect(Buffer.from(ok.payload!).equals(payload)).toBe(true);
    expect(s.calls.n).toBe(1);

    const otherKey = newTransportIdentity("node-a").publicKey;
    const wrongKey = pool.caller(s.server.address, { id: "node-a", key: otherKey }, goodToken).call(Echo, { n: 8 }, { payload });
    await expect(wrongKey).rejects.toBeInstanceOf(PeerIdentityError);
    await expect(wrongKey).rejects.toBeInstanceOf(NodeUnavailableError);
    await expect(wrongKey).rejects.toThrow(otherKey);
    const wrongId = pool.caller(s.server.address, { id: "node-b", key: s.peer.key }, goodToken).call(Echo, { n: 9 }, { payload });
    await expect(wrongId).rejects.toBeInstanceOf(PeerIdentityError);
    await expect(wrongId).rejects.toThrow(/"node-b"/);

    // The connection proved with the right key is still the one used, and the server ran only its requests.
    await pool.caller(s.server.address, s.peer, goodToken).call(Echo, { n: 10 });
    expect(s.calls.n).toBe(2);
    expect(s.server.stats.protocolErrors).toBe(0);
  });

  test("a server signing with another key is refused and gets nothing beyond the hello: no token", async () => {
    const other = generateKeyPairSync("ed25519").privateKey;
    const fake = await impostor("node-a", other);
    try {
      const call = pool.caller(fake.addr, s.peer, goodToken).call(Echo, { n: 1 }, { payload: Buffer.alloc(1000, 1) });
      await expect(call).rejects.toBeInstanceOf(PeerIdentityError);
      await within(5_000, "client hang-up", fake.closed);
      expect(fake.received.map((f) => f.name)).toEqual([TransportHello.name]);
      expect(fake.received[0]!.payload).toBeUndefined();
      expect(Object.keys(decodeJson(fake.received[0]!.meta) as object).sort()).toEqual(["nonce", "v"]);
      const wire = Buffer.concat(fake.bytes);
      expect(wire.byteLength).toBe(requestFrame(1, TransportHello.name, newHello()).byteLength);
      expect(wire.includes(goodToken)).toBe(false);
    } finally {
      fake.server.close();
    }
  });

  test("the same impostor signing with the expected key is believed (the refusal above is the key's doing)", async () => {
    const fake = await impostor("node-a", s.identity.privateKey);
    try {
      const call = pool.caller(fake.addr, s.peer, goodToken).call(Echo, { n: 1 }, { timeoutMs: 5_000 });
      await until(() => fake.received.length === 3, 5_000, "auth and request after the hello");
      expect(fake.received.map((f) => f.name)).toEqual([TransportHello.name, TransportAuth.name, Echo.name]);
      expect(decodeJson(fake.received[1]!.meta)).toEqual({ token: goodToken });
      pool.close();
      await expect(call).rejects.toBeInstanceOf(NodeUnavailableError);
    } finally {
      fake.server.close();
    }
  });

  test("verifyHello checks the id, the key and the nonce", () => {
    const hello = newHello();
    const sig = (nonce: string) => sign(null, helloMessage("node-a", nonce), s.identity.privateKey).toString("base64url");
    expect(verifyHello(s.peer, hello.nonce, { v: 1, id: "node-a", sig: sig(hello.nonce) })).toEqual({ ok: true });
    expect(verifyHello(s.peer, hello.nonce, { v: 1, id: "node-a", sig: sig(newHello().nonce) }).ok).toBe(false);
    expect(verifyHello({ id: "node-b", key: s.peer.key }, hello.nonce, { v: 1, id: "node-a", sig: sig(hello.nonce) }).ok).toBe(false);
    expect(verifyHello(s.peer, hello.nonce, { v: 1, id: "node-a" }).ok).toBe(false);
  });

  test("the handshake frames are laid out byte for byte as handshake.ts documents them", () => {
    const nonce = "N".repeat(43);
    const hello = Buffer.concat([
      Buffer.from([0x00, 0x00, 0x00, 0x56, 0x01, 0x00, 0x00, 0x00, 0x01, 0x0f]), Buffer.from("transport.hello", "latin1"),
      Buffer.from([0x00, 0x00, 0x00, 0x3d]), Buffer.from(`{"v":1,"nonce":"${nonce}"}`, "utf8"),
    ]);
    expect(hello.byteLength).toBe(90);
    expect(requestFrame(1, TransportHello.name, { v: 1, nonce })).toEqual(hello);
    const meta = `{"token":"${goodToken}"}`;
    expect(meta.length).toBe(12 + goodToken.length);
    const auth = Buffer.concat([
      Buffer.from([0x00, 0x00, 0x00, 10 + 14 + meta.length, 0x01, 0x00, 0x00, 0x00, 0x02, 0x0e]), Buffer.from("transport.auth", "latin1"),
      Buffer.from([0x00, 0x00, 0x00, meta.length]), Buffer.from(meta, "utf8"),
    ]);
    expect(requestFrame(2, TransportAuth.name, { token: goodToken })).toEqual(auth);
  });

  test("the hello is answered with a signature before any token is asked for", async () => {
    const peer = await RawPeer.open(s.server.address);
    const hello = newHello();
    await peer.write(requestFrame(7, TransportHello.name, hello));
    const answer = await peer.frame(1);
    expect(answer.kind).toBe(FrameKind.Reply);
    expect(answer.requestId).toBe(7);
    expect(verifyHello(s.peer, hello.nonce, decodeJson(answer.meta))).toEqual({ ok: true });
    await peer.write(requestFrame(8, TransportAuth.name, { token: goodToken }));
    const auth = await peer.frame(2);
    expect([auth.kind, auth.requestId, decodeJson(auth.meta)]).toEqual([FrameKind.Reply, 8, {}]);
    await peer.write(requestFrame(9, Echo.name, { n: 4 }));
    expect(decodeJson((await peer.frame(3)).meta)).toEqual({ n: 4, bytes: 0 });
    peer.socket.destroy();
  });
});

describe("before authentication", () => {
  let s: Served;
  beforeAll(async () => { s = await serve({ helloTimeoutMs: 300 }); });
  afterAll(async () => { await s.server.close(); });

  test("a request frame before the hello closes the connection with Unauthorized", async () => {
    const peer = await RawPeer.open(s.server.address);
    await peer.write(requestFrame(1, Echo.name, { n: 1 }, Buffer.from("x")));
    expect(errorOf(await peer.frame(1)).code).toBe(ErrorCode.Unauthorized);
    await peer.closedByServer();
    expect(s.calls.n).toBe(0);
  });

  test("a request between the hello and the auth, or sent along with the auth before its answer, closes with Unauthorized and is not run", async () => {
    const early = await RawPeer.open(s.server.address);
    await early.write(Buffer.concat([requestFrame(1, TransportHello.name, newHello()), requestFrame(2, Echo.name, { n: 1 })]));
    await early.closedByServer();
    expect(early.frames.map((f) => f.kind)).toEqual([FrameKind.Reply, FrameKind.Error]);
    expect(errorOf(early.frames[1]!).code).toBe(ErrorCode.Unauthorized);

    const eager = await RawPeer.open(s.server.address);
    await eager.hello();
    await eager.write(Buffer.concat([requestFrame(2, TransportAuth.name, { token: goodToken }), requestFrame(3, Echo.name, { n: 1 })]));
    await eager.closedByServer();
    expect(eager.frames.map((f) => f.kind)).toEqual([FrameKind.Reply, FrameKind.Error]);
    expect(errorOf(eager.frames[1]!).code).toBe(ErrorCode.Unauthorized);
    expect(s.calls.n).toBe(0);
  });

  test("an auth before the hello, a second hello, and a hello carrying a token are refused", async () => {
    const authFirst = await RawPeer.open(s.server.address);
    await authFirst.write(requestFrame(1, TransportAuth.name, { token: goodToken }));
    expect(errorOf(await authFirst.frame(1)).code).toBe(ErrorCode.Unauthorized);
    await authFirst.closedByServer();

    const twice = await RawPeer.open(s.server.address);
    expect((await twice.hello()).kind).toBe(FrameKind.Reply);
    await twice.write(requestFrame(2, TransportHello.name, newHello()));
    expect(errorOf(await twice.frame(2)).code).toBe(ErrorCode.Unauthorized);
    await twice.closedByServer();

    // The one-round hello of earlier clients gets no signature, so such a client sends nothing more.
    const old = await RawPeer.open(s.server.address);
    await old.write(requestFrame(1, TransportHello.name, { ...newHello(), token: goodToken }));
    const refused = await old.frame(1);
    expect([refused.kind, refused.requestId, errorOf(refused).code]).toEqual([FrameKind.Error, 1, ErrorCode.InvalidArgument]);
    await old.closedByServer();
  });

  test("a malformed auth gets InvalidArgument with its request id", async () => {
    const cases: Array<[unknown, Buffer | undefined]> = [
      [{ token: "" }, undefined], [{ token: goodToken, v: 1 }, undefined], [{ token: goodToken }, Buffer.from("x")], ["token", undefined],
    ];
    for (const [meta, payload] of cases) {
      const peer = await RawPeer.open(s.server.address);
      await peer.hello();
      await peer.write(requestFrame(5, TransportAuth.name, meta, payload));
      const answer = await peer.frame(2);
      expect([answer.kind, answer.requestId, errorOf(answer).code]).toEqual([FrameKind.Error, 5, ErrorCode.InvalidArgument]);
      await peer.closedByServer();
    }
  });

  test("a bad token closes the connection with Unauthorized", async () => {
    const peer = await RawPeer.open(s.server.address);
    const answer = await peer.handshake("forged");
    expect([answer.kind, answer.requestId, errorOf(answer).code]).toEqual([FrameKind.Error, 2, ErrorCode.Unauthorized]);
    await peer.closedByServer();
    const pool = new TcpPool();
    try {
      await expect(pool.caller(s.server.address, s.peer, "forged").call(Echo, { n: 1 })).rejects.toBeInstanceOf(UnauthorizedError);
    } finally {
      pool.close();
    }
    expect(s.calls.n).toBe(0);
  });

  test("a frame declaring more than 4 KiB closes with TooLarge without being buffered, before the hello and before the auth", async () => {
    const cases: Array<[number, boolean]> = [[4097, false], [MiB, false], [4097, true], [MiB, true]];
    for (const [declared, afterHello] of cases) {
      const peer = await RawPeer.open(s.server.address);
      if (afterHello) expect((await peer.hello()).kind).toBe(FrameKind.Reply);
      const sampler = sampleInflight(s.server);
      const head = Buffer.alloc(4);
      head.writeUInt32BE(declared, 0);
      peer.socket.write(head);
      for (let i = 0; i < 16; i++) peer.socket.write(Buffer.alloc(64 * KiB, 1));
      await peer.closedByServer();
      expect(sampler.stop()).toBeLessThanOrEqual(8 * KiB);
      expect(peer.frames).toHaveLength(afterHello ? 2 : 1);
      expect(errorOf(peer.frames.at(-1)!).code).toBe(ErrorCode.TooLarge);
    }
  });

  test("helloTimeoutMs covers both rounds: a connection that says hello and never authenticates is closed; one that did is not", async () => {
    const polite = await RawPeer.open(s.server.address);
    const silent = await RawPeer.open(s.server.address);
    const halfway = await RawPeer.open(s.server.address);
    expect((await polite.handshake(goodToken)).kind).toBe(FrameKind.Reply);
    expect((await halfway.hello()).kind).toBe(FrameKind.Reply);
    await silent.closedByServer(5_000);
    await halfway.closedByServer(5_000);
    expect(errorOf(silent.frames[0]!).code).toBe(ErrorCode.Timeout);
    expect(errorOf(halfway.frames[1]!).code).toBe(ErrorCode.Timeout);
    expect(polite.isClosed).toBe(false);
    await polite.write(requestFrame(3, Echo.name, { n: 3 }));
    expect(decodeJson((await polite.frame(3)).meta)).toEqual({ n: 3, bytes: 0 });
    polite.socket.destroy();
  });
});

describe("in-flight budget", () => {
  const budget = 8 * MiB;
  const connections = 64;
  const frame = requestFrame(1, Echo.name, { n: 1 }, Buffer.alloc(MiB, 2));
  const half = frame.subarray(0, frame.byteLength >> 1);
  const helloBytes = connections * (requestFrame(1, TransportHello.name, newHello()).byteLength + requestFrame(2, TransportAuth.name, { token: goodToken }).byteLength);

  /** `connections` authenticated peers, each sending the first half of a 1 MiB frame. */
  async function holders(server: TcpServer): Promise<RawPeer[]> {
    const peers: RawPeer[] = [];
    for (let i = 0; i < connections; i++) {
      const p = await RawPeer.open(server.address);
      expect((await p.handshake(goodToken)).kind).toBe(FrameKind.Reply);
      peers.push(p);
    }
    for (const p of peers) void p.write(half);
    return peers;
  }

  test("partial frames stay within the budget and are released when their sockets close", async () => {
    const s = await serve({ inflightBytesMax: budget });
    try {
      const sampler = sampleInflight(s.server);
      const peers = await holders(s.server);
      await until(() => s.server.stats.inflightBytes >= 2 * MiB, 10_000, "partial frames held");
      // No frame can complete, so every byte read so far is still held.
      expect(s.server.stats.bytesIn - helloBytes).toBeLessThanOrEqual(budget + readChunkBytes);
      // A reset, so the server cannot simply read the rest of each frame to free it.
      for (const p of peers) p.socket.resetAndDestroy();
      await until(() => s.server.stats.inflightBytes === 0, 5_000, "budget released");
      expect(sampler.stop()).toBeLessThanOrEqual(budget + readChunkBytes);
      expect(s.server.stats.bytesIn).toBeLessThan(connections * half.byteLength);
      expect(s.calls.n).toBe(0);
    } finally {
      await s.server.close();
    }
  });

  test("frames waiting for the budget, holding all of it between them, are still admitted one by one", async () => {
    const frameBytesMax = MiB + 64 * KiB;
    // The least budget allowed: one largest frame plus one read chunk. A largest frame fits only when nothing else is held.
    const s = await serve({ frameBytesMax, inflightBytesMax: 4 + frameBytesMax + readChunkBytes });
    try {
      const small = requestFrame(1, Echo.name, { n: 1 }, Buffer.alloc(1000, 1));
      const bare = requestFrame(2, Echo.name, { n: 2 }).byteLength;
      const largest = requestFrame(2, Echo.name, { n: 2 }, randomBytes(frameBytesMax + 4 - bare));
      expect(largest.byteLength).toBe(frameBytesMax + 4);
      const peers: RawPeer[] = [];
      for (let i = 0; i < 3; i++) {
        const p = await RawPeer.open(s.server.address);
        expect((await p.handshake(goodToken)).kind).toBe(FrameKind.Reply);
        peers.push(p);
      }
      // Each starts a small frame (admitted), then finishes it and runs on into a largest one in the same write:
      // each ends up waiting with part of its largest frame read, which only the others' waiting bytes keep out.
      for (const p of peers) await p.write(small.subarray(0, 500));
      await until(() => s.server.stats.inflightBytes >= 3 * 500, 5_000, "small frames started");
      for (const p of peers) void p.write(Buffer.concat([small.subarray(500), largest]));
      for (const p of peers) {
        const replies = [await p.frame(3), await p.frame(4)];
        const big = replies.find((f) => f.requestId === 2)!;
        expect(Buffer.from(big.payload!).equals(largest.subarray(bare))).toBe(true);
        p.socket.destroy();
      }
      await until(() => s.server.stats.inflightBytes === 0, 5_000, "budget released");
    } finally {
      await s.server.close();
    }
  });

  test("held partial frames are dropped after frameTimeoutMs, every waiting connection gets its turn, and a fresh one works", async () => {
    const s = await serve({ inflightBytesMax: budget, frameTimeoutMs: 300 });
    try {
      const sampler = sampleInflight(s.server);
      const peers = await holders(s.server);
      await within(30_000, "all held frames timed out", Promise.all(peers.map((p) => p.closed)));
      const max = sampler.stop();
      expect(max).toBeLessThanOrEqual(budget + readChunkBytes);
      expect(max).toBeGreaterThanOrEqual(2 * MiB);
      // Every connection was read in the end: those paused for the budget were resumed.
      expect(s.server.stats.bytesIn).toBeGreaterThanOrEqual(connections * half.byteLength);
      for (const p of peers) expect(errorOf(p.frames[2]!).code).toBe(ErrorCode.Timeout);
      expect(s.server.stats.inflightBytes).toBe(0);

      const pool = new TcpPool();
      try {
        const payload = randomBytes(MiB);
        const r = await pool.caller(s.server.address, s.peer, goodToken).call(Echo, { n: 2 }, { payload });
        expect(r.reply).toEqual({ n: 2, bytes: MiB });
        expect(Buffer.from(r.payload!).equals(payload)).toBe(true);
      } finally {
        pool.close();
      }
    } finally {
      await s.server.close();
    }
  });
});

test("a reply's payload is let go once the socket has sent all of it, or has been destroyed with it unsent, not before", async () => {
  // More than the two sockets' kernel buffers hold: a peer that does not read leaves most of it waiting in the server.
  const big = Buffer.alloc(32 * MiB, 5);
  let released = 0;
  const s = await echoServer({}, "node-a", (n) => new WithPayload({ n, bytes: big.byteLength }, big, () => { released++; }));
  try {
    for (const [i, finish] of [[1, "read"], [2, "destroy"]] as const) {
      const p = await RawPeer.open(s.server.address);
      await p.handshake(goodToken);
      p.socket.pause();
      const sentBefore = s.server.stats.bytesOut;
      await p.write(requestFrame(3, Echo.name, { n: i }));
      await until(() => s.server.stats.bytesOut >= sentBefore + big.byteLength, 5_000, "the reply handed to the socket");
      // The server has gone on serving others since, and the payload is still held.
      const bystander = await RawPeer.open(s.server.address);
      await within(5_000, "a bystander's hello", bystander.hello());
      bystander.socket.destroy();
      expect(released).toBe(i - 1);
      if (finish === "read") {
        p.socket.resume();
        const reply = await within(10_000, "the whole reply", (async () => { await until(() => p.frames.length >= 3, 10_000, "reply"); return p.frames[2]!; })());
        expect(Buffer.from(reply.payload!).equals(big)).toBe(true);
      } else {
        p.socket.destroy();
      }
      await until(() => released === i, 5_000, `payload ${i} let go`);
    }
  } finally {
    await s.server.close();
  }
});

test("past connectionsMax an accepted connection is closed at once, and one that closes makes room", async () => {
  const s = await serve({ connectionsMax: 2 });
  const peers: RawPeer[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const p = await RawPeer.open(s.server.address);
      peers.push(p);
      expect((await p.handshake(goodToken)).kind).toBe(FrameKind.Reply);
    }
    const third = await RawPeer.open(s.server.address);
    peers.push(third);
    await third.closedByServer();
    expect(third.frames).toEqual([]);
    peers[0]!.socket.destroy();
    await until(() => s.server.stats.connections === 1, 5_000, "the first connection's close seen");
    const next = await RawPeer.open(s.server.address);
    peers.push(next);
    expect((await next.handshake(goodToken)).kind).toBe(FrameKind.Reply);
  } finally {
    for (const p of peers) p.socket.destroy();
    await s.server.close();
  }
});

test("requests past a connection's window wait in order, up to waitersMax; a cancelled one is never sent; a failed connection rejects the rest", async () => {
  const held: Array<() => void> = [];
  const seen: number[] = [];
  const s = await echoServer({}, "node-a", (n) => {
    seen.push(n);
    return new Promise((resolve) => held.push(() => resolve(new WithPayload({ n, bytes: 0 }, new Uint8Array(0)))));
  });
  const pool = new TcpPool({ inflightMax: 2, waitersMax: 3 });
  try {
    const caller = pool.caller(s.server.address, s.peer, goodToken);
    // The connection open first (requests made during its handshake wait too, and would fill the queue).
    const opening = caller.call(Echo, { n: 0 });
    await until(() => seen.length === 1, 5_000, "the first request at the server");
    held.shift()!();
    expect((await opening).reply.n).toBe(0);
    seen.length = 0;
    const group = new CancelGroup();
    const calls = [1, 2, 3, 4, 5].map((n) => caller.call(Echo, { n }, n === 4 ? { cancel: group } : {}));
    const outcomes = calls.map((c) => c.then((r) => r.reply.n, (e: Error) => e));
    await until(() => seen.length === 2, 5_000, "the first two requests at the server");
    const connection = pool.connection(s.server.address, s.peer, goodToken);
    expect(connection.inflight).toBe(2);
    expect(connection.queued).toBe(3);
    // Past waitersMax: Busy at once, nothing sent.
    await expect(caller.call(Echo, { n: 6 })).rejects.toBeInstanceOf(BusyError);
    const reason = new Error("called off");
    group.cancel(reason);
    expect(await outcomes[3]).toBe(reason);
    expect(connection.queued).toBe(2);
    // Each reply lets the next waiting request go, in order; the cancelled one never does.
    held.shift()!();
    await until(() => seen.length === 3, 5_000, "request 3 sent");
    held.shift()!();
    await until(() => seen.length === 4, 5_000, "request 5 sent");
    expect(seen).toEqual([1, 2, 3, 5]);
    expect(await outcomes[0]).toBe(1);
    expect(await outcomes[1]).toBe(2);
    // One more waits; then the server goes away: what is in flight and what waits both fail.
    const late = caller.call(Echo, { n: 7 }).then(() => "answered", (e: Error) => e.name);
    await until(() => connection.queued === 1, 5_000, "request 7 queued");
    await s.server.close();
    expect(await late).not.toBe("answered");
    expect(await outcomes[2]).toBeInstanceOf(Error);
    expect(await outcomes[4]).toBeInstanceOf(Error);
  } finally {
    for (const release of held) release();
    pool.close();
    await s.server.close();
  }
});
