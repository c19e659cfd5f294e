#!/usr/bin/env node
/**
 * Pocket against Redis, in one run on this machine: `npm run bench [-- --quick]`.
 * Starts a local cluster (nats-server, controller, 2 shards, 2 DRAM nodes) and
 * a redis-server (persistence off), forks client processes that hold one
 * connection to each, and measures both side by side. Prints a table, and
 * writes JSON and an SVG chart under bench/results/.
 */
import { fork, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { PocketClient } from "../client/pocket";
import { Role } from "../bus/credentials";
import { LocalCluster } from "../deploy/local-cluster";
import { projectRoot } from "../lib/process";
import { RedisServer } from "./redis-server";
import { formatBytes } from "../lib/units";
import { ratioChart, type Bar } from "../lib/chart";
import { System, type FromWorker, type Work, type WorkResult, type WorkerSetup } from "./work";

const { values: flags } = parseArgs({ options: { quick: { type: "boolean" }, out: { type: "string" } } });
const quick = flags.quick ?? false;
const outDir = flags.out ?? path.join(projectRoot(), "bench", "results");

interface Worker { readonly child: ChildProcess; readonly index: number }

let nextId = 1;
function runOn(w: Worker, work: Work): Promise<WorkResult> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromWorker): void => {
      if (m.kind === "ready" || m.id !== id) return;
      w.child.off("message", onMessage);
      if (m.kind === "done") resolve(m.result);
      else reject(new Error(`client ${w.index}: ${m.message}`));
    };
    w.child.on("message", onMessage);
    w.child.send({ kind: "work", id, work });
  });
}

/** Runs the same work on the first `n` clients at once; returns their results. */
function onClients(workers: Worker[], n: number, work: Work): Promise<WorkResult[]> {
  return Promise.all(workers.slice(0, n).map((w) => runOn(w, work)));
}

interface Row {
  readonly name: string;
  readonly unit: string;
  readonly ours: number;
  readonly reference: number | undefined;
  readonly referenceName: string;
  /** "higher" is better (throughput) or "lower" (latency, memory). */
  readonly better: "higher" | "lower";
  readonly target: number;
  readonly targetText: string;
}

function ratioOf(r: Row): number | undefined {
  if (r.reference === undefined || r.reference === 0) return undefined;
  // Lower-is-better figures have a floor (1 µs, 1 MiB): no memory growth at all is not an infinite ratio.
  const floor = r.unit === "B" ? 1024 * 1024 : 1;
  return r.better === "higher" ? r.ours / r.reference : r.reference / Math.max(r.ours, floor);
}

function fmt(v: number, unit: string): string {
  if (unit === "B/s") return `${formatBytes(v)}/s`;
  if (unit === "B") return formatBytes(v);
  if (unit === "µs") return `${v.toFixed(0)} µs`;
  return `${Math.round(v).toLocaleString("en-US")} ${unit}`;
}

