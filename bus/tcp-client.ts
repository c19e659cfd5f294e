import net from "node:net";
import type { Operation, RequestOf } from "../schemas/operation";
import { BusyError, errorFromWire, InternalError, InvalidArgumentError, NodeUnavailableError, TimeoutError } from "../schemas/errors";
import { decodeJson, encodeJson } from "./body";
import type { Caller, CallOptions, CallResult } from "./caller";
import { encodeFrame, FrameDecoder, FrameError, FrameKind, type Frame } from "./frame";
import { helloFrameBytesMax, isTransportKey, newHello, TransportHello, verifyHello, type HelloRequest, type PeerIdentity } from "./handshake";
import { corkUntilNextTick } from "./tcp-server";

export interface TcpClientOptions {
  /** Requests in flight on one connection; more wait for a slot. */
  readonly inflightMax?: number;
  /** Callers waiting for a slot on one connection (or for its hello); more get `Busy`. */
  readonly waitersMax?: number;
  readonly frameBytesMax?: number;
  /** Time to connect and complete the hello. */
  readonly connectTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** Open connections kept by a pool; the least recently opened idle one is closed past it. */
  readonly connectionsMax?: number;
}

const defaults: Required<TcpClientOptions> = {
  inflightMax: 64,
  waitersMax: 4096,
  connectionsMax: 1024,
  frameBytesMax: 72 * 1024 * 1024,
  connectTimeoutMs: 3_000,
  requestTimeoutMs: 30_000,
};

/** The connection could not be opened: the request was never sent, so any request may be retried elsewhere. */
export class ConnectFailedError extends NodeUnavailableError {}

/**
 * The process at an address did not prove it is the server the caller
 * expected there (wrong id, a signature by another key, or no proof). Nothing
 * but the hello was sent to it; like any `ConnectFailedError` the request may
 * be retried once the address has been looked up again.
 */
export class PeerIdentityError extends ConnectFailedError {}

/**
 * An open connection failed or closed with the request on it: it may or may
 * not have been carried out, so it is not retried; the address may be stale.
 */
export class ConnectionLostError extends NodeUnavailableError {}

/** Error codes a server may refuse a hello with; any other answer to a hello is no proof of identity. */
const helloRefusals = new Set<string>(TransportHello.errors);

interface Pending {
  resolve(frame: Frame): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** One pipelined connection to a direct-transport server; requests wait until the server has proved who it is. */
export class TcpConnection {
  readonly #socket: net.Socket;
  readonly #decoder = new FrameDecoder(helloFrameBytesMax);
  readonly #pending = new Map<number, Pending>();
  readonly #waiters: Array<() => void> = [];
  readonly #hello: HelloRequest;
  readonly #helloId = 1;
  readonly #helloTimer: NodeJS.Timeout;
  #nextId = 2;
  #connected = false;
  #proved = false;
  #closedError: Error | undefined;

