import net from "node:net";
import tls from "node:tls";
import type { Operation, RequestOf } from "../schemas/operation";
import { BusyError, errorFromWire, InternalError, InvalidArgumentError, NodeUnavailableError, TimeoutError } from "../schemas/errors";
import { decodeJson, decodeReplyMeta, encodeJson, encodeRequestMeta } from "./body";
import { abortReason, CancelGroup, type Caller, type CallOptions, type CallResult, type Cancellable, type CancelHook } from "./caller";
import { encodeFrame, FrameDecoder, FrameError, FrameKind, FrameReader, type Frame } from "./frame";
import { helloFrameBytesMax, isAuthReply, isTransportKey, newHello, TransportAuth, TransportHello, verifyHello, type HelloRequest, type PeerIdentity } from "./handshake";
import { FrameWriter } from "./frame-writer";
import { looksLikeTls, tlsCaHint, tlsFailure } from "./tls";

export interface TcpClientOptions {
  /** Requests in flight on one connection; more wait for a slot. */
  readonly inflightMax?: number;
  /** Callers waiting for a slot on one connection (or for its handshake); more get `Busy`. */
  readonly waitersMax?: number;
  readonly frameBytesMax?: number;
  /** Time to connect and complete the handshake (TLS, hello and authentication). */
  readonly connectTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** Open connections kept by a pool; the least recently opened idle one is closed past it. */
  readonly connectionsMax?: number;
  /**
   * Connect over TLS, verifying the server's certificate with this CA (PEM)
   * and against the address's host (an IP address or a DNS name).
   */
  readonly tls?: { readonly ca: string } | undefined;
}

type Options = Required<Omit<TcpClientOptions, "tls">> & Pick<TcpClientOptions, "tls">;

const defaults: Options = {
  inflightMax: 64,
  waitersMax: 4096,
  connectionsMax: 1024,
  frameBytesMax: 72 * 1024 * 1024,
  connectTimeoutMs: 3_000,
  requestTimeoutMs: 30_000,
};

/** How often a connection with requests in flight looks for expired ones: a request times out at most this late. */
const deadlineSweepMs = 100;

/** The connection could not be opened: the request was never sent, so any request may be retried elsewhere. */
export class ConnectFailedError extends NodeUnavailableError {}

/**
 * The process at an address did not prove it is the server the caller
 * expected there (wrong id, a signature by another key, or no proof). Nothing
 * but the hello was sent to it, no token; like any `ConnectFailedError` the
 * request may be retried once the address has been looked up again.
 */
export class PeerIdentityError extends ConnectFailedError {}

/**
 * An open connection failed or closed with the request on it: it may or may
 * not have been carried out, so it is not retried; the address may be stale.
 */
export class ConnectionLostError extends NodeUnavailableError {}

/** Error codes a server may answer a hello with; any other answer to a hello is no proof of identity. */
const helloRefusals = new Set<string>(TransportHello.errors);

/**
 * A request in flight: settled by its reply, its deadline, the connection's
 * failure, or its call's cancel hook (one object per request, which is also
 * what joins the hook: no closure per request).
 */
class Pending implements Cancellable {
  constructor(
    readonly id: number,
    readonly resolve: (frame: Frame) => void,
    readonly reject: (e: Error) => void,
    /** When the caller stops waiting (Date.now() ms); the connection's sweep rejects it then. */
    readonly deadlineMs: number,
    readonly timeoutMs: number,
    readonly name: string,
    readonly hook: CancelHook | undefined,
    /** Frees the request's slot when it is cancelled (its connection's, made once per connection). */
    private readonly release: (p: Pending) => void,
  ) {}

  cancel(reason: Error): void {
    this.release(this);
    this.reject(reason);
  }
}

/** A request waiting for a slot or for the handshake: sent from the queue when one frees, or rejected. */
class Queued implements Cancellable {
  constructor(
    readonly name: string,
    readonly meta: Uint8Array,
    readonly payload: Uint8Array | undefined,
    readonly timeoutMs: number,
    readonly hook: CancelHook | undefined,
    readonly resolve: (frame: Frame) => void,
    readonly reject: (e: Error) => void,
    /** Takes it out of its connection's queue when it is cancelled. */
    private readonly leave: (q: Queued) => void,
  ) {}

  cancel(reason: Error): void {
    this.leave(this);
    this.reject(reason);
  }
}

