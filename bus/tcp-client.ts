import net from "node:net";
import type { Operation, RequestOf } from "../schemas/operation";
import { BusyError, errorFromWire, InternalError, NodeUnavailableError, TimeoutError } from "../schemas/errors";
import { decodeJson, encodeJson } from "./body";
import type { Caller, CallOptions, CallResult } from "./caller";
import { encodeFrame, FrameDecoder, FrameError, FrameKind, type Frame } from "./frame";
import { corkUntilNextTick } from "./tcp-server";

export interface TcpClientOptions {
  /** Requests in flight on one connection; more wait for a slot. */
  readonly inflightMax?: number;
  /** Callers waiting for a slot on one connection; more get `Busy`. */
  readonly waitersMax?: number;
  readonly frameBytesMax?: number;
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

interface Pending {
  resolve(frame: Frame): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** One pipelined connection to a direct-transport server. */
export class TcpConnection {
  readonly #socket: net.Socket;
  readonly #decoder: FrameDecoder;
  readonly #pending = new Map<number, Pending>();
  readonly #waiters: Array<() => void> = [];
  readonly #ready: Promise<void>;
  #nextId = 1;
  #connected = false;
  #closedError: Error | undefined;

  constructor(readonly addr: string, private readonly options: Required<TcpClientOptions>) {
    const { host, port } = parseAddr(addr);
    this.#decoder = new FrameDecoder(options.frameBytesMax);
    this.#socket = net.connect({ host, port, noDelay: true });
    this.#socket.setNoDelay(true);
    this.#ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new ConnectFailedError(`connect to ${addr} timed out after ${options.connectTimeoutMs} ms`)), options.connectTimeoutMs);
      this.#socket.once("connect", () => { this.#connected = true; clearTimeout(timer); resolve(); });
      this.#socket.once("close", () => { clearTimeout(timer); reject(this.#closedError); });
    });
    this.#ready.catch(() => undefined);
    this.#socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on("error", (e) => {
      const cls = this.#connected ? NodeUnavailableError : ConnectFailedError;
      this.#fail(new cls(`connection to ${addr} failed: ${e.message}`, { cause: e }));
    });
    this.#socket.on("close", () => this.#fail(new NodeUnavailableError(`connection to ${addr} closed`)));
  }

  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  get inflight(): number {
    return this.#pending.size;
  }

  /** Sends one request and resolves with its reply frame (an error frame rejects). */
  async request(name: string, meta: Uint8Array, payload: Uint8Array | undefined, timeoutMs: number): Promise<Frame> {
    if (this.#closedError) throw this.#closedError;
    await this.#ready;
    while (this.#pending.size >= this.options.inflightMax) {
      if (this.#waiters.length >= this.options.waitersMax) throw new BusyError(`more than ${this.options.waitersMax} requests queued for ${this.addr}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
      if (this.#closedError) throw this.#closedError;
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_ffff ? 1 : this.#nextId + 1;
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
      this.#fail(new InternalError(`bad frame from ${this.addr}: ${e instanceof FrameError ? e.message : String(e)}`));
      return;
    }
    for (const frame of frames) {
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

  #wake(): void {
    this.#waiters.shift()?.();
  }

  #fail(e: Error): void {
    if (this.#closedError) return;
    this.#closedError = e;
    this.#socket.destroy();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.#pending.clear();
    for (const w of this.#waiters.splice(0)) w();
  }
}

/** Connections to direct-transport servers, one per address, reopened after a failure. */
export class TcpPool {
  readonly #connections = new Map<string, TcpConnection>();
  readonly options: Required<TcpClientOptions>;

  constructor(options: TcpClientOptions = {}) {
    this.options = { ...defaults, ...options };
  }

  connection(addr: string): TcpConnection {
    let c = this.#connections.get(addr);
    if (!c || c.closed) {
      if (c) this.#connections.delete(addr);
      if (this.#connections.size >= this.options.connectionsMax) this.#evictIdle();
      c = new TcpConnection(addr, this.options);
      this.#connections.set(addr, c);
    }
    return c;
  }

  /** Forgets a connection (after a failure), so the next call opens a new one. */
  drop(addr: string): void {
    this.#connections.get(addr)?.close();
    this.#connections.delete(addr);
  }

  #evictIdle(): void {
    for (const [addr, c] of this.#connections) {
      if (c.closed || c.inflight === 0) {
        c.close();
        this.#connections.delete(addr);
        return;
      }
    }
    throw new BusyError(`${this.options.connectionsMax} connections are busy`);
  }

  readonly #callers = new Map<string, Caller>();
  /** A caller bound to one address (kept: callers hold no state of their own). */
  caller(addr: string): Caller {
    let c = this.#callers.get(addr);
    if (!c) {
      if (this.#callers.size >= this.options.connectionsMax) this.#callers.delete(this.#callers.keys().next().value!);
      c = new TcpCaller(this, addr);
      this.#callers.set(addr, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.#connections.values()) c.close();
    this.#connections.clear();
  }
}

class TcpCaller implements Caller {
  constructor(private readonly pool: TcpPool, private readonly addr: string) {}

  async call<O extends Operation>(op: O, request: RequestOf<O>, options: CallOptions = {}): Promise<CallResult<O>> {
    const frame = await this.pool.connection(this.addr).request(
      op.name, encodeJson(request), options.payload, options.timeoutMs ?? this.pool.options.requestTimeoutMs,
    );
    if (frame.kind === FrameKind.Error) {
      const { code, message } = decodeJson(frame.meta) as { code: string; message: string };
      throw errorFromWire(code, message);
    }
    return { reply: decodeJson(frame.meta) as CallResult<O>["reply"], payload: frame.payload };
  }
}

export function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new NodeUnavailableError(`bad node address ${JSON.stringify(addr)}`);
  return { host: addr.slice(0, i), port };
}
