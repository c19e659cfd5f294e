import net from "node:net";
import { ErrorCode } from "../schemas/errors";
import { encodeJson } from "./body";
import { encodeFrame, FrameDecoder, FrameError, FrameKind, type Frame } from "./frame";
import { Transport, type Router } from "./router";

export interface TcpServerOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** Largest frame accepted; a larger declared length closes the connection. */
  readonly frameBytesMax: number;
  /** Requests one connection may have in flight before the server stops reading from it. */
  readonly inflightPerConnectionMax?: number;
  /** Reply bytes queued on a socket before the server stops reading from it. */
  readonly writeBufferBytesMax?: number;
  readonly connectionsMax?: number;
}

/**
 * Serves a router's operations on the direct TCP transport: pipelined frames,
 * bounded in flight per connection, backpressure by pausing reads.
 */
export class TcpServer {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #stats = { bytesIn: 0, bytesOut: 0, protocolErrors: 0 };

  private constructor(private readonly router: Router, private readonly options: Required<TcpServerOptions>) {
    this.#server = net.createServer({ noDelay: true }, (socket) => this.#accept(socket));
    this.#server.maxConnections = options.connectionsMax;
  }

  static async listen(router: Router, options: TcpServerOptions): Promise<TcpServer> {
    const full: Required<TcpServerOptions> = {
      host: "127.0.0.1",
      port: 0,
      inflightPerConnectionMax: 64,
      writeBufferBytesMax: 16 * 1024 * 1024,
      connectionsMax: 4096,
      ...options,
    };
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

  /** Bytes received and sent since start (for stats). */
  get stats(): Readonly<{ bytesIn: number; bytesOut: number; protocolErrors: number }> {
    return this.#stats;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  #accept(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const decoder = new FrameDecoder(this.options.frameBytesMax);
    let inflight = 0;
    let closing = false;

    const maybeResume = (): void => {
      if (!closing && socket.isPaused() && inflight < this.options.inflightPerConnectionMax && socket.writableLength < this.options.writeBufferBytesMax) {
        socket.resume();
      }
    };
    const send = (kind: FrameKind, id: number, meta: Uint8Array, payload?: Uint8Array): void => {
      if (socket.destroyed) return;
      const [head, body] = encodeFrame(kind, id, "", meta, payload);
      this.#stats.bytesOut += head.byteLength + (body?.byteLength ?? 0);
      corkUntilNextTick(socket);
      socket.write(head);
      if (body) socket.write(body);
    };
    const protocolError = (code: ErrorCode, message: string): void => {
      this.#stats.protocolErrors++;
      closing = true;
      socket.pause();
      send(FrameKind.Error, 0, encodeJson({ code, message }));
      socket.end();
      // A peer that never reads its error must not hold the socket open.
      setTimeout(() => socket.destroy(), 5_000).unref();
    };
    // Frames of the last chunk read beyond the in-flight bound wait here; reading is paused meanwhile,
    // so this holds at most one chunk's frames.
    const waiting: Frame[] = [];
    const run = (frame: Frame): void => {
      if (inflight >= this.options.inflightPerConnectionMax) {
        waiting.push(frame);
        socket.pause();
        return;
      }
      inflight++;
      if (inflight >= this.options.inflightPerConnectionMax) socket.pause();
      void this.router.dispatch(frame.name, frame.meta, frame.payload, Transport.Tcp).then((result) => {
        inflight--;
        if (result.ok) send(FrameKind.Reply, frame.requestId, result.meta, result.payload);
        else send(FrameKind.Error, frame.requestId, encodeJson({ code: result.code, message: result.message }));
        const next = waiting.shift();
        if (next && !closing) run(next);
        if (socket.writableLength >= this.options.writeBufferBytesMax) socket.pause();
        if (waiting.length === 0) maybeResume();
      });
    };

    socket.on("data", (chunk: Buffer) => {
      if (closing) return;
      this.#stats.bytesIn += chunk.byteLength;
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
        protocolError(e.code, e.message);
        return;
      }
      for (const frame of frames) {
        if (frame.kind !== FrameKind.Request) {
          protocolError(ErrorCode.InvalidArgument, `clients send request frames only (got kind ${frame.kind})`);
          return;
        }
        run(frame);
      }
    });
    socket.on("drain", maybeResume);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.#sockets.delete(socket));
  }
}

const corkedFrames = new WeakMap<net.Socket, number>();
/** Frames held back at most before a corked socket is flushed within the same tick. */
const framesPerFlushMax = 32;
/**
 * Corks a socket until the current tick's work is done, or until
 * `framesPerFlushMax` frames are held: frames written together leave in one
 * writev, and a long burst still reaches the peer early enough for it to
 * start working while the rest is produced.
 */
export function corkUntilNextTick(socket: net.Socket): void {
  const held = corkedFrames.get(socket);
  if (held === undefined) {
    corkedFrames.set(socket, 1);
    socket.cork();
    process.nextTick(() => {
      if (corkedFrames.get(socket) === undefined) return;
      corkedFrames.delete(socket);
      socket.uncork();
    });
    return;
  }
  if (held + 1 >= framesPerFlushMax) {
    socket.uncork();
    socket.cork();
    corkedFrames.set(socket, 0);
    return;
  }
  corkedFrames.set(socket, held + 1);
}