  constructor(readonly addr: string, readonly peer: PeerIdentity, token: string, private readonly options: Required<TcpClientOptions>) {
    const { host, port } = parseAddr(addr);
    this.#hello = newHello(token);
    this.#socket = net.connect({ host, port, noDelay: true });
    this.#socket.setNoDelay(true);
    this.#helloTimer = setTimeout(() => {
      this.#fail(new ConnectFailedError(`connect and hello to ${addr} did not complete within ${options.connectTimeoutMs} ms`));
    }, options.connectTimeoutMs);
    this.#socket.once("connect", () => {
      this.#connected = true;
      const [head] = encodeFrame(FrameKind.Request, this.#helloId, TransportHello.name, encodeJson(this.#hello));
      this.#socket.write(head);
    });
    this.#socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on("error", (e) => {
      const cls = this.#proved ? ConnectionLostError : ConnectFailedError;
      this.#fail(new cls(`connection to ${addr} failed: ${e.message}`, { cause: e }));
    });
    this.#socket.on("close", () => {
      const cls = this.#proved ? ConnectionLostError : ConnectFailedError;
      this.#fail(new cls(`connection to ${addr} closed${this.#proved ? "" : this.#connected ? " before the hello completed" : ""}`));
    });
  }

  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  get inflight(): number {
    return this.#pending.size;
  }

  /** Requests waiting for a slot or for the hello. */
  get queued(): number {
    return this.#waiters.length;
  }

  /** Sends one request and resolves with its reply frame (an error frame rejects). */
  async request(name: string, meta: Uint8Array, payload: Uint8Array | undefined, timeoutMs: number): Promise<Frame> {
    for (;;) {
      if (this.#closedError) throw this.#closedError;
      if (this.#proved && this.#pending.size < this.options.inflightMax) break;
      if (this.#waiters.length >= this.options.waitersMax) throw new BusyError(`more than ${this.options.waitersMax} requests queued for ${this.addr}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_ffff ? 2 : this.#nextId + 1;
    const [head, body] = encodeFrame(FrameKind.Request, id, name, meta, payload);
    const reply = new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        this.#wake();
        reject(new TimeoutError(`${name} to ${this.addr}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
    });
    corkUntilNextTick(this.#socket);
    this.#socket.write(head);
    if (body) this.#socket.write(body);
    return reply;
  }

  close(): void {
    this.#fail(new NodeUnavailableError(`connection to ${this.addr} closed by the client`));
  }

  #onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (e) {
      const why = `bad frame from ${this.addr}: ${e instanceof FrameError ? e.message : String(e)}`;
      this.#fail(this.#proved ? new InternalError(why) : this.#notThePeer(why));
      return;
    }
    for (const frame of frames) {
      if (!this.#proved) {
        this.#onHelloReply(frame);
        if (!this.#proved) return;
        continue;
      }
      if (frame.requestId === 0 && frame.kind === FrameKind.Error) {
        // The server is closing the connection; tell every caller why.
        const { code, message } = decodeJson(frame.meta) as { code: string; message: string };
        this.#fail(errorFromWire(code, message));
        return;
      }
      const p = this.#pending.get(frame.requestId);
      if (!p) continue; // timed out already
      this.#pending.delete(frame.requestId);
      clearTimeout(p.timer);
      this.#wake();
      p.resolve(frame);
    }
  }

  /** Checks the server's answer to the hello; on success, lets queued requests go. */
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
    this.#proved = true;
    clearTimeout(this.#helloTimer);
    this.#decoder.raiseLimit(this.options.frameBytesMax);
    for (let i = 0; i < this.options.inflightMax && this.#waiters.length > 0; i++) this.#wake();
  }

  #notThePeer(reason: string): PeerIdentityError {
    return new PeerIdentityError(`${this.addr} did not prove it is ${JSON.stringify(this.peer.id)} with key ${this.peer.key}: ${reason}`);
  }

  #wake(): void {
    this.#waiters.shift()?.();
  }

  #fail(e: Error): void {
    if (this.#closedError) return;
    this.#closedError = e;
    clearTimeout(this.#helloTimer);
    this.#socket.destroy();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.#pending.clear();
    for (const w of this.#waiters.splice(0)) w();
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
  readonly options: Required<TcpClientOptions>;

  constructor(options: TcpClientOptions = {}) {
    this.options = { ...defaults, ...options };
  }

  /**
   * The connection to `addr` whose server proved it is `peer`; a new one says
   * hello with `token`, an open one is reused whichever token opened it.
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

  /** A caller bound to the server that proves it is `peer` at `addr`; `token` says hello on a new connection. */
  caller(addr: string, peer: PeerIdentity, token: string): Caller {
    return new TcpCaller(this, addr, { id: peer.id, key: peer.key }, token);
  }

  close(): void {
    for (const c of this.#connections.values()) c.close();
    this.#connections.clear();
  }
}

class TcpCaller implements Caller {
  constructor(private readonly pool: TcpPool, private readonly addr: string, private readonly peer: PeerIdentity, private readonly token: string) {}

  async call<O extends Operation>(op: O, request: RequestOf<O>, options: CallOptions = {}): Promise<CallResult<O>> {
    const frame = await this.pool.connection(this.addr, this.peer, this.token).request(
      op.name, encodeJson(request), options.payload, options.timeoutMs ?? this.pool.options.requestTimeoutMs,
    );
    if (frame.kind === FrameKind.Error) {
      const { code, message } = decodeJson(frame.meta) as { code: string; message: string };
      throw errorFromWire(code, message);
    }
    return { reply: decodeJson(frame.meta) as CallResult<O>["reply"], payload: frame.payload };
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
