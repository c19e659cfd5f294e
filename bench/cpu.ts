#!/usr/bin/env node
/**
 * Where the CPU goes: `npm run bench:cpu [-- --seconds S] [--out DIR]`.
 * Starts a local cluster in processes (nats-server, controller, one shard,
 * two DRAM nodes), forks up to four client processes, and for each case
 * (1 KB GET and PUT at 64 in flight from 1 and 4 client processes, 1 MB GET
 * and PUT one at a time from 4, layout lookups at 128 in flight from 2) reports operations per second and the CPU
 * time each kind of process spent per operation: the clients from their own
 * `process.cpuUsage` (all threads), every other process from /proc/PID/stat,
 * and the clients' garbage-collection pauses against their CPU time. On a machine whose cores are all
 * busy, CPU per operation is what sets the rate; this says whose it is.
 * Every read is compared with what was written. Writes
 * bench/results/cpu-latest.json and cpu-latest.svg.
 *
 * `--case TEXT` runs only the cases whose name contains TEXT; `--profile DIR`
 * runs every Node process (clients, controller, shard, nodes) under
 * `--cpu-prof`, writes their profiles to DIR and prints, for each, the
 * functions its samples landed in (the profiles cover the processes' whole
 * lives: pair it with `--case`).
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { PocketClient } from "../client/pocket";
import type { PocketJob } from "../client/job";
import { Role } from "../bus/credentials";
import { ShardOps } from "../schemas/operations";
import { LaunchMode, LocalCluster } from "../deploy/local-cluster";
import { esc, svgDocument } from "../lib/chart";
import { projectRoot } from "../lib/process";
import { ReadCheck, valueFor } from "./values";
import { profilesIn, summarizeProfile, summaryText } from "./profile";

interface Case {
  readonly name: string;
  /** A lookup asks the shard for an object's layout (`object.lookup`), nothing more. */
  readonly op: "get" | "put" | "lookup";
  readonly size: number;
  readonly clients: number;
  readonly inflight: number;
}

const cases: readonly Case[] = [
  { name: "1 KB GET, 64 in flight × 1", op: "get", size: 1024, clients: 1, inflight: 64 },
  { name: "1 KB PUT, 64 in flight × 1", op: "put", size: 1024, clients: 1, inflight: 64 },
  { name: "1 KB GET, 64 in flight × 4", op: "get", size: 1024, clients: 4, inflight: 64 },
  { name: "1 KB PUT, 64 in flight × 4", op: "put", size: 1024, clients: 4, inflight: 64 },
  { name: "1 MB GET, one at a time × 4", op: "get", size: 1_000_000, clients: 4, inflight: 1 },
  { name: "1 MB PUT, one at a time × 4", op: "put", size: 1_000_000, clients: 4, inflight: 1 },
  { name: "lookups, 128 in flight × 2", op: "lookup", size: 64 * 1024, clients: 2, inflight: 128 },
];
const clientsMax = 4;
const roles = ["clients", "shard", "nodes", "nats-server", "controller"] as const;
type CpuRole = (typeof roles)[number];

interface Setup { readonly natsUrl: string; readonly credentials: string | undefined; readonly token: string }
interface ChildResult { readonly ops: number; readonly cpuUs: number; readonly gcMs: number; readonly wrong: number }
type ToChild = { readonly kind: "run"; readonly case: Case; readonly seconds: number };

