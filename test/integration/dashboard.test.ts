import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { ControllerOps } from "../../schemas/operations";
import { projectRoot } from "../../lib/process";
import { Role } from "../../bus/credentials";
import { startDashboard, type Dashboard } from "../../cli/dashboard/dashboard";
import { SseClient, sseFrame } from "../../cli/dashboard/sse";
import { InvalidArgumentError } from "../../schemas/errors";
import type { PocketJob } from "../../client/pocket";
import { eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";
import { within } from "../harness/wait";

/*
 * The dashboard against a real cluster (nats-server, controller, a shard,
 * storage nodes the controller launches), opened in a real headless
 * Chromium: what the page shows is compared with what the controller says.
 */

const MiB = 2 ** 20;
/** Debian's chromium (apt-get install chromium); POCKET_CHROMIUM names another build. */
const chromiumPath = process.env["POCKET_CHROMIUM"] ?? "/usr/bin/chromium";
/** POCKET_DASHBOARD_SCREENSHOT=1 also writes the screenshot to docs/dashboard.png (regenerated deliberately, reviewed as a diff). */
const writeDocsScreenshot = process.env["POCKET_DASHBOARD_SCREENSHOT"] === "1";

/**
 * The few browser globals the functions run inside the page use (the project
 * type-checks without the DOM library); each such function reaches them as
 * `(globalThis as unknown as InPage)`, which runs as plain `globalThis` there.
 */
interface InPage {
  readonly document: {
    readonly body: { readonly dataset: Record<string, string | undefined> };
    querySelector(selector: string): { readonly textContent: string | null } | null;
    querySelectorAll(selector: string): ArrayLike<{ readonly textContent: string | null }>;
    createElement(tag: "canvas"): {
      width: number;
      height: number;
      getContext(kind: "2d"): { drawImage(image: unknown, x: number, y: number): void; getImageData(x: number, y: number, w: number, h: number): { readonly data: Uint8ClampedArray } } | null;
    };
  };
  readonly Image: new () => { src: string; decode(): Promise<void>; readonly naturalWidth: number; readonly naturalHeight: number };
}

/** A DNS name of someone else's, resolved (by the browser) to this machine. */
const reboundName = "rebound.example";
/** Another site, also on this machine: its page asks the dashboard for the cluster. */
const otherSiteName = "other-site.example";

if (!fs.existsSync(chromiumPath)) {
  throw new Error(`no Chromium at ${chromiumPath}: apt-get install chromium (or set POCKET_CHROMIUM to a Chromium binary)`);
}

let t: TestCluster | undefined;
let dashboard: Dashboard | undefined;
let browser: Browser | undefined;
let tmp: string;
/** Pages a test opened and has not closed yet (it failed before it could). */
const leftOpen = new Set<Page>();
afterEach(async () => {
  for (const p of leftOpen) await p.close();
  leftOpen.clear();
});

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-dashboard-"));
  // One static DRAM node of 32 MiB; a job that asks for 80 MiB makes the controller launch two more.
  t = await startTestCluster({
    shards: 1, dram: 1, dramCapacityBytes: 32 * MiB, orchestrator: "local", minNodes: 1, maxNodes: 3, heartbeatIntervalMs: 500,
    policy: { startupGraceMs: 500, sustainMs: 1_000, cooldownMs: 1_500, windowMs: 1_000 },
  });
  browser = await puppeteer.launch({
    executablePath: chromiumPath, headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
      // Names someone else's DNS points at this machine: a page at one is another site (DNS rebinding, cross-site requests).
      `--host-resolver-rules=${[reboundName, otherSiteName].map((n) => `MAP ${n} 127.0.0.1`).join(", ")}`,
    ],
  });
}, 30_000);

afterAll(async () => {
  // Each is closed even if another's close fails.
  const closes = [() => browser?.close(), () => dashboard?.close(), () => t?.stop()];
  const errors: unknown[] = [];
  for (const close of closes) await close()?.catch((e: unknown) => errors.push(e));
  fs.rmSync(tmp, { recursive: true, force: true });
  if (errors.length > 0) throw errors[0];
}, 30_000);

