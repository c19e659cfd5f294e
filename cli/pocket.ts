#!/usr/bin/env node
import fs from "node:fs";
import { parseArgs } from "node:util";
import { isPocketError } from "../schemas/errors";
import type { JobHints } from "../schemas/operations";
import { pipeline } from "node:stream/promises";
import { credentialsFromEnv, PocketClient, tlsCaFromEnv, type ClientTransport, type PocketJob } from "../client/pocket";
import { LocalCluster } from "../deploy/local-cluster";
import { peekJobClaims } from "../bus/tokens";
import { formatBytes, parseBytes, parseDuration, parseRate } from "../lib/units";
import { connectWithCreds } from "../bus/nats-connect";
import { Role } from "../bus/credentials";
import { ClusterAuth } from "../deploy/cluster-auth";
import { ControllerOps } from "../schemas/operations";
import { readEvents } from "../bus/events";
import { decisionLine, describeDecision, diffLines, readExpected, replayInputs, replayTrace } from "../actors/controller/replay";
import type { ControllerInput, Decision } from "../actors/controller/inputs";
import { SubjectRoot } from "../bus/subjects";
import { calibrate, readDeviceModel } from "../native/calibrate";

const usage = `pocket — elastic ephemeral storage for serverless analytics

Cluster
  pocket up [--nats URL [--auth-dir DIR]] [--dram N] [--shards N] [--dram-capacity 1GiB] [--data-dir DIR]
            [--nvme N] [--nvme-file-size 1GiB] [--nvme-device PATH] [--nvme-model FILE]
            [--min-nodes N] [--max-nodes N] [--store FILE|postgres://...] [--orchestrator local|events-only]
            [--tls [--tls-host HOST,...]]
                                     run a local cluster in the foreground; prints its NATS URL and the
                                     credentials of a job driver (POCKET_NATS_CREDS) and an operator
                                     (POCKET_ADMIN_CREDS) when ready; with --tls, NATS and the direct
                                     transport run TLS only, and it prints the CA clients need (POCKET_TLS_CA)
  pocket auth init DIR               create a cluster's bus identities in DIR (for --nats URL: the server
                                     must include DIR/nats-auth.conf)
  pocket nodes [--json]              storage nodes: state, tier, utilisation, reservations, weight per job
  pocket node retire NODE            drain a node and remove it once it holds no data
  pocket shards [--json]             metadata shards
  pocket jobs [--json]               registered jobs
  pocket events [--follow] [--inputs] [--json]
                                     the controller's decisions and lifecycle changes (and the inputs behind them)
  pocket usage JOB [--json]          what a job used and what it costs at the tier's node-hour price
  pocket calibrate --device PATH [--size 1GiB] [--latency 1000] [--seconds 1] [--out FILE]
                                     measure p95 latency against offered load (reads, 80/20 mix) on a device
                                     or file and write the device model NVMe nodes schedule by
  pocket replay TRACE|--stream [--expect FILE] [--write FILE] [--json]
                                     re-run the controller's decisions over a recorded trace (NDJSON, or the
                                     inputs on the event stream); with --expect, print the differences and
                                     exit 1 if there are any

Jobs
  pocket job register NAME [--lambdas N] [--capacity 10GiB] [--throughput 1Gbps] [--latency-sensitive] [--read-ratio 0.8] [--json]
  pocket job deregister JOB

Objects (JOB must be the job of the token)
  pocket put JOB KEY FILE|-          store a file (or standard input) as KEY
  pocket get JOB KEY [FILE|-]        write KEY to a file (or standard output)
  pocket ls JOB [DIR] [--json]       list a directory
  pocket stat JOB KEY [--json]
  pocket count JOB [DIR] [--recursive] [--json]
  pocket mkdir JOB DIR
  pocket rm JOB KEY [--recursive]

Environment: POCKET_NATS_URL (default nats://127.0.0.1:4222), POCKET_TOKEN (or --token),
POCKET_TLS_CA (or --tls-ca FILE: the CA certificate of a cluster that runs TLS).
Credentials (or --creds FILE): cluster and job listing verbs use POCKET_ADMIN_CREDS (an operator's creds
file); job register/deregister use POCKET_NATS_CREDS (a driver's); object verbs use POCKET_CREDS (the
lambda credential \`pocket job register\` prints) or else POCKET_NATS_CREDS.
`;

