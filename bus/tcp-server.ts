import net from "node:net";
import tls from "node:tls";
import { ErrorCode, InvalidArgumentError, toWireError } from "../schemas/errors";
import { decodeJson, encodeJson } from "./body";
import { FrameWriter } from "./frame-writer";
import { FrameDecoder, FrameError, FrameKind, frameBytes, FrameReader, readScratchBytes, type Frame } from "./frame";
import { helloFrameBytesMax, parseAuth, parseHello, signHello, TransportAuth, TransportHello, type TransportIdentity } from "./handshake";
import { InflightBudget, type BudgetMember } from "./inflight-budget";
import { Transport, type DispatchResult, type Router } from "./router";

/** Checks a client's credential from its `transport.auth`; throws (`UnauthorizedError`) to refuse it. */
export type Authenticate = (token: string) => void | Promise<void>;

export interface TcpServerOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** Largest frame accepted once a client has authenticated; a larger declared length closes the connection. */
  readonly frameBytesMax: number;
  /** Who this server is; its signature answers every hello. */
  readonly identity: TransportIdentity;
  /** Checks the token of each `transport.auth` before anything else is read from that connection. */
  readonly authenticate: Authenticate;
  /** Largest declared frame length until authentication succeeds. */
  readonly preAuthFrameBytesMax?: number;
  /** Time a new connection has to complete its hello and authentication (on a TLS port, and as long again for the TLS handshake before them). */
  readonly helloTimeoutMs?: number;
  /** Serve TLS only, with this certificate and private key (PEM); the hello and auth rounds run inside it. */
  readonly tls?: { readonly cert: string; readonly key: string } | undefined;
  /** Bytes of partial frames and of requests being handled, over all connections; reading pauses past it. */
  readonly inflightBytesMax?: number;
  /** Time a frame that has started arriving has to complete, while the server is reading it. */
  readonly frameTimeoutMs?: number;
  /** Requests one connection may have in flight before the server stops reading from it. */
  readonly inflightPerConnectionMax?: number;
  /** Reply bytes queued on a socket before the server stops reading from it. */
  readonly writeBufferBytesMax?: number;
  readonly connectionsMax?: number;
  /** Makes the buffer of its own that a large request frame gets (default: a new one each time). */
  readonly allocLargeFrame?: (size: number) => Buffer;
}

export interface TcpServerStats {
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Connections closed for breaking the protocol, failing the TLS handshake, the hello or authentication, or timing out. */
  readonly protocolErrors: number;
  /** Bytes held now: partial frames in decoders plus requests waiting or being handled (whole frames). */
  readonly inflightBytes: number;
  /** Connections open now, handshakes in progress included (TLS handshakes not yet). */
  readonly connections: number;
  /** Request frames being handled or waiting for a connection's in-flight window, now. */
  readonly inflightFrames: number;
}

/**
 * Largest chunk one socket read delivers outside an admitted frame (a plain
 * socket reads into the server's scratch buffer, a TLS socket gives libuv's
 * 64 KiB reads): the most a connection can add past what the budget admitted
 * before it is paused.
 */
const readChunkBytesMax = readScratchBytes;

type Options = Required<Omit<TcpServerOptions, "tls" | "allocLargeFrame">> & Pick<TcpServerOptions, "tls" | "allocLargeFrame">;

/**
 * Serves a router's operations on the direct TCP transport (over TLS when
 * given a certificate): a signed hello and then the client's token first
 * (see handshake.ts), then pipelined frames, bounded in flight per connection
 * and in bytes per server, backpressure by pausing reads.
 *
 * @example
 *   const server = await TcpServer.listen(router, { frameBytesMax: 1 << 20, identity, authenticate: (t) => tokens.verifyJob(t) });
 *   const secure = await TcpServer.listen(router, { frameBytesMax: 1 << 20, identity, authenticate, tls: { cert, key } });
 */
export class TcpServer {
  readonly #server: net.Server;
  readonly #connections = new Set<ServerConnection>();
  /** Every accepted socket, TLS handshakes in progress included, so that close ends them all at once. */
  readonly #sockets = new Set<net.Socket>();
  readonly #budget: InflightBudget;
  readonly #stats = { bytesIn: 0, bytesOut: 0, protocolErrors: 0 };
  readonly #options: Options;