/** What the page's node table says: id, tier and state per row. */
function domNodes(page: Page): Promise<Array<{ nodeId: string; tier: string; state: string; text: string }>> {
  return page.$$eval("#node-table tbody tr", (rows) => rows.map((r) => ({
    nodeId: r.getAttribute("data-node-id") ?? "",
    tier: r.querySelector("td.tier")?.textContent ?? "",
    state: r.querySelector(".state")?.textContent ?? "",
    text: r.querySelector("code.node-id")?.textContent ?? "",
  })));
}

/** What the page's card of a job says: its weight map, node by node. */
function domWeights(page: Page, jobId: string): Promise<Array<{ nodeId: string; weight: number; shown: string }>> {
  return page.$$eval(`article[data-job-id="${jobId}"] table.weights tbody tr`, (rows) => rows.map((r) => ({
    nodeId: r.getAttribute("data-node-id") ?? "",
    weight: Number(r.getAttribute("data-weight")),
    shown: r.querySelector("td.weight")?.textContent ?? "",
  })));
}

/** Waits until `probe` holds, re-reading both sides each time (the cluster moves on while the page catches up). */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  await eventually(probe, 10_000, what);
}

/** How many distinct colours a PNG holds, decoded and counted by the browser (up to `max`). */
async function distinctColours(png: Buffer, max: number): Promise<number> {
  const page = await browser!.newPage();
  try {
    return await page.evaluate(async (b64: string, cap: number) => {
      const { document, Image } = globalThis as unknown as InPage;
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext("2d");
      if (!ctx) throw new Error("no 2d canvas");
      ctx.drawImage(img, 0, 0);
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < data.length && seen.size < cap; i += 4) seen.add(((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!) >>> 0);
      return seen.size;
    }, png.toString("base64"), max);
  } finally {
    await page.close();
  }
}

/** For the README's picture only: use that grows over some seconds, so that the charts have a history to show. */
async function growForThePicture(job: PocketJob): Promise<void> {
  for (let i = 0; i < 16; i++) {
    await job.put(`more-${i}`, patternBytes(2 * MiB, 100 + i));
    await new Promise((r) => setTimeout(r, 500));
  }
}