function step(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

/** How much each measure does: shorter with --quick. */
interface Plan {
  readonly durationMs: number;
  readonly latencyCount: number;
  readonly clientCounts: readonly number[];
  readonly workersMax: number;
  readonly streamBytes: number;
}

/** The plan for a quick or a full run. */
function planFor(quick: boolean): Plan {
  const clientCounts = quick ? [1, 4] : [1, 4, 16];
  return {
    durationMs: quick ? 1_500 : 5_000,
    latencyCount: quick ? 2_000 : 20_000,
    clientCounts,
    workersMax: Math.max(...clientCounts),
    streamBytes: quick ? 256 * 1024 * 1024 : 1024 ** 3,
  };
}

/** Forks client process `index`, adds it to `workers`, and returns it once it is ready. */
async function forkWorker(base: Omit<WorkerSetup, "index">, workers: Worker[], index: number): Promise<Worker> {
  const setup: WorkerSetup = { ...base, index };
  const child = fork(path.join(__dirname, "worker.js"), [], {
    env: { ...process.env, POCKET_BENCH_SETUP: JSON.stringify(setup) },
    execArgv: ["--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const w = { child, index };
  workers.push(w);
  await new Promise<void>((resolve, reject) => {
    child.once("message", (m: FromWorker) => (m.kind === "ready" ? resolve() : reject(new Error("worker failed to start"))));
    child.once("exit", (code) => reject(new Error(`worker exited with ${code}`)));
  });
  return w;
}

/** 1. Latency, one request in flight: p50 and p99 of 1 KB put, get and stat. */
async function latencyRows(workers: Worker[], plan: Plan, rows: Row[]): Promise<void> {
  const latencyCount = plan.latencyCount;
  for (const op of ["put", "get", "stat"] as const) {
    step(`1 KB ${op} latency, ${latencyCount} requests, one in flight`);
    const [ours] = await onClients(workers, 1, { kind: "latency", system: System.Pocket, op, size: 1024, count: latencyCount });
    const [ref] = await onClients(workers, 1, { kind: "latency", system: System.Redis, op, size: 1024, count: latencyCount });
    rows.push({ name: `1 KB ${op.toUpperCase()} p50`, unit: "µs", ours: ours!.p50Us!, reference: ref!.p50Us!, referenceName: "redis", better: "lower", target: 1 / 1.2, targetText: "≤ 1.2× redis" });
    rows.push({ name: `1 KB ${op.toUpperCase()} p99`, unit: "µs", ours: ours!.p99Us!, reference: ref!.p99Us!, referenceName: "redis", better: "lower", target: 0.5, targetText: "≤ 2× redis" });
  }
}

/** 2. 1 KB ops/s with 64 in flight, 1 and 4 client processes. */
async function opsRows(workers: Worker[], plan: Plan, rows: Row[]): Promise<void> {
  const durationMs = plan.durationMs;
  for (const n of [1, 4]) {
    for (const op of ["get", "put"] as const) {
      step(`1 KB ${op} ops/s, 64 in flight per client, ${n} client(s), ${durationMs} ms`);
      const sum = (rs: WorkResult[]): number => rs.reduce((s, r) => s + r.ops / r.seconds, 0);
      const ours = sum(await onClients(workers, n, { kind: "ops", system: System.Pocket, op, size: 1024, inflight: 64, durationMs }));
      const ref = sum(await onClients(workers, n, { kind: "ops", system: System.Redis, op, size: 1024, inflight: 64, durationMs }));
      rows.push({ name: `1 KB ${op.toUpperCase()} ops/s, 64 in flight × ${n}`, unit: "ops/s", ours, reference: ref, referenceName: "redis", better: "higher", target: 1, targetText: "≥ 1× redis" });
    }
  }
}

/** 3. Large objects: aggregate throughput over 1, 4 (and 16) client processes. */
async function throughputRows(workers: Worker[], plan: Plan, rows: Row[]): Promise<void> {
  const durationMs = plan.durationMs;
  for (const size of quick ? [1_000_000] : [1_000_000, 64_000_000]) {
    for (const n of plan.clientCounts) {
      for (const op of ["put", "get"] as const) {
        step(`${formatBytes(size)} ${op}, ${n} client process(es), ${durationMs} ms`);
        const agg = (rs: WorkResult[]): number => rs.reduce((s, r) => s + r.bytes, 0) / Math.max(...rs.map((r) => r.seconds));
        const keys = size > 10_000_000 ? 1 : 4;
        const ours = agg(await onClients(workers, n, { kind: "throughput", system: System.Pocket, op, size, keys, durationMs }));
        const ref = agg(await onClients(workers, n, { kind: "throughput", system: System.Redis, op, size, keys, durationMs }));
        const is1MB16 = size === 1_000_000 && n === 16;
        rows.push({
          name: `${size / 1e6} MB ${op.toUpperCase()} × ${n} clients`, unit: "B/s", ours, reference: ref, referenceName: "redis", better: "higher",
          target: is1MB16 ? 1 : 0, targetText: is1MB16 ? "≥ 1× redis" : "(reported)",
        });
      }
    }
  }
}

/** 4. The metadata shard alone: lookups per second from 2 clients. */
async function metadataRow(workers: Worker[], plan: Plan, rows: Row[]): Promise<void> {
  const durationMs = plan.durationMs;
  step(`metadata lookups, 2 clients × 128 pipelined, ${durationMs} ms`);
  const meta = await onClients(workers, 2, { kind: "metadata", inflight: 128, durationMs });
  rows.push({
    name: "metadata lookups/s, one shard", unit: "ops/s", ours: meta.reduce((s, r) => s + r.ops / r.seconds, 0),
    reference: 90_000, referenceName: "Pocket paper (1 core)", better: "higher", target: 1, targetText: "≥ 90K/s",
  });
}

/** 5. A large object streamed, from a freshly forked client (so that its memory baseline is not what earlier work left behind). */
async function streamRows(fresh: () => Promise<Worker>, plan: Plan, rows: Row[]): Promise<void> {
  const streamBytes = plan.streamBytes;
  step(`${formatBytes(streamBytes)} streamed put and get, from a fresh client process`);
  const s = await runOn(await fresh(), { kind: "stream", size: streamBytes });
  rows.push({ name: `${formatBytes(streamBytes)} streamed PUT`, unit: "B/s", ours: streamBytes / s.putSeconds!, reference: undefined, referenceName: "-", better: "higher", target: 0, targetText: "(reported)" });
  rows.push({ name: `${formatBytes(streamBytes)} streamed GET`, unit: "B/s", ours: streamBytes / s.getSeconds!, reference: undefined, referenceName: "-", better: "higher", target: 0, targetText: "(reported)" });
  rows.push({ name: "streaming client peak RSS growth", unit: "B", ours: s.rssGrowthBytes!, reference: 128 * 1024 * 1024, referenceName: "128 MiB bound", better: "lower", target: 1, targetText: "< 128 MiB" });
}

/** Where things ran: the processes' roles and pids, and the busiest matching lines of `ps`. */
function whereThingsRan(workers: Worker[], redis: RedisServer): { pids: Array<{ role: string; pid: number | undefined }>; psOut: string[] } {
  const pids = [
    ...workers.map((w) => ({ role: `client ${w.index}`, pid: w.child.pid })),
    { role: "redis-server", pid: redis.pid },
    { role: "bench driver", pid: process.pid },
  ];
  const psOut = execFileSync("ps", ["-eo", "pid,psr,time,rss,args", "--sort=-time"], { encoding: "utf8" })
    .split("\n").filter((l) => /nats-server|actors\/main\.js|redis-server|bench\/(run|worker)\.js/.test(l)).slice(0, 40);
  return { pids, psOut };
}

/** The results table as text, one row per measure. */
function tableText(rows: Row[]): string {
  const table = [
    ["measure", "pocket", "reference", "ratio", "target", "met"],
    ...rows.map((r) => {
      const ratio = ratioOf(r);
      return [r.name, fmt(r.ours, r.unit), r.reference === undefined ? "-" : `${fmt(r.reference, r.unit)} (${r.referenceName})`,
        ratio === undefined ? "-" : `${ratio.toFixed(2)}×`, r.targetText, r.target === 0 || ratio === undefined ? "" : ratio >= r.target ? "yes" : "no"];
    }),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join("\n");
}

/** Writes the run's JSON (stamped, and as latest) and its ratio chart under `outDir`. */
function writeResults(rows: Row[], started: Date, machine: string, where: ReturnType<typeof whereThingsRan>): void {
  fs.mkdirSync(outDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const json = { mode: quick ? "quick" : "full", startedAt: started.toISOString(), machine, rows: rows.map((r) => ({ ...r, ratio: ratioOf(r) })), processes: where.pids, ps: where.psOut };
  fs.writeFileSync(path.join(outDir, `bench-${quick ? "quick-" : ""}${stamp}.json`), `${JSON.stringify(json, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, `latest${quick ? "-quick" : ""}.json`), `${JSON.stringify(json, null, 2)}\n`);
  const bars: Bar[] = rows.filter((r) => ratioOf(r) !== undefined).map((r) => ({
    label: r.name, ratio: ratioOf(r)!, target: r.target, note: `vs ${r.referenceName}`,
  }));
  const svg = ratioChart(`Pocket on NATS vs Redis (${quick ? "quick" : "full"} run)`, `${machine}; ${started.toISOString()}`, bars);
  fs.writeFileSync(path.join(outDir, `latest${quick ? "-quick" : ""}.svg`), svg);
  step(`wrote ${path.join(outDir, `latest${quick ? "-quick" : ""}.json`)} and .svg`);
}

/** Forks the clients, runs every measure, prints the table and writes the results. */
async function measureAll(base: Omit<WorkerSetup, "index">, redis: RedisServer, workers: Worker[], plan: Plan, started: Date): Promise<void> {
  const rows: Row[] = [];
  step(`forking ${plan.workersMax} client processes`);
  await Promise.all(Array.from({ length: plan.workersMax }, (_, i) => forkWorker(base, workers, i)));
  await latencyRows(workers, plan, rows);
  await opsRows(workers, plan, rows);
  await throughputRows(workers, plan, rows);
  await metadataRow(workers, plan, rows);
  await streamRows(() => forkWorker(base, workers, plan.workersMax), plan, rows);
  const where = whereThingsRan(workers, redis);
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${formatBytes(os.totalmem())}, Node ${process.version}`;
  process.stdout.write(`\nPocket on NATS vs Redis — ${quick ? "quick" : "full"} run, ${started.toISOString()}\n${machine}\n` +
    `processes: nats-server, controller, 2 shards, 2 DRAM nodes, redis-server, ${plan.workersMax} clients, driver — all sharing the same cores\n\n${tableText(rows)}\n\n`);
  writeResults(rows, started, machine, where);
}

/** Starts redis-server and a local cluster, measures both, and stops everything it started. */
async function main(): Promise<void> {
  const started = new Date();
  const plan = planFor(quick);
  step("starting redis-server and a local Pocket cluster (2 shards, 2 DRAM nodes)");
  const redis = await RedisServer.start();
  const cluster = await LocalCluster.start({ shards: 2, dram: 2, dramCapacityBytes: 3 * 1024 ** 3 });
  const admin = await PocketClient.connect({ servers: cluster.natsUrl, name: "bench-driver", credentials: cluster.auth?.credentials(Role.Operator, "bench") });
  const job = await admin.registerJob("bench", { lambdas: plan.workersMax });
  const workers: Worker[] = [];
  try {
    const base = { natsUrl: cluster.natsUrl, token: job.token, credentials: job.credentials, redisPort: redis.port };
    await measureAll(base, redis, workers, plan, started);
  } finally {
    for (const w of workers) if (w.child.connected) w.child.disconnect();
    await admin.deregisterJob(job.token).catch(() => undefined);
    await admin.close();
    await cluster.stop();
    await redis.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
