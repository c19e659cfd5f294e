import fs from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import path from "node:path";

/**
 * Headers on every response: the page runs only its own script and style
 * (no inline code, nothing from elsewhere), may not be framed, and leaks no
 * referrer. Cluster data (job names come from drivers) is only ever set as
 * text by the page, and the policy stops any script it did not ship.
 */
export const SecurityHeaders: Readonly<Record<string, string>> = {
  "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/** A file of the page, held in memory: the only files the server ever sends. */
export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

/** The page's files, by the path they are served at. */
const assetFiles: ReadonlyArray<readonly [route: string, file: string, type: string]> = [
  ["/", "index.html", "text/html; charset=utf-8"],
  ["/app.js", "app.js", "text/javascript; charset=utf-8"],
  ["/style.css", "style.css", "text/css; charset=utf-8"],
  ["/favicon.svg", "favicon.svg", "image/svg+xml"],
  // Browsers ask for this one whether or not the page names an icon.
  ["/favicon.ico", "favicon.svg", "image/svg+xml"],
];

/** Reads the page's files from `dir` once (the dashboard serves from memory; nothing else on disk is reachable). */
export function loadAssets(dir: string): Map<string, Asset> {
  return new Map(assetFiles.map(([route, file, type]) => [route, { type, body: fs.readFileSync(path.join(dir, file)) }]));
}

/** Whether an address is this machine's loopback (then only loopback Host headers are accepted). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (net.isIPv4(host) && host.startsWith("127."));
}

/**
 * The Host headers a server bound to `host` accepts: on loopback, only its
 * own names, so that a web page elsewhere cannot reach it through a DNS name
 * rebound to 127.0.0.1 (DNS rebinding); undefined (any) otherwise.
 */
export function acceptedHosts(host: string, port: number): ReadonlySet<string> | undefined {
  if (!isLoopback(host)) return undefined;
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `${hostInUrl(host)}:${port}`]);
}

/** A host as it is written in a URL (IPv6 in brackets; the wildcard addresses as this machine's loopback). */
export function hostInUrl(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return net.isIPv6(host) ? `[${host}]` : host;
}

export function sendText(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SecurityHeaders, "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", ...extra });
  res.end(`${text}\n`);
}

export function sendJson(req: IncomingMessage, res: ServerResponse, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(200, { ...SecurityHeaders, "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store", "Content-Length": body.length });
  res.end(req.method === "HEAD" ? undefined : body);
}

export function sendAsset(req: IncomingMessage, res: ServerResponse, asset: Asset): void {
  res.writeHead(200, { ...SecurityHeaders, "Content-Type": asset.type, "Cache-Control": "no-cache", "Content-Length": asset.body.length });
  res.end(req.method === "HEAD" ? undefined : asset.body);
}
