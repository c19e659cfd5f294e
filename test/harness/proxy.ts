import net from "node:net";
import type { Transform } from "node:stream";

/**
 * A TCP proxy on loopback, for tests that need to see or change what crosses
 * the wire between a client and a server (a node that advertises the proxy's
 * address). Its target is set once known: the node starts after the proxy.
 * `record` keeps every byte carried, both ways; `replies` gives a transform
 * for each connection's server-to-client bytes.
 */
export class TcpProxy {
  target: { host: string; port: number } | undefined;
  readonly chunks: Buffer[] = [];
  readonly #sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server, private readonly options: { record?: boolean; replies?: () => Transform }) {
    server.on("connection", (client) => this.#accept(client));
  }

  static async listen(options: { record?: boolean; replies?: () => Transform } = {}): Promise<TcpProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return new TcpProxy(server, options);
  }

  get addr(): string {
    const a = this.server.address() as net.AddressInfo;
    return `${a.address}:${a.port}`;
  }

  /** Every byte carried so far, in both directions (with `record`). */
  get wire(): Buffer {
    return Buffer.concat(this.chunks);
  }

  #accept(client: net.Socket): void {
    if (!this.target) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.host);
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      if (this.options.record) s.on("data", (d: Buffer) => this.chunks.push(d));
      s.on("error", () => { client.destroy(); upstream.destroy(); });
      s.on("close", () => { this.#sockets.delete(s); client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    if (this.options.replies) upstream.pipe(this.options.replies()).pipe(client);
    else upstream.pipe(client);
  }

  /** Cuts every connection it carries now; it goes on accepting new ones (refused while it has no target). */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
