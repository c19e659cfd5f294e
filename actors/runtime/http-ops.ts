import http from "node:http";
import type net from "node:net";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorFields, logger } from "../../lib/log";
import { ActorMetrics } from "./metrics";
import { followNats, NotReady, Readiness } from "./readiness";

/** Where an actor serves its metrics and probes over HTTP (an actor's config carries these). */
export interface OpsHttpConfig {
  /** Port of the HTTP server (`/metrics`, `/healthz`, `/readyz`); 0 picks a free one; absent: no server. */
  readonly httpPort?: number;
  /** Interface it listens on: 127.0.0.1 by default (0.0.0.0 in a container, for the cluster's scraper and probes). */
  readonly httpHost?: string;
}

/** The paths served; anything else is 404. */
export const OpsPaths = { Metrics: "/metrics", Health: "/healthz", Ready: "/readyz" } as const;

/** Bounds of the HTTP server: it serves operators and probes, not traffic. */
const connectionsMax = 64;
const headerBytesMax = 8 * 1024;
const headersTimeoutMs = 5_000;
const requestTimeoutMs = 10_000;
const keepAliveTimeoutMs = 5_000;
const requestsPerSocketMax = 1_000;

/** What the server answers from. */
export interface OpsSources {
  readonly metrics: ActorMetrics;
  readonly readiness: Readiness;
}

/**
 * A small HTTP server (node:http) for operators: `GET /metrics` (the
 * Prometheus text format), `GET /healthz` (200 while the event loop
 * turns), `GET /readyz` (200 when ready, else 503 with the reasons). No
 * request may carry a body; connections, header size and idle time are bounded.
 *
 * @example
 *   const server = await OpsHttpServer.listen({ httpPort: 0 }, { metrics, readiness });
 *   // curl http://${server.address}/metrics
 *   await server.close();
 */
export class OpsHttpServer {
  readonly #log = logger("http-ops");

  private constructor(private readonly server: http.Server, private readonly sources: OpsSources) {}

  static async listen(config: OpsHttpConfig, sources: OpsSources): Promise<OpsHttpServer> {
    const server = http.createServer({ maxHeaderSize: headerBytesMax, headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs, keepAliveTimeout: keepAliveTimeoutMs });
    server.maxConnections = connectionsMax;
    server.maxRequestsPerSocket = requestsPerSocketMax;
    const s = new OpsHttpServer(server, sources);
    server.on("request", (req, res) => s.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.httpPort ?? 0, config.httpHost ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    return s;
  }

  /** host:port it listens on. */
  get address(): string {
    const a = this.server.address() as net.AddressInfo;
    return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    return closed;
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    // No endpoint takes a body: refuse one without reading it, and close the connection it came on.
    if (req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0) {
      res.shouldKeepAlive = false;
      reply(res, 413, "no request body is accepted\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      reply(res, 405, "GET or HEAD only\n");
      return;
    }
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    switch (q < 0 ? url : url.slice(0, q)) {
      case OpsPaths.Health: return reply(res, 200, "ok\n");
      case OpsPaths.Ready: {
        const r = this.sources.readiness;
        return r.ready ? reply(res, 200, "ready\n") : reply(res, 503, `not ready\n${r.reasons.join("\n")}\n`);
      }
      case OpsPaths.Metrics:
        this.sources.metrics.text().then(
          (text) => reply(res, 200, text, this.sources.metrics.contentType),
          (e: unknown) => {
            this.#log.error("metrics not collected", errorFields(e));
            reply(res, 500, "metrics could not be collected\n");
          },
        );
        return;
      default: return reply(res, 404, "not found: try /metrics, /healthz or /readyz\n");
    }
  }
}

function reply(res: http.ServerResponse, status: number, body: string, contentType = "text/plain; charset=utf-8"): void {
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

/**
 * What an actor process serves to operators: its metrics, its readiness
 * and, when its config names an `httpPort`, the HTTP server for both.
 * Started before anything else, so probes answer (not ready) while the
 * actor connects; `serving` once it is ready.
 */
export class ActorOps {
  readonly metrics: ActorMetrics;
  readonly readiness = new Readiness();
  #http: OpsHttpServer | undefined;

  private constructor(role: string, id: string) {
    this.metrics = new ActorMetrics(role, id);
    this.metrics.gauge("pocket_ready", "1 when the actor is ready (what /readyz answers 200 to), else 0.", () => (this.readiness.ready ? 1 : 0));
  }

  /** Metrics and readiness, and the HTTP server if `config.httpPort` is given (with the process's own metrics then). */
  static async start(config: OpsHttpConfig, role: string, id: string): Promise<ActorOps> {
    const ops = new ActorOps(role, id);
    if (config.httpPort !== undefined) {
      ops.metrics.processMetrics();
      ops.#http = await OpsHttpServer.listen(config, ops);
    }
    return ops;
  }

  /** Metrics and readiness only (an actor on a simulated bus). */
  static detached(role: string, id: string): ActorOps {
    return new ActorOps(role, id);
  }

  /** host:port of the HTTP server ("" without one). */
  get httpAddr(): string {
    return this.#http?.address ?? "";
  }

  /** Not ready while `nc` is disconnected; its disconnects and reconnects are counted. */
  followNats(nc: NatsConnection): void {
    const disconnects = this.metrics.counter("pocket_nats_disconnects_total", "Times the actor's NATS connection was lost.", []);
    const reconnects = this.metrics.counter("pocket_nats_reconnects_total", "Times the actor's NATS connection was re-established.", []);
    followNats(nc, this.readiness, { disconnected: () => disconnects.inc(), reconnected: () => reconnects.inc() });
  }

  /** The actor serves: ready unless something else (NATS) blocks it. */
  serving(): void {
    this.readiness.clear(NotReady.Starting);
  }

  /** Not ready from now on; the HTTP server stays up until `close`. */
  stopping(): void {
    this.readiness.block(NotReady.Stopping, "the actor is stopping");
  }

  async close(): Promise<void> {
    await this.#http?.close();
  }
}