  private constructor(router: Router, options: Options) {
    this.#options = options;
    this.#budget = new InflightBudget(options.inflightBytesMax, readChunkBytesMax);
    // One scratch buffer for every plain connection's reads: each read is copied out of it in the same turn.
    const context: ConnectionContext = { router, options, budget: this.#budget, stats: this.#stats, scratch: Buffer.allocUnsafeSlow(readScratchBytes) };
    const serve = (c: ServerConnection): void => {
      this.#connections.add(c);
      c.socket.on("close", () => this.#connections.delete(c));
    };
    if (options.tls) {
      this.#server = tls.createServer({ cert: options.tls.cert, key: options.tls.key, handshakeTimeout: options.helloTimeoutMs, noDelay: true },
        (socket) => serve(ServerConnection.overChunks(context, socket)));
      this.#server.on("connection", (raw: net.Socket) => {
        if (!this.#refusedAtCapacity(raw)) this.#track(raw);
      });
      // A handshake that fails or times out (Node closes the socket) is a protocol error like any other.
      this.#server.on("tlsClientError", () => { this.#stats.protocolErrors++; });
    } else {
      this.#server = net.createServer({ noDelay: true, pauseOnConnect: true }, (raw) => {
        if (this.#refusedAtCapacity(raw)) return;
        const c = ServerConnection.inPlace(context, raw);
        this.#track(c.socket);
        serve(c);
      });
    }
  }

  /** Closes a socket just accepted if `connectionsMax` are open already; true if it did. */
  #refusedAtCapacity(raw: net.Socket): boolean {
    if (this.#sockets.size < this.#options.connectionsMax) return false;
    raw.destroy();
    return true;
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  static async listen(router: Router, options: TcpServerOptions): Promise<TcpServer> {
    const full: Options = {
      host: "127.0.0.1",
      port: 0,
      preAuthFrameBytesMax: helloFrameBytesMax,
      helloTimeoutMs: 5_000,
      inflightBytesMax: 256 * 1024 * 1024,
      frameTimeoutMs: 30_000,
      inflightPerConnectionMax: 64,
      writeBufferBytesMax: 16 * 1024 * 1024,
      connectionsMax: 4096,
      ...options,
    };
    if (full.inflightBytesMax < 4 + full.frameBytesMax + readChunkBytesMax) {
      throw new InvalidArgumentError(`inflightBytesMax ${full.inflightBytesMax} cannot hold one frame of ${full.frameBytesMax} bytes and one read chunk`);
    }
    const s = new TcpServer(router, full);
    await new Promise<void>((resolve, reject) => {
      s.#server.once("error", reject);
      s.#server.listen(full.port, full.host, () => {
        s.#server.off("error", reject);
        resolve();
      });
    });
    return s;
  }

  /** host:port clients connect to. */
  get address(): string {
    const a = this.#server.address() as net.AddressInfo;
    return `${a.address}:${a.port}`;
  }

  /** Counters since start, and what is held now (for heartbeats and metrics): a pass over the open connections. */
  get stats(): TcpServerStats {
    let inflightFrames = 0;
    for (const c of this.#connections) inflightFrames += c.requests;
    return { ...this.#stats, inflightBytes: this.#budget.heldBytes, connections: this.#connections.size, inflightFrames };
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const c of this.#connections) c.destroy();
    for (const raw of this.#sockets) raw.destroy();
    await closed;
  }
}

interface ConnectionContext {
  readonly router: Router;
  readonly options: Options;
  readonly budget: InflightBudget;
  readonly stats: { bytesIn: number; bytesOut: number; protocolErrors: number };
  /** Where plain sockets read between large frames (see FrameReaderOptions.scratch). */
  readonly scratch: Buffer;
}

const Phase = {
  /** Waiting for `transport.hello`. */
  Hello: "hello",
  /** The hello was answered; waiting for `transport.auth`. */
  Auth: "auth",
  /** Checking the token; nothing more is read meanwhile. */
  Authenticating: "authenticating",
  Open: "open",
  Closed: "closed",
} as const;
type Phase = (typeof Phase)[keyof typeof Phase];

/** One client connection: the hello, the token, then requests; reads only while its window, write buffer and the budget allow. */
class ServerConnection implements BudgetMember {
  #phase: Phase = Phase.Hello;
  /** The token this connection authenticated with: requests that name none are its job's. */
  #sessionToken: string | undefined;
  /** Frames are put together here; on a plain socket reads land in it (a large frame's rest straight into its own buffer). */
  #reader: FrameReader;
  #socket!: net.Socket;
  /** Replies leave through it, a tick's worth in one write. */
  #writer!: FrameWriter;
  /** Reads land in place (plain TCP); false: the socket gives chunks (TLS). */
  readonly #inPlace: boolean;
  #inflight = 0;
  /** Frames of the last chunk beyond the in-flight window; reading is paused meanwhile, so at most one chunk's frames. */
  readonly #waiting: Frame[] = [];
  /** Bytes of the frames in `#waiting` and being handled. */
  #handledBytes = 0;
  #helloTimer: NodeJS.Timeout | undefined;
  #frameTimer: NodeJS.Timeout | undefined;

  /** A connection over a socket that gives chunks (a TLS socket). */
  static overChunks(ctx: ConnectionContext, socket: net.Socket): ServerConnection {
    const c = new ServerConnection(ctx, false);
    socket.on("data", (chunk: Buffer) => c.#received(chunk.byteLength, chunk, false));
    c.#attach(socket);
    return c;
  }

  /**
   * A connection over an accepted plain socket (paused on connect), read in
   * place: Node offers `onread` only to sockets it connects, so the accepted
   * socket's handle moves to a new socket made with it; `raw` is then closed
   * without its handle (which also releases the server's count of it). Where
   * this Node's socket has no handle to move, `raw` is read in chunks.
   */
  static inPlace(ctx: ConnectionContext, raw: net.Socket): ServerConnection {
    const holder = raw as unknown as { _handle: unknown };
    const handle = holder._handle;
    if (typeof handle !== "object" || handle === null || typeof (handle as { readStart?: unknown }).readStart !== "function") {
      return ServerConnection.overChunks(ctx, raw);
    }
    const c = new ServerConnection(ctx, true);
    holder._handle = null;
    raw.destroy();
    const reader = (n: number, into: Uint8Array): boolean => {
      c.#received(n, into as Buffer, true);
      return true;
    };
    c.#attach(new net.Socket({ handle, onread: { buffer: () => c.#reader.target(), callback: reader } } as net.SocketConstructorOpts));
    return c;
  }

  private constructor(private readonly ctx: ConnectionContext, inPlace: boolean) {
    this.#inPlace = inPlace;
    this.#reader = this.#newReader(ctx.options.preAuthFrameBytesMax);
  }

  #newReader(frameBytesMax: number): FrameReader {
    return new FrameReader(new FrameDecoder(frameBytesMax, this.ctx.options.allocLargeFrame), { scratch: this.ctx.scratch, claimLargeAtOnce: false });
  }

  #attach(socket: net.Socket): void {
    this.#socket = socket;
    this.#writer = new FrameWriter(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const ms = this.ctx.options.helloTimeoutMs;
    this.#helloTimer = setTimeout(() => this.#protocolError(ErrorCode.Timeout, `the hello and authentication did not complete within ${ms} ms`), ms);
    socket.on("drain", () => this.#refresh(false));
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.#shutdown());
    this.#refresh(false);
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** Requests being handled or waiting for the in-flight window. */
  get requests(): number {
    return this.#inflight + this.#waiting.length;
  }

  /** The budget has room for this connection again. */
  wake(): void {
    this.#refresh(false);
  }

  /** The budget is full: stop reading until `wake`. */
  pauseForBudget(): void {
    this.#socket.pause();
    this.#stopFrameTimer();
  }

  /** `n` bytes arrived: read into `bytes` where the reader asked (`inPlace`), or a chunk of them as the socket gave it. */
  #received(n: number, bytes: Buffer, inPlace: boolean): void {
    if (this.#phase === Phase.Closed) return;
    this.ctx.stats.bytesIn += n;
    let frames: Frame[];
    try {
      frames = inPlace ? this.#reader.landed(n, bytes) : this.#reader.decoder.push(bytes);
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      this.#protocolError(e.code, e.message);
      return;
    }
    for (const frame of frames) {
      if (!this.#take(frame)) return;
    }
    this.#refresh(frames.length > 0);
  }

  /** Handles one decoded frame; false if it closed the connection. */
  #take(frame: Frame): boolean {
    if (frame.kind !== FrameKind.Request) {
      this.#protocolError(ErrorCode.InvalidArgument, `clients send request frames only (got kind ${frame.kind})`);
    } else if (this.#phase === Phase.Hello) {
      this.#hello(frame);
    } else if (this.#phase === Phase.Auth) {
      this.#auth(frame);
    } else if (this.#phase === Phase.Authenticating) {
      this.#protocolError(ErrorCode.Unauthorized, `a request before authentication succeeded`);
    } else {
      this.#handledBytes += frameBytes(frame);
      this.#run(frame);
    }
    return this.#phase !== Phase.Closed;
  }

  /** Round 1: answers a well-formed hello with this server's signature over its nonce. */
  #hello(frame: Frame): void {
    const hello = this.#handshakeMessage(frame, TransportHello.name, parseHello, "the first frame must be");
    if (hello === undefined) return;
    this.#phase = Phase.Auth;
    this.#send(FrameKind.Reply, frame.requestId, encodeJson(signHello(this.ctx.options.identity, hello.nonce)));
  }

  /** Round 2: checks the client's token; reading stops until that is done. */
  #auth(frame: Frame): void {
    const auth = this.#handshakeMessage(frame, TransportAuth.name, parseAuth, "after the hello comes");
    if (auth === undefined) return;
    this.#phase = Phase.Authenticating;
    void this.#authenticate(frame.requestId, auth.token);
  }

  /**
   * The handshake message `frame` must be (operation `name`, JSON meta, no
   * payload), or undefined once the connection is closed for it: another
   * operation is Unauthorized, a malformed message InvalidArgument.
   */
  #handshakeMessage<M>(frame: Frame, name: string, parse: (value: unknown) => M | string, expected: string): M | undefined {
    if (frame.name !== name) {
      this.#protocolError(ErrorCode.Unauthorized, `${expected} ${name}, not ${JSON.stringify(frame.name)}`);
      return undefined;
    }
    const message = frame.payload === undefined ? parseMeta(frame.meta, parse) : `${name} takes no payload`;
    if (typeof message === "string") {
      this.#protocolError(ErrorCode.InvalidArgument, message, frame.requestId);
      return undefined;
    }
    return message;
  }

  async #authenticate(requestId: number, token: string): Promise<void> {
    try {
      await this.ctx.options.authenticate(token);
    } catch (e) {
      const { code, message } = toWireError(e);
      if (this.#phase === Phase.Authenticating) this.#protocolError(code, message, requestId);
      return;
    }
    if (this.#phase !== Phase.Authenticating) return;
    clearTimeout(this.#helloTimer);
    this.#sessionToken = token;
    this.#phase = Phase.Open;
    this.#reader.decoder.raiseLimit(this.ctx.options.frameBytesMax);
    this.#send(FrameKind.Reply, requestId, encodeJson({}));
    this.#refresh(false);
  }

  #run(frame: Frame): void {
    if (this.#inflight >= this.ctx.options.inflightPerConnectionMax) {
      this.#waiting.push(frame);
      return;
    }
    this.#inflight++;
    const bytes = frameBytes(frame);
    void this.ctx.router.dispatch(frame.name, frame.meta, frame.payload, Transport.Tcp, { payloadOwned: frame.owned === true, sessionToken: this.#sessionToken })
      .then((result) => this.#done(frame.requestId, bytes, result));
  }

  #done(requestId: number, bytes: number, result: DispatchResult): void {
    if (this.#phase === Phase.Closed) {
      // What it held was released at close.
      if (result.ok) result.release?.();
      return;
    }
    this.#inflight--;
    this.#handledBytes -= bytes;
    if (result.ok) this.#send(FrameKind.Reply, requestId, result.meta, result.payload, result.release);
    else this.#send(FrameKind.Error, requestId, encodeJson({ code: result.code, message: result.message }));
    const next = this.#waiting.shift();
    if (next) this.#run(next);
    this.#refresh(false);
  }

  /** Reports what this connection holds to the budget, then reads or pauses accordingly. */
  #refresh(frameDone: boolean): void {
    if (this.#phase === Phase.Closed) return;
    const o = this.ctx.options;
    const open = this.#phase === Phase.Open;
    const peerNotReading = this.#socket.writableLength >= o.writeBufferBytesMax;
    const blocked = this.#phase === Phase.Authenticating || peerNotReading
      || this.#inflight >= o.inflightPerConnectionMax || this.#waiting.length > 0;
    const partial = this.#reader.heldBytes;
    const mayRead = this.ctx.budget.report(this, {
      heldBytes: this.#handledBytes + partial,
      handledBytes: this.#handledBytes,
      nextFrameBytes: open ? this.#reader.partialFrameBytes : 0,
      frameDone,
      blocked,
      gated: open,
    });
    if (mayRead) {
      // Admitted: a large frame in progress gets its whole buffer now, and its rest is read into it.
      if (this.#inPlace && open) this.#reader.claimLarge();
      this.#socket.resume();
    } else {
      this.#socket.pause();
    }
    // A frame is timed while the server reads it, or while the peer holds it up by not reading its replies;
    // not while it waits for the budget or for this server's handlers.
    const timed = open && partial > 0 && (mayRead || peerNotReading);
    if (!timed || frameDone) this.#stopFrameTimer();
    if (timed && this.#frameTimer === undefined) {
      const ms = o.frameTimeoutMs;
      this.#frameTimer = setTimeout(() => this.#protocolError(ErrorCode.Timeout, `a frame did not complete within ${ms} ms`), ms);
    }
  }

  #stopFrameTimer(): void {
    clearTimeout(this.#frameTimer);
    this.#frameTimer = undefined;
  }

  /** `release` is called once the payload has left (or never will): the callback of the socket's write of it. */
  #send(kind: FrameKind, id: number, meta: Uint8Array, payload?: Uint8Array, release?: () => void): void {
    if (this.#socket.destroyed || this.#socket.writableEnded) {
      release?.();
      return;
    }
    this.ctx.stats.bytesOut += this.#writer.write(kind, id, "", meta, payload, release);
  }

  /** Tells the peer why (`requestId` 0: the connection, else its hello or auth) and closes. */
  #protocolError(code: ErrorCode, message: string, requestId = 0): void {
    if (this.#phase === Phase.Closed) return;
    this.ctx.stats.protocolErrors++;
    this.#shutdown();
    this.#send(FrameKind.Error, requestId, encodeJson({ code, message }));
    this.#writer.flush();
    this.#socket.end();
    // Read on, discarding (`#onData` ignores a closed connection), so the peer's close is seen at once and frees the slot;
    // a peer that neither reads its error nor closes is cut off after a few seconds.
    this.#socket.once("end", () => this.#socket.destroy());
    this.#socket.resume();
    setTimeout(() => this.#socket.destroy(), 5_000).unref();
  }

  /** Stops reading and releases everything this connection held, at once. */
  #shutdown(): void {
    if (this.#phase === Phase.Closed) return;
    this.#phase = Phase.Closed;
    this.#socket.pause();
    clearTimeout(this.#helloTimer);
    this.#stopFrameTimer();
    this.#waiting.length = 0;
    this.#reader = this.#newReader(0);
    this.ctx.budget.leave(this);
  }
}

/** The handshake message a frame's meta holds, or why it is not one. */
function parseMeta<M>(meta: Uint8Array, parse: (value: unknown) => M | string): M | string {
  try {
    return parse(decodeJson(meta));
  } catch (e) {
    if (e instanceof InvalidArgumentError) return e.message;
    throw e;
  }
}