class UsageError extends Error {
  override readonly name = "UsageError";
}

const options = {
  nats: { type: "string" },
  token: { type: "string" },
  creds: { type: "string" },
  "auth-dir": { type: "string" },
  tls: { type: "boolean" },
  "tls-host": { type: "string" },
  "tls-ca": { type: "string" },
  json: { type: "boolean" },
  dram: { type: "string" },
  shards: { type: "string" },
  "dram-capacity": { type: "string" },
  "data-dir": { type: "string" },
  "min-nodes": { type: "string" },
  nvme: { type: "string" },
  "nvme-file-size": { type: "string" },
  "nvme-device": { type: "string" },
  "nvme-model": { type: "string" },
  device: { type: "string" },
  size: { type: "string" },
  latency: { type: "string" },
  seconds: { type: "string" },
  out: { type: "string" },
  "max-nodes": { type: "string" },
  store: { type: "string" },
  orchestrator: { type: "string" },
  lease: { type: "string" },
  follow: { type: "boolean", short: "f" },
  inputs: { type: "boolean" },
  expect: { type: "string" },
  stream: { type: "boolean" },
  write: { type: "string" },
  lambdas: { type: "string" },
  capacity: { type: "string" },
  throughput: { type: "string" },
  "latency-sensitive": { type: "boolean" },
  "read-ratio": { type: "string" },
  recursive: { type: "boolean", short: "r" },
  transport: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Flags = ReturnType<typeof parse>["values"];
function parse(argv: string[]) {
  return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
}

function natsUrl(flags: Flags): string {
  return flags.nats ?? process.env["POCKET_NATS_URL"] ?? "nats://127.0.0.1:4222";
}

function int(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} takes a whole number, not ${JSON.stringify(text)}`);
  return n;
}

function ratio(text: string, name: string): number {
  const n = Number(text);
  if (text.trim() === "" || !(n >= 0 && n <= 1)) throw new UsageError(`--${name} takes a number from 0 to 1, not ${JSON.stringify(text)}`);
  return n;
}

function out(flags: Flags, value: unknown, text: () => string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

/** Which credential a verb speaks with: an operator's, a driver's, or a lambda's. */
const As = { Admin: "admin", Driver: "driver", Lambda: "lambda" } as const;
type As = (typeof As)[keyof typeof As];

/** The creds text for a verb: --creds, else the environment variable of its role; undefined if none is set. */
function credentialsFor(flags: Flags, as: As): string | undefined {
  if (flags.creds) return fs.readFileSync(flags.creds, "utf8");
  if (as === As.Lambda) {
    const lambda = credentialsFromEnv({ POCKET_CREDS: process.env["POCKET_CREDS"] });
    if (lambda) return lambda;
  }
  const file = as === As.Admin ? process.env["POCKET_ADMIN_CREDS"] : process.env["POCKET_NATS_CREDS"];
  return file ? fs.readFileSync(file, "utf8") : undefined;
}

/** The CA certificate (PEM) of a cluster that runs TLS: --tls-ca, else the file POCKET_TLS_CA names; undefined if neither. */
function tlsCaFor(flags: Flags): string | undefined {
  return flags["tls-ca"] ? fs.readFileSync(flags["tls-ca"], "utf8") : tlsCaFromEnv();
}

/** The NATS connection's TLS settings for the CLI's own connections. */
function natsTlsFor(flags: Flags): { tls?: { ca: string } } {
  const ca = tlsCaFor(flags);
  return ca !== undefined ? { tls: { ca } } : {};
}

async function withClient<T>(flags: Flags, as: As, fn: (c: PocketClient) => Promise<T>): Promise<T> {
  const c = await PocketClient.connect({
    servers: natsUrl(flags), name: "pocket-cli", transport: flags.transport as ClientTransport | undefined, credentials: credentialsFor(flags, as),
    tlsCa: tlsCaFor(flags),
  });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

function tokenFor(flags: Flags, job: string | undefined): string {
  if (!job) throw new UsageError("JOB is missing");
  const token = flags.token ?? process.env["POCKET_TOKEN"];
  if (!token) throw new UsageError("no token: set POCKET_TOKEN or pass --token (from `pocket job register`)");
  const claims = peekJobClaims(token);
  if (claims.jobId !== job) throw new UsageError(`the token is for job ${claims.jobId}, not ${job}`);
  return token;
}

/** Stores a file or standard input, streaming: the CLI's memory does not grow with the object. */
async function putFile(job: PocketJob, key: string, file: string): Promise<{ version: number; size: number }> {
  if (file === "-") return job.putStream(key, process.stdin);
  const { size } = await fs.promises.stat(file);
  if (size <= 64 * 1024) return job.put(key, await fs.promises.readFile(file));
  return job.putStream(key, fs.createReadStream(file, { highWaterMark: 1024 * 1024 }), { size });
}

async function up(flags: Flags): Promise<void> {
  const cluster = await LocalCluster.start({
    natsUrl: flags.nats,
    authDir: flags["auth-dir"],
    dram: int(flags.dram, "dram", 2),
    shards: int(flags.shards, "shards", 2),
    dramCapacityBytes: flags["dram-capacity"] ? parseBytes(flags["dram-capacity"]) : undefined,
    dataDir: flags["data-dir"],
    nvme: int(flags.nvme, "nvme", 0),
    nvmeCapacityBytes: flags["nvme-file-size"] ? parseBytes(flags["nvme-file-size"]) : undefined,
    nvmeDevice: flags["nvme-device"],
    nvmeModel: flags["nvme-model"] ? readDeviceModel(flags["nvme-model"]) : undefined,
    minNodes: flags["min-nodes"] !== undefined ? int(flags["min-nodes"], "min-nodes", 0) : undefined,
    maxNodes: flags["max-nodes"] !== undefined ? int(flags["max-nodes"], "max-nodes", 0) : undefined,
    store: flags.store,
    orchestrator: orchestratorFlag(flags.orchestrator),
    tls: flags.tls ?? false,
    tlsHosts: flags["tls-host"] ? flags["tls-host"].split(",").map((h) => h.trim()).filter((h) => h.length > 0) : undefined,
  });
  const env = { ...cluster.driverEnv(), ...(cluster.auth ? { POCKET_ADMIN_CREDS: cluster.credsFile(Role.Operator, "admin")! } : {}) };
  if (!cluster.auth) process.stderr.write("pocket: warning: the bus has no authentication (--nats without --auth-dir): anyone who reaches it can read and forge cluster traffic\n");
  out(flags, { ...env, natsUrl: cluster.natsUrl, dataDir: cluster.dataDir, natsMonitorUrl: cluster.natsMonitorUrl, endpoints: cluster.endpoints() },
    () => Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(""));
  if (!flags.json) process.stderr.write(describeEndpoints(cluster));
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  process.stderr.write("pocket: stopping the cluster\n");
  await cluster.stop();
}

/** Where to scrape and probe the cluster (stderr, so that stdout stays what `eval` takes). */
function describeEndpoints(cluster: LocalCluster): string {
  const lines = cluster.endpoints().map((e) => `  ${e.name.padEnd(12)} http://${e.http}/metrics  /healthz  /readyz\n`);
  if (cluster.natsMonitorUrl) lines.push(`  ${"nats-server".padEnd(12)} ${cluster.natsMonitorUrl}/varz  /connz  /jsz\n`);
  return lines.length > 0 ? `pocket: metrics and probes (docs/metrics.md):\n${lines.join("")}` : "";
}