/** One client's run of a case: keys written, half a second untimed, then `seconds` timed. */
async function runCase(client: PocketClient, job: PocketJob, c: Case, seconds: number, tag: string): Promise<ChildResult> {
  // Lookups all ask for one object's layout (as bench's metadata measure does); the others each have their own key.
  const keys = Array.from({ length: c.op === "lookup" ? 1 : c.inflight }, (_, i) => `cpu/${tag}/${c.size}/${i}`);
  const values = keys.map((k) => valueFor(k, c.size));
  const versions: number[] = [];
  for (let i = 0; i < keys.length; i++) versions.push((await job.put(keys[i]!, values[i]!)).version);
  const check = new ReadCheck();
  const lookup = async (): Promise<void> => {
    const r = (await client.callShard(job, ShardOps.objectLookup, { token: job.token, path: keys[0]! })).reply;
    check.result(keys[0]!, r.size === c.size && r.version === versions[0], `layout of ${r.size} bytes, version ${r.version}, is not what was put`);
  };
  const lanes = async (ms: number): Promise<number> => {
    let ops = 0;
    const end = Date.now() + ms;
    await Promise.all(Array.from({ length: c.inflight }, async (_, i) => {
      const k = keys[i % keys.length]!;
      while (Date.now() < end) {
        if (c.op === "lookup") await lookup();
        else if (c.op === "put") await job.put(k, values[i]!);
        else check.compare(k, await job.get(k), values[i]!);
        ops++;
      }
    }));
    return ops;
  };
  await lanes(500);
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => { for (const e of list.getEntries()) gcMs += e.duration; });
  gc.observe({ entryTypes: ["gc"] });
  const cpu0 = process.cpuUsage();
  const ops = await lanes(seconds * 1000);
  const cpu = process.cpuUsage(cpu0);
  gc.disconnect();
  return { ops, cpuUs: cpu.user + cpu.system, gcMs, wrong: check.counts.wrong };
}

/** A client process: connects with the job's credential, then runs the cases it is sent. */
async function clientMain(setup: Setup): Promise<void> {
  const client = await PocketClient.connect({ servers: setup.natsUrl, credentials: setup.credentials });
  const job = client.job(setup.token);
  process.on("message", (m: ToChild) => {
    runCase(client, job, m.case, m.seconds, String(process.pid)).then(
      (r) => process.send!({ kind: "done", result: r }),
      (e: unknown) => process.send!({ kind: "failed", message: e instanceof Error ? e.message : String(e) }),
    );
  });
  process.on("disconnect", () => { void client.close().finally(() => process.exit(0)); });
  process.send!({ kind: "ready" });
}

/** CPU time (µs) a process has used, all its threads, from /proc. */
function cpuUsOf(pid: number, tickUs: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * tickUs;
}

/** Time a client process has to connect. */
const clientReadyMs = 30_000;

/** Forks a client process (with `execArgv` for node); resolves once it is connected (a client that is not is killed). */
function forkClient(setup: Setup, execArgv: readonly string[]): Promise<ChildProcess> {
  const child = fork(__filename, [], { env: { ...process.env, POCKET_CPU_CLIENT: JSON.stringify(setup) }, execArgv: [...execArgv], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  let timer: NodeJS.Timeout | undefined;
  return new Promise<ChildProcess>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`a client was not connected within ${clientReadyMs} ms`)), clientReadyMs);
    child.once("message", (m: { kind: string }) => (m.kind === "ready" ? resolve(child) : reject(new Error("a client failed to start"))));
    child.once("exit", (code) => reject(new Error(`a client exited with ${code} while starting`)));
  }).catch((e: unknown) => {
    child.kill();
    throw e;
  }).finally(() => clearTimeout(timer));
}

/** Runs a case on one client; fails if the client fails it or exits first. */
function runOn(child: ChildProcess, c: Case, seconds: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`a client exited with ${code} during ${c.name}`));
    child.once("exit", onExit);
    child.once("message", (m: { kind: string; result?: ChildResult; message?: string }) => {
      child.off("exit", onExit);
      if (m.kind === "done") resolve(m.result!);
      else reject(new Error(`client: ${m.message}`));
    });
    child.send({ kind: "run", case: c, seconds } satisfies ToChild);
  });
}

interface Row {
  readonly case: Case;
  readonly opsPerSec: number;
  /** CPU µs per operation, by kind of process. */
  readonly cpuUsPerOp: Record<CpuRole, number>;
  /** Share of the machine's cores busy during the case. */
  readonly coresBusy: number;
  /**
   * The clients' garbage-collection pauses over their CPU time. Pauses are
   * wall time, so on shared cores this is an upper bound of the share.
   */
  readonly clientGcShare: number;
}

