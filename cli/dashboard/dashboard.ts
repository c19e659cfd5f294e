import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { systemClock, type TimerClock } from "../../lib/clock";
import { errorFields, logger } from "../../lib/log";
import { readPrivateFile } from "../../lib/private-file";
import { projectRoot } from "../../lib/process";
import { connectWithCreds, type NatsTls } from "../../bus/nats-connect";
import { ClusterFeed, type FeedLimits } from "./feed";
import { acceptedHostnames, hostAccepted, hostInUrl, loadAssets, sendAsset, sendJson, sendText, SecurityHeaders, type Asset } from "./http";
import { SseClient, sseFrame, type SseLimits } from "./sse";

/** Bounds of the dashboard: what it keeps, how often it asks, and how many live pages it feeds. */
export interface DashboardLimits extends FeedLimits, SseLimits {
  /** Live pages (Server-Sent Events streams) at once; one more gets 503 and retries. */
  readonly clientsMax: number;
}

export const DefaultDashboardLimits: DashboardLimits = {
  snapshotIntervalMs: 1_000,
  historyMax: 600,
  eventsMax: 200,
  timelineMax: 200,
  callTimeoutMs: 5_000,
  retryDelayMs: 2_000,
  clientsMax: 16,
  backlogMax: 256,
  stalledMaxMs: 30_000,
};

export interface DashboardOptions {
  /** The cluster's NATS server URL(s). */
  readonly servers: string | readonly string[];
  /** An operator's NATS credential (creds file text), as `pocket up` writes it to POCKET_ADMIN_CREDS... */
  readonly credentials?: string;
  /** ...or the path of that creds file (kept 0600). Neither: a bus without authentication. */
  readonly credentialsFile?: string;
  /** The CA certificate (PEM text) of a cluster that runs TLS... */
  readonly tlsCa?: string;
  /** ...or its file (POCKET_TLS_CA). */
  readonly tlsCaFile?: string;
  /** Address the page is served on; default 127.0.0.1 (this machine only). */
  readonly host?: string;
  /**
   * Host names (or addresses) the page may be opened by, besides loopback's and
   * the address it is served on (every interface's, bound to 0.0.0.0 or ::):
   * the name of a machine or proxy in front of it. Requests naming any other
   * host are refused (421), so a web page cannot read the cluster by pointing
   * a DNS name of its own at this machine.
   */
  readonly allowedHosts?: readonly string[];
  /** Port; 0 (the default) takes a free one, which the URL names. */
  readonly port?: number;
  readonly limits?: Partial<DashboardLimits>;
  readonly clock?: TimerClock;
}

/** A running dashboard: where to open it, and how to stop it. */
export interface Dashboard {
  readonly url: string;
  close(): Promise<void>;
}

/** Where the page's files live (plain HTML, CSS and JS: no build step). */
const assetsDir = (): string => path.join(projectRoot(), "cli", "dashboard", "static");

