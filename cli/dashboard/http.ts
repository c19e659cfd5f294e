import fs from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { InvalidArgumentError } from "../../schemas/errors";

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

/** Names of this machine's loopback, as a URL spells them: every dashboard answers to these. */
const loopbackNames = ["localhost", "127.0.0.1", "[::1]"];

/** What a Host header may hold: a DNS name or IPv4 address, or an IPv6 address in brackets, and a port. */
const hostHeaderSyntax = /^(?:[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

/** Whether `host` is a wildcard address (every interface). */
function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}

/**
 * The host name of a Host header (or of a name an operator allows) as a URL
 * spells it: lower case, IPv4 in dotted decimal, IPv6 compressed in brackets,
 * without the port. Undefined for anything else (user info, a path, spaces).
 */
export function hostnameOf(host: string): string | undefined {
  const text = net.isIPv6(host) ? `[${host}]` : host;
  if (!hostHeaderSyntax.test(text)) return undefined;
  try {
    return new URL(`http://${text}/`).hostname;
  } catch (e) {
    if (e instanceof TypeError) return undefined;
    throw e;
  }
}

/**
 * The host names a dashboard bound to `host` answers to: loopback's, the bound
 * address (every interface's address when bound to a wildcard, as they are when
 * it starts) and the names an operator allows. A request naming any other host
 * is refused, so that a web page whose own DNS name is pointed at this machine
 * (DNS rebinding) cannot read the cluster through the visitor's browser.
 * Throws InvalidArgumentError for an allowed name that is not a host name.
 */
export function acceptedHostnames(host: string, allowed: readonly string[] = []): ReadonlySet<string> {
  const names = new Set(loopbackNames);
  const add = (name: string, what: string): void => {
    const hostname = hostnameOf(name);
    if (hostname === undefined) throw new InvalidArgumentError(`${what} ${JSON.stringify(name)} is not a host name or address (no scheme, user or path)`);
    names.add(hostname);
  };
  if (isWildcard(host)) {
    for (const addrs of Object.values(os.networkInterfaces())) for (const a of addrs ?? []) add(a.address, "interface address");
  } else {
    add(host, "the address to serve on");
  }
  for (const name of allowed) add(name, "allowed host");
  return names;
}

/** Whether a request's Host header names one of `accepted` (any port: the name is what a rebinding page cannot fake). */
export function hostAccepted(hostHeader: string | undefined, accepted: ReadonlySet<string>): boolean {
  const hostname = hostHeader === undefined ? undefined : hostnameOf(hostHeader);
  return hostname !== undefined && accepted.has(hostname);
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