/** Runs one case on the first `c.clients` clients, sampling every cluster process's CPU around it. */
async function measureCase(cluster: LocalCluster, clients: readonly ChildProcess[], c: Case, seconds: number, tickUs: number): Promise<Row> {
  const procs = cluster.processes();
  const before = procs.map((p) => cpuUsOf(p.pid, tickUs));
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(clients.slice(0, c.clients).map((child) => runOn(child, c, seconds)));
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  const after = procs.map((p) => cpuUsOf(p.pid, tickUs));
  const wrong = results.reduce((a, r) => a + r.wrong, 0);
  if (wrong > 0) throw new Error(`${c.name}: ${wrong} reads returned wrong bytes`);
  const ops = results.reduce((a, r) => a + r.ops, 0);
  const cpu: Record<CpuRole, number> = { clients: results.reduce((a, r) => a + r.cpuUs, 0), shard: 0, nodes: 0, "nats-server": 0, controller: 0 };
  procs.forEach((p, i) => {
    const role: CpuRole = p.role === "node" ? "nodes" : p.role;
    cpu[role] += after[i]! - before[i]!;
  });
  const total = roles.reduce((a, r) => a + cpu[r], 0);
  const perOp = Object.fromEntries(roles.map((r) => [r, cpu[r] / ops])) as Record<CpuRole, number>;
  const gcUs = results.reduce((a, r) => a + r.gcMs * 1000, 0);
  return { case: c, opsPerSec: ops / (seconds), cpuUsPerOp: perOp, coresBusy: total / wallUs / os.cpus().length, clientGcShare: gcUs / cpu.clients };
}