/**
 * Serves a live view of the cluster: one page, a JSON snapshot at
 * `/api/snapshot` and a Server-Sent Events feed at `/api/live`, from one
 * operator connection to NATS shared by every page.
 *
 * @example
 *   const d = await startDashboard({ servers: "nats://127.0.0.1:4222", credentialsFile: process.env.POCKET_ADMIN_CREDS, port: 8080 });
 *   console.log(`open ${d.url}`);
 *   await d.close();
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const limits = { ...DefaultDashboardLimits, ...options.limits };
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 0;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65_535)) throw new RangeError(`port ${port} is not 0..65535`);
  const accepted = acceptedHostnames(host, options.allowedHosts);
  const assets = loadAssets(assetsDir());
  const nc = await connect(options);
  const clock = options.clock ?? systemClock;
  const clients = new Set<SseClient>();
  const feed = new ClusterFeed(nc, limits, clock, {
    snapshot: (state) => broadcast(clients, (c, frame) => c.snapshot(frame), sseFrame("snapshot", state)),
    event: (e) => broadcast(clients, (c, frame) => c.event(frame), sseFrame("event", e)),
  });
  const routes: Routes = { assets, feed, clients, limits, clock, accepted };
  let server: http.Server | undefined;
  try {
    await feed.start();
    server = await listen(host, port, limits, (req, res) => route(req, res, routes));
    const bound = (server.address() as AddressInfo).port;
    const url = `http://${hostInUrl(host)}:${bound}/`;
    return { url, close: () => close(server!, feed, clients, nc) };
  } catch (e) {
    await close(server, feed, clients, nc);
    throw e;
  }
}

/** `pocket dashboard`: serves until SIGINT or SIGTERM, after printing where to open it. */
export async function runDashboard(options: DashboardOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const d = await startDashboard(options);
  out.write(`pocket dashboard: ${d.url}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await d.close();
}

async function connect(options: DashboardOptions): Promise<NatsConnection> {
  const creds = options.credentials ?? (options.credentialsFile !== undefined ? readPrivateFile(options.credentialsFile) : undefined);
  const tls: NatsTls | undefined = options.tlsCa !== undefined ? { ca: options.tlsCa } : options.tlsCaFile !== undefined ? { caFile: options.tlsCaFile } : undefined;
  return connectWithCreds(options.servers, creds, undefined, { name: "pocket-dashboard", ...(tls ? { tls } : {}) });
}

function broadcast(clients: ReadonlySet<SseClient>, send: (c: SseClient, frame: string) => void, frame: string): void {
  for (const c of clients) send(c, frame);
}

function listen(host: string, port: number, limits: DashboardLimits, handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 16 * 1024 }, handler);
  // Live pages, plus a few connections for the page's files and snapshots.
  server.maxConnections = limits.clientsMax + 32;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      server.on("error", (e) => logger("dashboard").error("http server error", errorFields(e)));
      resolve(server);
    });
  });
}

interface Routes {
  readonly assets: ReadonlyMap<string, Asset>;
  readonly feed: ClusterFeed;
  readonly clients: Set<SseClient>;
  readonly limits: DashboardLimits;
  readonly clock: TimerClock;
  /** Host names requests may name (`acceptedHostnames`). */
  readonly accepted: ReadonlySet<string>;
}

/**
 * Reads only: GET (and HEAD) of the page's files, the snapshot and the live
 * feed, for requests that name one of the dashboard's own hosts and that a
 * browser did not send on behalf of another site's page.
 */
function route(req: IncomingMessage, res: ServerResponse, r: Routes): void {
  if (!hostAccepted(req.headers.host, r.accepted)) return sendText(res, 421, "this dashboard answers only to its own names (pocket dashboard --allow-host)");
  // Browsers say which site a request comes from; another site's page gets nothing, whatever it asks for.
  if (req.headers["sec-fetch-site"] === "cross-site") return sendText(res, 403, "the dashboard does not answer other sites' pages");
  if (req.method !== "GET" && req.method !== "HEAD") return sendText(res, 405, "the dashboard only reads", { Allow: "GET, HEAD" });
  const pathname = new URL(req.url ?? "/", "http://dashboard").pathname;
  if (pathname === "/api/snapshot") return sendJson(req, res, r.feed.full());
  if (pathname === "/api/live") return live(req, res, r);
  const asset = r.assets.get(pathname);
  if (asset) return sendAsset(req, res, asset);
  sendText(res, 404, "not found");
}

/** A live page: everything it starts from (`init`), then each decision and each new state as they come. */
function live(req: IncomingMessage, res: ServerResponse, r: Routes): void {
  if (req.method !== "GET") return sendText(res, 405, "the live feed is a GET", { Allow: "GET" });
  if (r.clients.size >= r.limits.clientsMax) {
    return sendText(res, 503, `${r.limits.clientsMax} pages are following already; try again shortly`, { "Retry-After": "10" });
  }
  res.writeHead(200, { ...SecurityHeaders, "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", "X-Accel-Buffering": "no" });
  const client = new SseClient(res, r.limits, () => r.clock.now());
  r.clients.add(client);
  res.on("close", () => r.clients.delete(client));
  // The page reconnects on its own after 2 s if the stream ends.
  res.write("retry: 2000\n\n");
  client.event(sseFrame("init", r.feed.full()));
}

async function close(server: http.Server | undefined, feed: ClusterFeed, clients: Set<SseClient>, nc: NatsConnection): Promise<void> {
  await feed.stop();
  for (const c of clients) c.end();
  clients.clear();
  if (server) {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
  await nc.close();
}
