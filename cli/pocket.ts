#!/usr/bin/env node
import fs from "node:fs";
import { parseArgs } from "node:util";
import { isPocketError } from "../schemas/errors";
import type { JobHints } from "../schemas/operations";
import { pipeline } from "node:stream/promises";
import { PocketClient, type ClientTransport, type PocketJob } from "../client/pocket";
import { LocalCluster } from "../deploy/local-cluster";
import { peekJobClaims } from "../actors/runtime/tokens";
import { formatBytes, parseBytes, parseRate } from "../actors/runtime/units";

const usage = `pocket — elastic ephemeral storage for serverless analytics

Cluster
  pocket up [--nats URL] [--dram N] [--shards N] [--dram-capacity 1GiB] [--data-dir DIR]
                                     run a local cluster in the foreground; prints its NATS URL when ready
  pocket nodes [--json]              storage nodes, their state and use
  pocket shards [--json]             metadata shards
  pocket jobs [--json]               registered jobs

Jobs
  pocket job register NAME [--lambdas N] [--capacity 10GiB] [--throughput 1Gbps] [--latency-sensitive] [--json]
  pocket job deregister JOB

Objects (JOB must be the job of the token)
  pocket put JOB KEY FILE|-          store a file (or standard input) as KEY
  pocket get JOB KEY [FILE|-]        write KEY to a file (or standard output)
  pocket ls JOB [DIR] [--json]       list a directory
  pocket stat JOB KEY [--json]
  pocket count JOB [DIR] [--recursive] [--json]
  pocket mkdir JOB DIR
  pocket rm JOB KEY [--recursive]

Environment: POCKET_NATS_URL (default nats://127.0.0.1:4222), POCKET_TOKEN (or --token).
`;

class UsageError extends Error {
  override readonly name = "UsageError";
}