function orchestratorFlag(v: string | undefined): "local" | "events-only" | undefined {
  if (v === undefined || v === "local" || v === "events-only") return v;
  throw new UsageError(`--orchestrator is local or events-only, not ${JSON.stringify(v)}`);
}

function pct(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}

async function events(flags: Flags): Promise<void> {
  const nc = await connectWithCreds(natsUrl(flags), credentialsFor(flags, As.Admin), undefined, { name: "pocket-cli", maxReconnectAttempts: 10, ...natsTlsFor(flags) });
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once("SIGINT", stop);
  let origin: number | undefined;
  try {
    for await (const { seq, subject, event } of readEvents(nc, { follow: flags.follow, inputs: flags.inputs, signal: ac.signal })) {
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ seq, ...event })}\n`);
        continue;
      }
      const at = typeof event["atMs"] === "number" ? event["atMs"] : 0;
      origin ??= at;
      // Decisions read as sentences; inputs (on the trace subjects) as they were recorded.
      const line = subject.startsWith(`${SubjectRoot}.evt.`)
        ? describeDecision(event as unknown as Decision, origin)
        : `${((at - origin) / 1000).toFixed(1).padStart(7)}s  ${String(event["kind"]).padEnd(16)} ${JSON.stringify(event)}`;
      process.stdout.write(`${new Date(at).toISOString()} ${line.trimStart()}\n`);
    }
  } finally {
    process.off("SIGINT", stop);
    await nc.close();
  }
}

/** The inputs recorded on the event stream, in order. */
async function streamInputs(flags: Flags): Promise<ControllerInput[]> {
  const nc = await connectWithCreds(natsUrl(flags), credentialsFor(flags, As.Admin), undefined, { name: "pocket-cli", maxReconnectAttempts: 10, ...natsTlsFor(flags) });
  try {
    const inputs: ControllerInput[] = [];
    for await (const { subject, event } of readEvents(nc, { inputs: true })) {
      if (subject.startsWith(`${SubjectRoot}.trace.`)) inputs.push(event as unknown as ControllerInput);
    }
    return inputs;
  } finally {
    await nc.close();
  }
}

async function replay(flags: Flags, trace: string | undefined): Promise<void> {
  if (!trace && !flags.stream) throw new UsageError("pocket replay TRACE|--stream [--expect FILE]");
  const { decisions } = flags.stream ? replayInputs(await streamInputs(flags)) : await replayTrace(trace!);
  const lines = decisions.map(decisionLine);
  if (flags.write) fs.writeFileSync(flags.write, lines.map((l) => `${l}\n`).join(""));
  if (flags.expect) {
    const diff = diffLines(readExpected(flags.expect), lines);
    if (diff.length === 0) {
      process.stdout.write(`${lines.length} decisions, as expected\n`);
      return;
    }
    for (const d of diff) process.stdout.write(`${d.op} ${d.op === "-" ? "expected" : "replayed"} #${d.at}: ${d.line}\n`);
    process.stdout.write(`${diff.filter((d) => d.op === "-").length} expected decisions missing, ${diff.filter((d) => d.op === "+").length} unexpected\n`);
    process.exitCode = 1;
    return;
  }
  if (flags.json) {
    for (const l of lines) process.stdout.write(`${l}\n`);
    return;
  }
  const origin = decisions[0]?.atMs ?? 0;
  for (const d of decisions) process.stdout.write(`${describeDecision(d, origin)}\n`);
}