test("the page shows the cluster's nodes, jobs and weights, the band and the launches, and new events live; no errors", async () => {
  const c = t!.client;
  const big = await c.registerJob("sorter", { capacityBytes: 80 * MiB });
  await until("two launched nodes active", async () => (await c.listNodes()).filter((n) => n.launched && n.state === "active").length === 2);
  await until("the job weighted over all three nodes", async () => (await c.listJobs()).find((j) => j.jobId === big.jobId)!.weights.length === 3);
  const job = c.job(big.token);
  for (let i = 0; i < 6; i++) await job.put(`part-${i}`, patternBytes(2 * MiB, 10 + i));

  dashboard = await startDashboard({
    servers: t!.nats.url, credentials: t!.auth.credentials(Role.Operator, "dashboard"), port: 0, limits: { snapshotIntervalMs: 250, clientsMax: 4 },
  });
  const page = await browser!.newPage();
  leftOpen.add(page); // closed after the test even when it fails, so the next one finds no page of this one's
  const problems: string[] = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warn") problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e instanceof Error ? e.message : String(e)}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(dashboard.url, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#status[data-state='live']", { timeout: 10_000 });

  // Nodes: every one the controller lists, with its tier and state, and the counts by tier.
  const nodes = await c.listNodes();
  expect(nodes.map((n) => n.nodeId).sort()).toEqual(["dram-0", "dram-auto-1", "dram-auto-2"]);
  await until("the node table showing the controller's nodes", async () => {
    const truth = (await c.listNodes()).map((n) => ({ nodeId: n.nodeId, tier: n.tier, state: n.state, text: n.nodeId }));
    return JSON.stringify(await domNodes(page)) === JSON.stringify(truth);
  });
  expect(await page.$eval("#tier-counts tr[data-tier='dram'] td[data-state='active']", (e) => e.textContent)).toBe("3");
  expect(await page.$eval("#tier-counts tr[data-tier='dram'] td[data-state='total']", (e) => e.textContent)).toBe("3");

  // The job and its weight map, as the controller has it.
  await until("the job's card showing its weights", async () => {
    const truth = (await c.listJobs()).find((j) => j.jobId === big.jobId)!.weights;
    const shown = await domWeights(page, big.jobId);
    const sorted = [...shown].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    return truth.length === 3 && JSON.stringify(sorted.map((w) => ({ nodeId: w.nodeId, weight: w.weight }))) ===
      JSON.stringify([...truth].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1)));
  });
  for (const w of await domWeights(page, big.jobId)) expect(w.shown).toBe(w.weight.toFixed(3));
  expect(await page.$eval(`article[data-job-id="${big.jobId}"] h3`, (e) => e.textContent)).toBe(`sorter ${big.jobId}`);

  // The band comes from the controller's policy; the chart draws its lines there, and lines for the dram tier's use.
  const scaling = (await c.controller.call(ControllerOps.scalingStatus, {})).reply;
  expect([scaling.bandLow, scaling.bandHigh]).toEqual([0.6, 0.8]);
  const band = await page.$$eval("svg.util-chart[data-tier='dram'] line.band-line", (ls) => ls.map((l) => ({
    band: l.getAttribute("data-band"), value: Number(l.getAttribute("data-value")), y: Number(l.getAttribute("y1")),
  })));
  expect(band.map((b) => [b.band, b.value])).toEqual([["high", scaling.bandHigh], ["low", scaling.bandLow]]);
  expect(band[0]!.y).toBeLessThan(band[1]!.y);
  await until("a capacity line drawn", async () =>
    (await page.$eval("svg.util-chart[data-tier='dram'] path[data-series='capacity']", (p) => p.getAttribute("d") ?? "")).includes("L"));

  // The scaling timeline marks each launch the controller made.
  const launched = nodes.filter((n) => n.launched).map((n) => n.nodeId).sort();
  await until("a launch mark per launched node", async () => {
    const marks = await page.$$eval("#timeline-chart .mark[data-kind='node.launch']", (ms) => ms.map((m) => m.getAttribute("data-node-id")));
    return JSON.stringify([...marks].sort()) === JSON.stringify(launched);
  });
  expect(await page.$$eval("#timeline-list li[data-kind='node.launch']", (ls) => ls.length)).toBe(2);

  // A decision made now reaches the open page without a reload, at the top of the feed.
  await page.evaluate(() => { (globalThis as unknown as InPage).document.body.dataset["marker"] = "loaded once"; });
  const second = await c.registerJob("second", { capacityBytes: 1 * MiB });
  await page.waitForFunction((jobId: string) => {
    const { document } = globalThis as unknown as InPage;
    return Array.from(document.querySelectorAll("#event-feed li[data-kind='job.registered']")).some((li) => (li.textContent ?? "").includes(jobId))
      && document.querySelector(`article[data-job-id="${jobId}"]`) !== null;
  }, { timeout: 10_000 }, second.jobId);
  const feed = await page.$$eval("#event-feed li", (ls) => ls.map((l) => l.textContent ?? ""));
  const at = (jobId: string) => feed.findIndex((l) => l.includes("job.registered") && l.includes(jobId));
  expect(at(second.jobId)).toBeGreaterThanOrEqual(0);
  expect(at(second.jobId)).toBeLessThan(at(big.jobId));
  expect(await page.evaluate(() => (globalThis as unknown as InPage).document.body.dataset["marker"])).toBe("loaded once");

  // The JSON snapshot says the same as the controller.
  const snapshot = await (await fetch(`${dashboard.url}api/snapshot`)).json() as { nodes: Array<{ nodeId: string }>; jobs: Array<{ jobId: string }>; scaling: { bandHigh: number } };
  expect(snapshot.nodes.map((n) => n.nodeId).sort()).toEqual(nodes.map((n) => n.nodeId).sort());
  expect(snapshot.jobs.map((j) => j.jobId).sort()).toEqual([big.jobId, second.jobId].sort());
  expect(snapshot.scaling.bandHigh).toBe(scaling.bandHigh);

  // A screenshot: a real PNG of the whole page, of many colours.
  if (writeDocsScreenshot) await growForThePicture(job);
  const file = path.join(tmp, "dashboard.png");
  await page.screenshot({ path: file, fullPage: true });
  const png = fs.readFileSync(file);
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
  expect(png.readUInt32BE(16)).toBe(1280);
  expect(png.readUInt32BE(20)).toBeGreaterThanOrEqual(900);
  expect(await distinctColours(png, 1000)).toBeGreaterThan(50);
  if (writeDocsScreenshot) fs.copyFileSync(file, path.join(projectRoot(), "docs", "dashboard.png"));

  expect(problems).toEqual([]);
  await page.close();
  leftOpen.delete(page);
  await c.deregisterJob(second.token);
  await c.deregisterJob(big.token);
}, writeDocsScreenshot ? 90_000 : 40_000);