const options = {
  nats: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
  dram: { type: "string" },
  shards: { type: "string" },
  "dram-capacity": { type: "string" },
  "data-dir": { type: "string" },
  lambdas: { type: "string" },
  capacity: { type: "string" },
  throughput: { type: "string" },
  "latency-sensitive": { type: "boolean" },
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

function out(flags: Flags, value: unknown, text: () => string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

async function withClient<T>(flags: Flags, fn: (c: PocketClient) => Promise<T>): Promise<T> {
  const c = await PocketClient.connect({ servers: natsUrl(flags), name: "pocket-cli", transport: flags.transport as ClientTransport | undefined });
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
    dram: int(flags.dram, "dram", 2),
    shards: int(flags.shards, "shards", 2),
    dramCapacityBytes: flags["dram-capacity"] ? parseBytes(flags["dram-capacity"]) : undefined,
    dataDir: flags["data-dir"],
  });
  out(flags, { natsUrl: cluster.natsUrl, dataDir: cluster.dataDir }, () => `POCKET_NATS_URL=${cluster.natsUrl}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  process.stderr.write("pocket: stopping the cluster\n");
  await cluster.stop();
}

async function run(argv: string[]): Promise<void> {
  const { values: flags, positionals: pos } = parse(argv);
  const [verb, ...args] = pos;
  if (flags.help || !verb) {
    process.stdout.write(usage);
    return;
  }
  switch (verb) {
    case "up":
      return up(flags);
    case "nodes":
      return withClient(flags, async (c) => {
        const nodes = await c.listNodes();
        const tiers = new Map<string, { nodes: number; used: number; capacity: number }>();
        for (const n of nodes.filter((x) => x.state === "active")) {
          const t = tiers.get(n.tier) ?? { nodes: 0, used: 0, capacity: 0 };
          tiers.set(n.tier, { nodes: t.nodes + 1, used: t.used + n.usedBytes, capacity: t.capacity + n.capacityBytes });
        }
        out(flags, nodes, () => table([
          ["NODE", "TIER", "STATE", "ADDR", "USED", "CAPACITY", "CPU", "IN/s", "OUT/s"],
          ...nodes.map((n) => [n.nodeId, n.tier, n.state, n.addr, formatBytes(n.usedBytes), formatBytes(n.capacityBytes),
            `${(n.cpu * 100).toFixed(0)}%`, formatBytes(n.bytesInPerSec), formatBytes(n.bytesOutPerSec)]),
        ]) + [...tiers].map(([tier, t]) =>
          `${tier}: ${formatBytes(t.used)} of ${formatBytes(t.capacity)} used (${t.capacity > 0 ? ((100 * t.used) / t.capacity).toFixed(1) : "0"}%) on ${t.nodes} active node(s)\n`).join(""));
      });
    case "shards":
      return withClient(flags, async (c) => {
        const shards = await c.listShards();
        out(flags, shards, () => table([["SHARD", "STATE", "JOBS", "OBJECTS"], ...shards.map((s) => [s.shardId, s.state, String(s.jobs), String(s.objects)])]));
      });
    case "jobs":
      return withClient(flags, async (c) => {
        const jobs = await c.listJobs();
        out(flags, jobs, () => table([
          ["JOB", "NAME", "SHARD", "REGISTERED", "WEIGHTS"],
          ...jobs.map((j) => [j.jobId, j.name, j.shardId, new Date(j.registeredAtMs).toISOString(),
            j.weights.map((w) => `${w.nodeId}:${w.weight.toFixed(2)}`).join(",")]),
        ]));
      });
    case "job": {
      const [sub, name] = args;
      if (sub === "register") {
        if (!name) throw new UsageError("pocket job register NAME");
        const hints: JobHints = {
          lambdas: flags.lambdas !== undefined ? int(flags.lambdas, "lambdas", 0) : undefined,
          capacityBytes: flags.capacity ? parseBytes(flags.capacity) : undefined,
          throughputBps: flags.throughput ? parseRate(flags.throughput) : undefined,
          latencySensitive: flags["latency-sensitive"] ? true : undefined,
        };
        for (const k of Object.keys(hints) as Array<keyof JobHints>) if (hints[k] === undefined) delete hints[k];
        return withClient(flags, async (c) => {
          const reg = await c.registerJob(name, hints);
          out(flags, reg, () => `POCKET_JOB=${reg.jobId}\nPOCKET_TOKEN=${reg.token}\n`);
        });
      }
      if (sub === "deregister") {
        const token = tokenFor(flags, name);
        return withClient(flags, async (c) => {
          const r = await c.deregisterJob(token);
          out(flags, r, () => `deregistered ${r.jobId}; freed ${formatBytes(r.freedBytes)}\n`);
        });
      }
      throw new UsageError("pocket job register|deregister");
    }
    case "put": {
      const [job, key, file] = args;
      if (!key || !file) throw new UsageError("pocket put JOB KEY FILE|-");
      const token = tokenFor(flags, job);
      return withClient(flags, async (c) => {
        const r = await putFile(c.job(token), key, file);
        out(flags, r, () => `${key}: ${formatBytes(r.size)}, version ${r.version}\n`);
      });
    }
    case "get": {
      const [job, key, file] = args;
      if (!key) throw new UsageError("pocket get JOB KEY [FILE|-]");
      const token = tokenFor(flags, job);
      return withClient(flags, async (c) => {
        const dest = file && file !== "-" ? fs.createWriteStream(file) : process.stdout;
        await pipeline(c.job(token).getStream(key), dest);
      });
    }
    case "ls": {
      const [job, dir] = args;
      const token = tokenFor(flags, job);
      return withClient(flags, async (c) => {
        const entries: Array<{ name: string; type: string; size: number }> = [];
        for await (const e of c.job(token).listAll(dir ?? "")) entries.push(e);
        out(flags, entries, () => entries.map((e) => (e.type === "directory" ? `${e.name}/\n` : `${e.name}\t${e.size}\n`)).join(""));
      });
    }
    case "stat": {
      const [job, key] = args;
      if (!key) throw new UsageError("pocket stat JOB KEY");
      const token = tokenFor(flags, job);
      return withClient(flags, async (c) => {
        const s = await c.job(token).stat(key);
        out(flags, s, () => `${s.path}: ${s.type}, ${s.type === "object" ? `${s.size} bytes, version ${s.version}` : `${s.children} entries`}\n`);
      });
    }
    case "count": {
      const [job, dir] = args;
      const token = tokenFor(flags, job);
      return withClient(flags, async (c) => {
        const n = await c.job(token).count(dir ?? "", { recursive: flags.recursive });
        out(flags, n, () => `${n.objects} objects, ${n.directories} directories, ${formatBytes(n.bytes)}\n`);
      });
    }
    case "mkdir": {
      const [job, dir] = args;
      if (!dir) throw new UsageError("pocket mkdir JOB DIR");
      const token = tokenFor(flags, job);
      return withClient(flags, (c) => c.job(token).mkdir(dir));
    }
    case "rm": {
      const [job, key] = args;
      if (!key) throw new UsageError("pocket rm JOB KEY [--recursive]");
      const token = tokenFor(flags, job);
      return withClient(flags, async (c) => {
        const r = await c.job(token).delete(key, { recursive: flags.recursive });
        out(flags, r, () => `removed ${r.objects} objects, ${formatBytes(r.bytes)}\n`);
      });
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(verb)}`);
  }
}

run(process.argv.slice(2)).then(
  () => process.exit(0),
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