/** `pocket auth init DIR`: creates a cluster's bus identities. */
async function authInit(flags: Flags, args: readonly string[]): Promise<void> {
  const [sub, dir] = args;
  if (sub !== "init" || !dir) throw new UsageError("pocket auth init DIR");
  const auth = ClusterAuth.open(dir);
  out(flags, { dir: auth.dir, serverConfig: auth.serverConfigFile }, () =>
    `bus identities in ${auth.dir}\nadd to the nats-server config:  include "${auth.serverConfigFile}"\nthen: pocket up --nats URL --auth-dir ${auth.dir}\n`);
}

/** `pocket nodes`: one row per storage node, then a line per tier. */
function listNodes(flags: Flags): Promise<void> {
  return withClient(flags, As.Admin, async (c) => {
    const nodes = await c.listNodes();
    const tiers = new Map<string, { nodes: number; used: number; capacity: number }>();
    for (const n of nodes.filter((x) => x.state === "active")) {
      const t = tiers.get(n.tier) ?? { nodes: 0, used: 0, capacity: 0 };
      tiers.set(n.tier, { nodes: t.nodes + 1, used: t.used + n.usedBytes, capacity: t.capacity + n.capacityBytes });
    }
    out(flags, nodes, () => table([
      ["NODE", "TIER", "STATE", "ADDR", "USED", "CAPACITY", "CPU", "NET", "CAP", "RESERVED", "WEIGHTS"],
      ...nodes.map((n) => [n.nodeId, n.tier, n.state + (n.launched ? "*" : ""), n.addr || "-", formatBytes(n.usedBytes), formatBytes(n.capacityBytes),
        pct(n.utilisation.cpu), pct(n.utilisation.network), pct(n.utilisation.capacity), formatBytes(n.reservedBytes),
        n.jobWeights.map((w) => `${w.jobId}:${w.weight.toFixed(2)}`).join(",") || "-"]),
    ]) + (nodes.some((n) => n.launched) ? "* launched by the controller\n" : "") + [...tiers].map(([tier, t]) =>
      `${tier}: ${formatBytes(t.used)} of ${formatBytes(t.capacity)} used (${t.capacity > 0 ? ((100 * t.used) / t.capacity).toFixed(1) : "0"}%) on ${t.nodes} active node(s)\n`).join(""));
  });
}