function fmtUs(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`;
}

function tableText(rows: readonly Row[]): string {
  const head = ["case", "ops/s", ...roles.map((r) => `${r} /op`), "total /op", "cores busy", "client GC pauses"];
  const lines = rows.map((r) => {
    const total = roles.reduce((a, k) => a + r.cpuUsPerOp[k], 0);
    return [r.case.name, Math.round(r.opsPerSec).toLocaleString("en-US"), ...roles.map((k) => fmtUs(r.cpuUsPerOp[k])), fmtUs(total),
      `${(100 * r.coresBusy).toFixed(0)}%`, `${(100 * r.clientGcShare).toFixed(0)}%`];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [head, ...lines].map((l) => l.map((x, i) => x.padEnd(widths[i]!)).join("  ")).join("\n");
}

const colours: Record<CpuRole, string> = { clients: "#4e79a7", shard: "#f28e2b", nodes: "#59a14f", "nats-server": "#b07aa1", controller: "#9c755f" };

/** One stacked bar per case: each kind of process's share of the CPU per operation, with the total. */
function chart(rows: readonly Row[], subtitle: string): string {
  const left = 230, barW = 560, rowH = 30, top = 90;
  const body: string[] = [];
  roles.forEach((r, i) => body.push(`<rect x="${left + i * 120}" y="58" width="12" height="12" fill="${colours[r]}"/><text x="${left + i * 120 + 16}" y="69" font-size="12">${esc(r)}</text>`));
  rows.forEach((row, i) => {
    const y = top + i * rowH;
    const total = roles.reduce((a, k) => a + row.cpuUsPerOp[k], 0);
    body.push(`<text x="${left - 8}" y="${y + 15}" font-size="12" text-anchor="end">${esc(row.case.name)}</text>`);
    let x = left;
    for (const k of roles) {
      const w = (row.cpuUsPerOp[k] / total) * barW;
      body.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="20" fill="${colours[k]}"><title>${esc(`${k}: ${fmtUs(row.cpuUsPerOp[k])} per op`)}</title></rect>`);
      x += w;
    }
    body.push(`<text x="${left + barW + 8}" y="${y + 15}" font-size="12">${esc(`${fmtUs(total)} per op, ${Math.round(row.opsPerSec).toLocaleString("en-US")}/s`)}</text>`);
  });
  return svgDocument(left + barW + 230, top + rows.length * rowH + 20, "Where the CPU goes: CPU time per operation by process", subtitle, body);
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({ options: { seconds: { type: "string" }, out: { type: "string" }, case: { type: "string" }, profile: { type: "string" } } });
  const seconds = Number(flags.seconds ?? 4);
  const chosen = cases.filter((c) => flags.case === undefined || c.name.includes(flags.case));
  if (chosen.length === 0) throw new RangeError(`--case ${flags.case}: no case's name contains it (cases: ${cases.map((c) => c.name).join("; ")})`);
  const profileDir = flags.profile === undefined ? undefined : path.resolve(flags.profile);
  const profileArgs = profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`];
  if (profileDir !== undefined) {
    fs.mkdirSync(profileDir, { recursive: true });
    // The cluster's actor processes take their node flags from here.
    process.env["POCKET_ACTOR_NODE_ARGS"] = [process.env["POCKET_ACTOR_NODE_ARGS"] ?? "", ...profileArgs].join(" ").trim();
  }
  if (!(seconds > 0 && seconds <= 60)) throw new RangeError(`--seconds ${flags.seconds}: expected 0 < S ≤ 60`);
  const outDir = flags.out ?? path.join(projectRoot(), "bench", "results");
  const tickUs = 1e6 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  process.stderr.write("bench:cpu: starting a local cluster (nats-server, controller, 1 shard, 2 DRAM nodes) and 4 client processes\n");
  const cluster = await LocalCluster.start({ mode: LaunchMode.Process, shards: 1, dram: 2, orchestrator: "events-only" });
  const clients: ChildProcess[] = [];
  try {
    const driver = await PocketClient.connect({ servers: cluster.natsUrl, credentials: cluster.auth?.credentials(Role.Driver, "bench-cpu") });
    const job = await driver.registerJob("bench-cpu");
    const clientsNeeded = Math.max(...chosen.map((c) => c.clients));
    for (let i = 0; i < Math.min(clientsMax, clientsNeeded); i++) clients.push(await forkClient({ natsUrl: cluster.natsUrl, credentials: job.credentials, token: job.token }, profileArgs));
    const rows: Row[] = [];
    for (const c of chosen) {
      process.stderr.write(`bench:cpu: ${c.name} for ${seconds} s\n`);
      rows.push(await measureCase(cluster, clients, c, seconds, tickUs));
    }
    await driver.deregisterJob(job.token);
    await driver.close();
    const subtitle = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, Node ${process.version}, ${new Date().toISOString()}; everything on the same cores`;
    process.stdout.write(`${tableText(rows)}\n`);
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, "cpu-latest.json"), `${JSON.stringify({ at: new Date().toISOString(), seconds, cores: os.cpus().length, rows }, null, 2)}\n`);
    fs.writeFileSync(path.join(outDir, "cpu-latest.svg"), chart(rows, subtitle));
    process.stderr.write(`bench:cpu: wrote ${path.join(outDir, "cpu-latest.json")} and .svg\n`);
  } finally {
    const roleOf = new Map<number, string>([...cluster.processes().map((p) => [p.pid, p.name] as const), ...clients.map((c, i) => [c.pid!, `client ${i + 1}`] as const)]);
    await Promise.all(clients.map((c) => exitOf(c)));
    await cluster.stop();
    if (profileDir !== undefined) printProfiles(profileDir, roleOf);
  }
}

/** Time a client has to exit once disconnected before it is killed. */
const clientExitMs = 10_000;

/** Disconnects a client and waits for it to exit (a profiled one writes its profile then). */
function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), clientExitMs);
    child.once("exit", () => { clearTimeout(timer); resolve(); });
    if (child.connected) child.disconnect();
    else child.kill();
  });
}

/** Prints each profiled process's hottest functions (the processes this run started, by name). */
function printProfiles(dir: string, roleOf: ReadonlyMap<number, string>): void {
  for (const [pid, file] of profilesIn(dir)) {
    const role = roleOf.get(pid);
    if (role === undefined) continue;
    const summary = summarizeProfile(JSON.parse(fs.readFileSync(file, "utf8")) as Parameters<typeof summarizeProfile>[0]);
    process.stdout.write(`\n${summaryText(`${role} (pid ${pid}, ${path.basename(file)})`, summary)}\n`);
  }
}

const clientSetup = process.env["POCKET_CPU_CLIENT"];
if (clientSetup !== undefined) {
  clientMain(JSON.parse(clientSetup) as Setup).catch((e: unknown) => {
    process.stderr.write(`bench:cpu client: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
} else {
  main().catch((e: unknown) => {
    process.stderr.write(`bench:cpu: failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  });
}