test("at most clientsMax live pages; a request for another host name is refused", async () => {
  const url = new URL(dashboard!.url);
  // The page of the first test is closed: four streams fit, a fifth is refused with a retry hint.
  const opened: http.ClientRequest[] = [];
  try {
    // The closed page's stream may take a moment to leave: retry until four are open.
    await eventually(async () => {
      const { status, req } = await openLive(url, url.host);
      if (status === 200) opened.push(req);
      else req.destroy();
      return opened.length === 4;
    }, 5_000, "four streams open");
    const fifth = await openLive(url, url.host);
    fifth.req.destroy();
    expect(fifth.status).toBe(503);
  } finally {
    for (const r of opened) r.destroy();
  }
  // A name rebound to this machine by someone else's DNS gets nothing.
  const { status, req } = await openLive(url, `rebound.example:${url.port}`);
  req.destroy();
  expect(status).toBe(421);
});

/** The status of a GET of `path` from the dashboard at `url`, with this Host header and more headers. */
function statusOf(url: URL, path: string, host: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port: url.port, path, headers: { ...headers, Host: host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on("error", reject);
  });
}

/**
 * The status the server sent for the browser's request of `url`, made by
 * `request` (seen by the browser's network layer: a page may not read another
 * site's response, and the browser blocks it before the page sees anything).
 */
async function statusSentToBrowser(page: Page, url: string, request: () => Promise<void>): Promise<number> {
  const cdp = await page.createCDPSession();
  try {
    await cdp.send("Network.enable");
    const urls = new Map<string, string>();
    const statuses = new Map<string, number>();
    const sent = new Promise<number>((resolve) => {
      const check = (id: string): void => { if (urls.get(id) === url && statuses.has(id)) resolve(statuses.get(id)!); };
      cdp.on("Network.requestWillBeSent", (e) => { urls.set(e.requestId, e.request.url); check(e.requestId); });
      cdp.on("Network.responseReceivedExtraInfo", (e) => { statuses.set(e.requestId, e.statusCode); check(e.requestId); });
    });
    await request();
    return await within(sent, 10_000, `the response to the browser's request of ${url}`);
  } finally {
    await cdp.detach();
  }
}

/** This machine's interface addresses, as a Host header names them. */
function interfaceHosts(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((as) => as ?? []).map((a) => (a.family === "IPv6" ? `[${a.address}]` : a.address));
}