/** `pocket shards`: the metadata shards. */
function listShards(flags: Flags): Promise<void> {
  return withClient(flags, As.Admin, async (c) => {
    const shards = await c.listShards();
    out(flags, shards, () => table([["SHARD", "STATE", "JOBS", "OBJECTS"], ...shards.map((s) => [s.shardId, s.state, String(s.jobs), String(s.objects)])]));
  });
}

/** `pocket jobs`: the registered jobs. */
function listJobs(flags: Flags): Promise<void> {
  return withClient(flags, As.Admin, async (c) => {
    const jobs = await c.listJobs();
    out(flags, jobs, () => table([
      ["JOB", "NAME", "STATE", "TIER", "SHARD", "REGISTERED", "WEIGHTS"],
      ...jobs.map((j) => [j.jobId, j.name, j.state, j.tier, j.shardId, new Date(j.registeredAtMs).toISOString(),
        j.weights.map((w) => `${w.nodeId}:${w.weight.toFixed(2)}`).join(",")]),
    ]));
  });
}

/** `pocket job register|deregister`. */
async function jobVerb(flags: Flags, args: readonly string[]): Promise<void> {
  const [sub, name] = args;
  if (sub === "register") return jobRegister(flags, name);
  if (sub === "deregister") return jobDeregister(flags, name);
  throw new UsageError("pocket job register|deregister");
}

/** The job's hints from the flags, leaving out those not given. */
function hintsFrom(flags: Flags): JobHints {
  const hints: JobHints = {
    lambdas: flags.lambdas !== undefined ? int(flags.lambdas, "lambdas", 0) : undefined,
    capacityBytes: flags.capacity ? parseBytes(flags.capacity) : undefined,
    throughputBps: flags.throughput ? parseRate(flags.throughput) : undefined,
    latencySensitive: flags["latency-sensitive"] ? true : undefined,
    readRatio: flags["read-ratio"] !== undefined ? ratio(flags["read-ratio"], "read-ratio") : undefined,
  };
  for (const k of Object.keys(hints) as Array<keyof JobHints>) if (hints[k] === undefined) delete hints[k];
  return hints;
}

/** `pocket job register NAME`: prints what a lambda needs to use the job. */
async function jobRegister(flags: Flags, name: string | undefined): Promise<void> {
  if (!name) throw new UsageError("pocket job register NAME");
  const hints = hintsFrom(flags);
  return withClient(flags, As.Driver, async (c) => {
    // The CLI exits at once, so it cannot renew: the lease is --lease (default 1 h).
    const reg = await c.registerJob(name, hints, { renew: false, leaseMs: flags.lease ? parseDuration(flags.lease) : 3600_000 });
    // What a lambda needs and nothing more: the job, its token and its one-job NATS credential.
    const creds = reg.credentials ? `POCKET_CREDS=${Buffer.from(reg.credentials, "utf8").toString("base64url")}\n` : "";
    out(flags, reg, () => `POCKET_JOB=${reg.jobId}\nPOCKET_TOKEN=${reg.token}\n${creds}`);
  });
}

/** `pocket job deregister JOB`. */
async function jobDeregister(flags: Flags, job: string | undefined): Promise<void> {
  const token = tokenFor(flags, job);
  return withClient(flags, As.Driver, async (c) => {
    const r = await c.deregisterJob(token);
    out(flags, r, () => `deregistered ${r.jobId}; freed ${formatBytes(r.freedBytes)}\n`);
  });
}