const Stage = {
  /** TCP (and TLS) connecting. */
  Connecting: "connecting",
  /** The hello is out; the server has not proved who it is yet. */
  Hello: "hello",
  /** The server proved it; the token is out. */
  Auth: "auth",
  /** Authenticated: requests flow. */
  Open: "open",
} as const;
type Stage = (typeof Stage)[keyof typeof Stage];

/**
 * One pipelined connection to a direct-transport server. The token goes out
 * only once the server has proved who it is; requests wait until it has
 * accepted the token.
 */
export class TcpConnection {
  readonly #socket: net.Socket;
  /** Requests leave through it, a tick's worth in one write. */
  readonly #writer: FrameWriter;
  readonly #decoder = new FrameDecoder(helloFrameBytesMax);
  /** Plain TCP reads through it: a large reply lands straight in a buffer of its own (TLS sockets give chunks instead). */
  readonly #reader = new FrameReader(this.#decoder);
  readonly #pending = new Map<number, Pending>();
  #sweep: NodeJS.Timeout | undefined;
  /** Requests waiting for a slot (or the handshake), first come first sent. */
  readonly #queue: Queued[] = [];
  readonly #hello: HelloRequest = newHello();
  readonly #helloId = 1;
  readonly #authId = 2;
  readonly #helloTimer: NodeJS.Timeout;
  #nextId = 3;
  #stage: Stage = Stage.Connecting;
  #closedError: Error | undefined;