test("on every interface, it answers only to its own names and those allowed, and never to another site's page", async () => {
  const credentials = t!.auth.credentials(Role.Operator, "dashboard-wide");
  await expect(startDashboard({ servers: t!.nats.url, credentials, allowedHosts: ["http://pocket-dash.example/"] })).rejects.toBeInstanceOf(InvalidArgumentError);
  const wide = await startDashboard({ servers: t!.nats.url, credentials, host: "0.0.0.0", port: 0, allowedHosts: ["pocket-dash.example"] });
  const page = await browser!.newPage();
  const other = http.createServer((_req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>another site</title>");
  });
  try {
    const url = new URL(wide.url);
    const port = url.port;
    // Its own names: loopback's, every interface's address, the allowed one (in any case), with or without the port.
    for (const host of ["127.0.0.1", "localhost", "[::1]", ...interfaceHosts(), "pocket-dash.example", "POCKET-DASH.Example"]) {
      for (const h of [`${host}:${port}`, host]) expect({ h, status: await statusOf(url, "/api/snapshot", h) }).toEqual({ h, status: 200 });
    }
    // Any other name, or a Host header that is not a name, gets nothing.
    for (const h of [`${reboundName}:${port}`, `127.0.0.1.${reboundName}:${port}`, `dash.pocket-dash.example:${port}`, `x@127.0.0.1:${port}`, "127.0.0.1/x"]) {
      expect({ h, status: await statusOf(url, "/api/snapshot", h) }).toEqual({ h, status: 421 });
    }
    // A request a browser makes for another site's page is refused; its own page's, and typed-in ones, are not.
    const own = `127.0.0.1:${port}`;
    expect(await statusOf(url, "/api/snapshot", own, { "Sec-Fetch-Site": "cross-site" })).toBe(403);
    expect(await statusOf(url, "/api/live", own, { "Sec-Fetch-Site": "cross-site" })).toBe(403);
    for (const site of ["same-origin", "same-site", "none"]) expect(await statusOf(url, "/", own, { "Sec-Fetch-Site": site })).toBe(200);

    // In a browser: a page at a name rebound to this machine is refused.
    expect((await page.goto(`http://${reboundName}:${port}/`))!.status()).toBe(421);
    // Another site's page asking for the snapshot: the browser says where the request comes from, and it is refused.
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    await page.goto(`http://${otherSiteName}:${(other.address() as AddressInfo).port}/`);
    const snapshot = `http://127.0.0.1:${port}/api/snapshot`;
    const status = await statusSentToBrowser(page, snapshot, async () => {
      await page.evaluate((u: string) => fetch(u, { mode: "no-cors" }).then(() => "read", () => "refused"), snapshot);
    });
    expect(status).toBe(403);
  } finally {
    await page.close();
    other.closeAllConnections();
    await new Promise<void>((resolve) => other.close(() => resolve()));
    await wide.close();
  }
}, 30_000);

/** Opens the live feed with a Host header of its own; resolves with the status once the headers are in. */
function openLive(url: URL, host: string): Promise<{ status: number; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: url.hostname, port: url.port, path: "/api/live", headers: { Host: host } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, req });
    });
    req.on("error", reject);
  });
}

test("a page that does not read loses its oldest events, not the server's memory, and is told how many", async () => {
  const backlogMax = 4;
  let client: SseClient | undefined;
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    res.flushHeaders();
    client = new SseClient(res, { backlogMax, stalledMaxMs: 60_000 }, () => Date.now());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    let body = "";
    let paused: http.IncomingMessage | undefined;
    await within(new Promise<void>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port, path: "/" }, (res) => {
        paused = res;
        res.pause();
        res.setEncoding("utf8");
        res.on("data", (d: string) => { body += d; });
        resolve();
      }).on("error", reject);
    }), 5_000, "the stream's headers");
    await eventually(() => client !== undefined, 5_000, "the stream open");
    // Big frames until the socket stops taking them (the reader is paused), then more: the backlog is full at backlogMax.
    const filler = "x".repeat(256 * 1024);
    let sent = 0;
    await eventually(() => {
      client!.event(sseFrame("event", { seq: ++sent, filler }));
      return client!.dropped > 0;
    }, 10_000, "frames past the backlog dropped");
    for (let i = 0; i < 10; i++) client!.event(sseFrame("event", { seq: ++sent, filler }));
    const dropped = client!.dropped;
    expect(dropped).toBeGreaterThanOrEqual(11);
    paused!.resume();
    await within(new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (body.includes(`"seq":${sent},`)) { clearInterval(check); resolve(); }
      }, 10);
    }), 10_000, "the last frame delivered");
    // The reader got the frames before the socket filled, a notice of what was dropped, then the newest backlogMax.
    const seqs = [...body.matchAll(/"seq":(\d+)/g)].map((m) => Number(m[1]));
    expect(seqs.slice(-backlogMax)).toEqual([sent - 3, sent - 2, sent - 1, sent]);
    expect(seqs.length).toBe(sent - dropped);
    const notice = /event: dropped\ndata: (\{[^\n]*\})/.exec(body);
    expect(JSON.parse(notice![1]!)).toEqual({ count: dropped, total: dropped });
    expect(body.indexOf("event: dropped")).toBeLessThan(body.indexOf(`"seq":${sent - 3},`));
  } finally {
    client?.end();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