/** `pocket node retire NODE`. */
async function nodeRetire(flags: Flags, args: readonly string[]): Promise<void> {
  const [sub, nodeId] = args;
  if (sub !== "retire" || !nodeId) throw new UsageError("pocket node retire NODE");
  return withClient(flags, As.Admin, async (c) => {
    const r = (await c.controller.call(ControllerOps.nodeRetire, { nodeId })).reply;
    out(flags, r, () => `${r.nodeId}: ${r.state}\n`);
  });
}

/** `pocket usage JOB`: what a job used and what it costs. */
async function jobUsage(flags: Flags, args: readonly string[]): Promise<void> {
  const [jobId] = args;
  if (!jobId) throw new UsageError("pocket usage JOB");
  return withClient(flags, As.Admin, async (c) => {
    const u = (await c.controller.call(ControllerOps.jobUsage, { jobId })).reply;
    const ended = u.endedAtMs ?? Date.now();
    out(flags, u, () => [
      `job ${u.jobId} (${u.name}): ${u.state}, ${u.tier}, ${((ended - u.registeredAtMs) / 1000).toFixed(1)} s`,
      `  reserved   ${u.demand.nodes.toFixed(3)} node(s) (${u.demand.bound}-bound: ${formatBytes(u.demand.capacityBytes)}, ${formatBytes(u.demand.throughputBps)}/s)`,
      `  stored     ${formatBytes(u.bytes)} now; ${(u.byteSeconds / 2 ** 30).toFixed(2)} GiB·s in all`,
      `  requests   ${u.requests}`,
      `  node-hours ${u.reservedNodeHours.toFixed(6)} reserved, ${u.usedNodeHours.toFixed(6)} used`,
      `  cost       $${u.cost.toFixed(6)} at $${u.pricePerNodeHour}/node-hour`,
      "",
    ].join("\n"));
  });
}

/** `pocket calibrate --device PATH`: measures a device and writes its model. */
async function calibrateVerb(flags: Flags): Promise<void> {
  if (!flags.device) throw new UsageError("pocket calibrate --device PATH [--size 1GiB] [--latency 1000] [--seconds 1] [--out FILE]");
  const limit = Number(flags.latency ?? "1000");
  const seconds = Number(flags.seconds ?? "1");
  if (!(limit > 0) || !(seconds > 0)) throw new UsageError("--latency (µs) and --seconds must be positive");
  const model = await calibrate({
    path: flags.device, sizeBytes: flags.size ? parseBytes(flags.size) : undefined, latencyLimitUs: limit, stepSeconds: seconds, readRatio: 0.8,
  }, (p) => process.stderr.write(`calibrate: ${p.workload.padEnd(5)} offered ${String(p.offeredIops).padStart(7)} IOPS → ${String(Math.round(p.achievedIops)).padStart(7)} IOPS, p95 ${p.p95Us.toFixed(0)} µs\n`));
  const outFile = flags.out ?? "pocket-device-model.json";
  fs.writeFileSync(outFile, JSON.stringify(model, null, 2));
  out(flags, model, () => `${Math.round(model.tokensPerSec).toLocaleString("en")} tokens/s within a p95 of ${model.latencyLimitUs} µs; a 4 KiB write costs ${model.writeCost} (a read ${model.readCost}); written to ${outFile}\n`);
}

/** `pocket put JOB KEY FILE|-`. */
async function putVerb(flags: Flags, args: readonly string[]): Promise<void> {
  const [job, key, file] = args;
  if (!key || !file) throw new UsageError("pocket put JOB KEY FILE|-");
  const token = tokenFor(flags, job);
  return withClient(flags, As.Lambda, async (c) => {
    const r = await putFile(c.job(token), key, file);
    out(flags, r, () => `${key}: ${formatBytes(r.size)}, version ${r.version}\n`);
  });
}

/** `pocket get JOB KEY [FILE|-]`. */
async function getVerb(flags: Flags, args: readonly string[]): Promise<void> {
  const [job, key, file] = args;
  if (!key) throw new UsageError("pocket get JOB KEY [FILE|-]");
  const token = tokenFor(flags, job);
  return withClient(flags, As.Lambda, async (c) => {
    const dest = file && file !== "-" ? fs.createWriteStream(file) : process.stdout;
    await pipeline(c.job(token).getStream(key), dest);
  });
}