  constructor(readonly addr: string, readonly peer: PeerIdentity, readonly token: string, private readonly options: Options) {
    const { host, port } = parseAddr(addr);
    const secure = options.tls !== undefined;
    this.#socket = options.tls
      // SNI takes DNS names only; an IP address is checked against the certificate's IP entries all the same.
      ? tls.connect({ host, port, ca: options.tls.ca, ...(net.isIP(host) === 0 ? { servername: host } : {}) })
      : net.connect({
        host, port, noDelay: true,
        onread: { buffer: () => this.#reader.target(), callback: (n: number, into: Uint8Array) => { this.#onRead(n, into as Buffer); return true; } },
      });
    this.#socket.setNoDelay(true);
    this.#writer = new FrameWriter(this.#socket);
    this.#helloTimer = setTimeout(() => {
      this.#fail(new ConnectFailedError(`connect and handshake with ${addr} did not complete within ${options.connectTimeoutMs} ms`));
    }, options.connectTimeoutMs);
    this.#socket.once(secure ? "secureConnect" : "connect", () => {
      this.#stage = Stage.Hello;
      this.#write(this.#helloId, TransportHello.name, this.#hello);
    });
    if (secure) this.#socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on("error", (e) => {
      if (this.#stage === Stage.Open) this.#fail(new ConnectionLostError(`connection to ${addr} failed: ${e.message}`, { cause: e }));
      else this.#fail(new ConnectFailedError(`connection to ${addr} failed: ${tlsFailure(e) ?? e.message}`, { cause: e }));
    });
    this.#socket.on("close", () => {
      if (this.#stage === Stage.Open) this.#fail(new ConnectionLostError(`connection to ${addr} closed`));
      else if (this.#stage === Stage.Hello && !secure && this.#socket.bytesRead === 0) {
        // A TLS port drops a plain hello without a word.
        this.#fail(new ConnectFailedError(`connection to ${addr} closed with no answer to the hello; if it serves TLS, ${tlsCaHint}`));
      } else this.#fail(new ConnectFailedError(`connection to ${addr} closed${this.#stage === Stage.Connecting ? "" : " before the handshake completed"}`));
    });
  }

  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  get inflight(): number {
    return this.#pending.size;
  }

  /** Requests waiting for a slot or for the handshake. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Sends one request and resolves with its reply frame (an error frame
   * rejects). Once `cancel` fires, a request still waiting for a slot is not
   * sent, and one in flight frees its slot and its reply is dropped.
   */
  request(name: string, meta: Uint8Array, payload: Uint8Array | undefined, timeoutMs: number, cancel?: CancelHook): Promise<Frame> {
    // A free slot on an open connection: sent now, with no await (and no promise) before it goes.
    if (cancel?.reason !== undefined) return Promise.reject(cancel.reason);
    if (this.#closedError) return Promise.reject(this.#closedError);
    if (this.#stage !== Stage.Open || this.#pending.size >= this.options.inflightMax) {
      if (this.#queue.length >= this.options.waitersMax) return Promise.reject(new BusyError(`more than ${this.options.waitersMax} requests queued for ${this.addr}`));
      return new Promise<Frame>((resolve, reject) => {
        const q = new Queued(name, meta, payload, timeoutMs, cancel, resolve, reject, this.#unqueue);
        this.#queue.push(q);
        cancel?.join(q);
      });
    }
    return new Promise<Frame>((resolve, reject) => this.#send(name, meta, payload, timeoutMs, cancel, resolve, reject));
  }

  /** Writes one request in a free slot; `resolve` gets its reply frame. Throws (nothing sent) if it cannot be framed. */
  #send(name: string, meta: Uint8Array, payload: Uint8Array | undefined, timeoutMs: number, cancel: CancelHook | undefined,
    resolve: (frame: Frame) => void, reject: (e: Error) => void): void {
    const id = this.#nextId;
    this.#writer.write(FrameKind.Request, id, name, meta, payload);
    this.#nextId = this.#nextId >= 0xffff_ffff ? 3 : this.#nextId + 1;
    const pending = new Pending(id, resolve, reject, Date.now() + timeoutMs, timeoutMs, name, cancel, this.#release);
    this.#pending.set(id, pending);
    cancel?.join(pending);
    this.#sweep ??= setInterval(() => this.#expire(), deadlineSweepMs);
  }

  close(): void {
    this.#fail(new NodeUnavailableError(`connection to ${this.addr} closed by the client`));
  }

  /** A request cancelled while it waits leaves the queue. */
  readonly #unqueue = (q: Queued): void => {
    const i = this.#queue.indexOf(q);
    if (i >= 0) this.#queue.splice(i, 1);
  };

  /** A cancelled request gives up its slot (to the next caller) and its reply is dropped. */
  readonly #release = (p: Pending): void => {
    if (this.#pending.get(p.id) !== p) return;
    this.#pending.delete(p.id);
    this.#wake();
  };

  #write(id: number, name: string, meta: unknown): void {
    this.#socket.write(encodeFrame(FrameKind.Request, id, name, encodeJson(meta))[0]);
  }

  /** A plain socket's read: `n` bytes landed in `into` (what the reader asked for). */
  #onRead(n: number, into: Buffer): void {
    if (this.#stage === Stage.Hello && this.#answeredInTls(into.subarray(0, n))) return;
    let frames: Frame[];
    try {
      frames = this.#reader.landed(n, into);
    } catch (e) {
      this.#badFrame(e);
      return;
    }
    this.#onFrames(frames);
  }

  /** A TLS socket's chunk. */
  #onData(chunk: Buffer): void {
    if (this.#stage === Stage.Hello && this.#answeredInTls(chunk)) return;
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (e) {
      this.#badFrame(e);
      return;
    }
    this.#onFrames(frames);
  }

  /** The first bytes of a plain connection are a TLS record: the port serves TLS (the connection fails, saying so). */
  #answeredInTls(bytes: Buffer): boolean {
    if (this.#reader.bufferedBytes !== 0 || !looksLikeTls(bytes)) return false;
    this.#fail(new ConnectFailedError(`${this.addr} answered in TLS: it serves the direct transport over TLS only; ${tlsCaHint}`));
    return true;
  }

  #badFrame(e: unknown): void {
    const why = `bad frame from ${this.addr}: ${e instanceof FrameError ? e.message : String(e)}`;
    this.#fail(this.#stage === Stage.Open ? new InternalError(why) : this.#stage === Stage.Hello ? this.#notThePeer(why) : new ConnectFailedError(why));
  }

  #onFrames(frames: readonly Frame[]): void {
    for (const frame of frames) {
      if (this.#stage === Stage.Hello) this.#onHelloReply(frame);
      else if (this.#stage === Stage.Auth) this.#onAuthReply(frame);
      else this.#onReply(frame);
      if (this.#closedError) return;
    }
  }

  /** Round 1: checks the server's proof of identity; only then does the token go out. */
  #onHelloReply(frame: Frame): void {
    const meta = jsonOrUndefined(frame.meta);
    if (frame.kind === FrameKind.Error && (frame.requestId === this.#helloId || frame.requestId === 0)) {
      const { code, message } = (meta ?? {}) as { code?: unknown; message?: unknown };
      if (typeof code === "string" && helloRefusals.has(code)) {
        this.#fail(errorFromWire(code, `${this.addr} refused the hello: ${String(message)}`));
      } else this.#fail(this.#notThePeer(`it answered the hello with an error ${JSON.stringify(String(code)).slice(0, 80)}`));
      return;
    }
    if (frame.kind !== FrameKind.Reply || frame.requestId !== this.#helloId) {
      this.#fail(this.#notThePeer("it sent a frame other than the hello reply"));
      return;
    }
    const check = verifyHello(this.peer, this.#hello.nonce, meta);
    if (!check.ok) {
      this.#fail(this.#notThePeer(check.reason));
      return;
    }
    this.#stage = Stage.Auth;
    this.#write(this.#authId, TransportAuth.name, { token: this.token });
  }

  /** Round 2: the server, proved, accepts the token (requests may go) or refuses it. */
  #onAuthReply(frame: Frame): void {
    const meta = jsonOrUndefined(frame.meta);
    if (frame.kind === FrameKind.Error && (frame.requestId === this.#authId || frame.requestId === 0)) {
      const { code, message } = (meta ?? {}) as { code?: unknown; message?: unknown };
      this.#fail(errorFromWire(String(code), `${this.addr} refused the credential: ${String(message)}`));
      return;
    }
    if (frame.kind !== FrameKind.Reply || frame.requestId !== this.#authId || !isAuthReply(meta)) {
      this.#fail(new ConnectFailedError(`${this.addr} did not answer ${TransportAuth.name} with {}`));
      return;
    }
    this.#stage = Stage.Open;
    clearTimeout(this.#helloTimer);
    this.#decoder.raiseLimit(this.options.frameBytesMax);
    this.#wake();
  }

  #onReply(frame: Frame): void {
    if (frame.requestId === 0 && frame.kind === FrameKind.Error) {
      // The server is closing the connection; tell every caller why.
      const { code, message } = decodeJson(frame.meta) as { code: string; message: string };
      this.#fail(errorFromWire(code, message));
      return;
    }
    const p = this.#pending.get(frame.requestId);
    if (!p) return; // timed out or cancelled already
    this.#pending.delete(frame.requestId);
    this.#wake();
    p.hook?.leave(p);
    p.resolve(frame);
  }

  /**
   * One deadline sweep per connection, not a timer per request: rejects the
   * requests whose caller has stopped waiting (up to `deadlineSweepMs` late),
   * and stops when nothing is in flight.
   */
  #expire(): void {
    const now = Date.now();
    for (const [id, p] of this.#pending) {
      if (p.deadlineMs > now) continue;
      this.#pending.delete(id);
      this.#wake();
      p.hook?.leave(p);
      p.reject(new TimeoutError(`${p.name} to ${this.addr}: no reply within ${p.timeoutMs} ms`));
    }
    if (this.#pending.size === 0) this.#stopSweep();
  }

  #stopSweep(): void {
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  #notThePeer(reason: string): PeerIdentityError {
    return new PeerIdentityError(`${this.addr} did not prove it is ${JSON.stringify(this.peer.id)} with key ${this.peer.key}: ${reason}`);
  }

  /** Sends waiting requests into the free slots, in order. */
  #wake(): void {
    if (this.#stage !== Stage.Open || this.#closedError) return;
    while (this.#queue.length > 0 && this.#pending.size < this.options.inflightMax) {
      const q = this.#queue.shift()!;
      q.hook?.leave(q);
      try {
        this.#send(q.name, q.meta, q.payload, q.timeoutMs, q.hook, q.resolve, q.reject);
      } catch (e) {
        q.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  #fail(e: Error): void {
    if (this.#closedError) return;
    this.#closedError = e;
    clearTimeout(this.#helloTimer);
    this.#socket.destroy();
    for (const p of this.#pending.values()) {
      p.hook?.leave(p);
      p.reject(e);
    }
    this.#pending.clear();
    this.#stopSweep();
    for (const q of this.#queue.splice(0)) {
      q.hook?.leave(q);
      q.reject(e);
    }
  }
}

/**
 * Connections to direct-transport servers, one per address and expected
 * identity, reopened after a failure.
 *
 * @example
 *   const node = pool.caller(ref.addr, { id: ref.nodeId, key: ref.key }, token);
 *   const { reply, payload } = await node.call(NodeOps.extentRead, { token, extentId });
 */
export class TcpPool {
  /** Keyed by address, id and key: a new key for an address never reuses a connection proved with the old one. */
  readonly #connections = new Map<string, TcpConnection>();
  readonly options: Options;

  constructor(options: TcpClientOptions = {}) {
    this.options = { ...defaults, ...options };
  }

  /**
   * The connection to `addr` whose server proved it is `peer`; a new one
   * authenticates with `token` once the server has proved it, an open one is
   * reused whichever token opened it.
   */
  connection(addr: string, peer: PeerIdentity, token: string): TcpConnection {
    const key = `${addr}\n${peer.id}\n${peer.key}`;
    let c = this.#connections.get(key);
    if (!c || c.closed) {
      if (c) this.#connections.delete(key);
      if (!isTransportKey(peer.key)) throw new PeerIdentityError(`the key given for ${JSON.stringify(peer.id)} at ${addr} is not a raw Ed25519 public key`);
      if (this.#connections.size >= this.options.connectionsMax) this.#evictIdle();
      c = new TcpConnection(addr, peer, token, this.options);
      this.#connections.set(key, c);
    }
    return c;
  }

  /** Forgets the connections to an address (after a failure), so the next call opens a new one. */
  drop(addr: string): void {
    for (const [key, c] of this.#connections) {
      if (c.addr !== addr) continue;
      c.close();
      this.#connections.delete(key);
    }
  }

  #evictIdle(): void {
    for (const [key, c] of this.#connections) {
      if (c.closed || (c.inflight === 0 && c.queued === 0)) {
        c.close();
        this.#connections.delete(key);
        return;
      }
    }
    throw new BusyError(`${this.options.connectionsMax} connections are busy`);
  }

  /** A caller bound to the server that proves it is `peer` at `addr`; `token` authenticates a new connection. */
  caller(addr: string, peer: PeerIdentity, token: string): Caller {
    return new TcpCaller(this, addr, { id: peer.id, key: peer.key }, token);
  }

  close(): void {
    for (const c of this.#connections.values()) c.close();
    this.#connections.clear();
  }
}

/** What a call without options is given. */
const noOptions: CallOptions = {};

class TcpCaller implements Caller {
  /** The connection this caller last used, reused while it stays open (no pool lookup per call). */
  #connection: TcpConnection | undefined;

  constructor(private readonly pool: TcpPool, private readonly addr: string, private readonly peer: PeerIdentity, private readonly token: string) {}

  call<O extends Operation>(op: O, request: RequestOf<O>, options: CallOptions = noOptions): Promise<CallResult<O>> {
    const { signal } = options;
    if (signal === undefined || options.cancel !== undefined) return this.#call(op, request, options, options.cancel);
    return withSignal(signal, (cancel) => this.#call(op, request, options, cancel));
  }

  async #call<O extends Operation>(op: O, request: RequestOf<O>, options: CallOptions, cancel: CancelHook | undefined): Promise<CallResult<O>> {
    let connection = this.#connection;
    if (!connection || connection.closed) connection = this.#connection = this.pool.connection(this.addr, this.peer, this.token);
    const meta = encodeRequestMeta(op.name, withoutSessionToken(request, connection.token));
    const frame = await connection.request(op.name, meta, options.payload, options.timeoutMs ?? this.pool.options.requestTimeoutMs, cancel);
    if (frame.kind === FrameKind.Error) {
      const { code, message } = decodeJson(frame.meta) as { code: string; message: string };
      throw errorFromWire(code, message);
    }
    const reply = decodeReplyMeta(op.name, frame.meta) as CallResult<O>["reply"];
    return frame.owned ? { reply, payload: frame.payload, payloadOwned: true } : { reply, payload: frame.payload };
  }
}

/**
 * A request that carries the token its connection authenticated with goes
 * without it: the server fills in the session's (a token is most of a small
 * request's bytes). Any other token stays.
 */
function withoutSessionToken(request: unknown, sessionToken: string): unknown {
  if ((request as { token?: unknown }).token !== sessionToken) return request;
  // An undefined field is not sent (JSON or binary); a plain spread is much cheaper than a rest that leaves a key out.
  return { ...(request as object), token: undefined };
}

/**
 * Runs `call` with a cancel hook fired by `signal` (a caller that gave a
 * signal, not a hook): one listener for the call, removed when it settles.
 */
async function withSignal<T>(signal: AbortSignal, call: (cancel: CancelHook) => Promise<T>): Promise<T> {
  if (signal.aborted) throw abortReason(signal);
  const group = new CancelGroup();
  const onAbort = (): void => group.cancel(abortReason(signal));
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await call(group);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Decoded JSON, or undefined for bytes that are not JSON. */
function jsonOrUndefined(bytes: Uint8Array): unknown {
  try {
    return decodeJson(bytes);
  } catch (e) {
    if (e instanceof InvalidArgumentError) return undefined;
    throw e;
  }
}

export function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new NodeUnavailableError(`bad node address ${JSON.stringify(addr)}`);
  return { host: addr.slice(0, i), port };
}