/** `pocket ls JOB [DIR]`. */
async function lsVerb(flags: Flags, args: readonly string[]): Promise<void> {
  const [job, dir] = args;
  const token = tokenFor(flags, job);
  return withClient(flags, As.Lambda, async (c) => {
    const entries: Array<{ name: string; type: string; size: number }> = [];
    for await (const e of c.job(token).listAll(dir ?? "")) entries.push(e);
    out(flags, entries, () => entries.map((e) => (e.type === "directory" ? `${e.name}/\n` : `${e.name}\t${e.size}\n`)).join(""));
  });
}

/** `pocket stat JOB KEY`. */
async function statVerb(flags: Flags, args: readonly string[]): Promise<void> {
  const [job, key] = args;
  if (!key) throw new UsageError("pocket stat JOB KEY");
  const token = tokenFor(flags, job);
  return withClient(flags, As.Lambda, async (c) => {
    const s = await c.job(token).stat(key);
    out(flags, s, () => `${s.path}: ${s.type}, ${s.type === "object" ? `${s.size} bytes, version ${s.version}` : `${s.children} entries`}\n`);
  });
}

/** `pocket count JOB [DIR] [--recursive]`. */
async function countVerb(flags: Flags, args: readonly string[]): Promise<void> {
  const [job, dir] = args;
  const token = tokenFor(flags, job);
  return withClient(flags, As.Lambda, async (c) => {
    const n = await c.job(token).count(dir ?? "", { recursive: flags.recursive });
    out(flags, n, () => `${n.objects} objects, ${n.directories} directories, ${formatBytes(n.bytes)}\n`);
  });
}

/** `pocket mkdir JOB DIR`. */
async function mkdirVerb(flags: Flags, args: readonly string[]): Promise<void> {
  const [job, dir] = args;
  if (!dir) throw new UsageError("pocket mkdir JOB DIR");
  const token = tokenFor(flags, job);
  return withClient(flags, As.Lambda, (c) => c.job(token).mkdir(dir));
}

/** `pocket rm JOB KEY [--recursive]`. */
async function rmVerb(flags: Flags, args: readonly string[]): Promise<void> {
  const [job, key] = args;
  if (!key) throw new UsageError("pocket rm JOB KEY [--recursive]");
  const token = tokenFor(flags, job);
  return withClient(flags, As.Lambda, async (c) => {
    const r = await c.job(token).delete(key, { recursive: flags.recursive });
    out(flags, r, () => `removed ${r.objects} objects, ${formatBytes(r.bytes)}\n`);
  });
}

/** A verb's handler: the flags, and the positionals after the verb. */
type Verb = (flags: Flags, args: readonly string[]) => Promise<void>;

/** Every verb and its handler. */
const verbs: Readonly<Record<string, Verb>> = {
  up,
  auth: authInit,
  nodes: listNodes,
  shards: listShards,
  jobs: listJobs,
  job: jobVerb,
  node: nodeRetire,
  events,
  usage: jobUsage,
  replay: (flags, args) => replay(flags, args[0]),
  calibrate: calibrateVerb,
  put: putVerb,
  get: getVerb,
  ls: lsVerb,
  stat: statVerb,
  count: countVerb,
  mkdir: mkdirVerb,
  rm: rmVerb,
};

/** Parses the command line and runs its verb (the usage text without one). */
async function run(argv: string[]): Promise<void> {
  const { values: flags, positionals: pos } = parse(argv);
  const [verb, ...args] = pos;
  if (flags.help || !verb) {
    process.stdout.write(usage);
    return;
  }
  if (!Object.hasOwn(verbs, verb)) throw new UsageError(`unknown command ${JSON.stringify(verb)}`);
  return verbs[verb]!(flags, args);
}

run(process.argv.slice(2)).then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    if (e instanceof UsageError || (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`pocket: ${e.message}\n\n${usage}`);
      process.exit(2);
    }
    if (isPocketError(e)) process.stderr.write(`pocket: ${e.code}: ${e.message}\n`);
    else process.stderr.write(`pocket: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
