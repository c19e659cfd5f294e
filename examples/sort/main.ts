#!/usr/bin/env node
/**
 * The sample serverless analytics job: a MapReduce sort through a local
 * Pocket cluster. `npm start -- --size 256MiB --workers 4`.
 *
 * Map tasks generate records and write one partition per reducer; reduce
 * tasks read their partition from every mapper, sort it and write it back;
 * validate tasks read the output again and check order and content.
 */
import { fork, type ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import fs from "node:fs";
import { PocketClient, type RegisteredJob } from "../../client/pocket";
import { Role } from "../../bus/credentials";
import { readEvents } from "../../bus/events";
import { timelineChart, TimelineRecorder, type Mark, type Phase } from "./timeline";
import { LocalCluster } from "../../deploy/local-cluster";
import { ProgressBar } from "../../lib/progress";
import { formatBytes, parseBytes } from "../../lib/units";
import { ControllerOps, type NodeInfo } from "../../schemas/operations";
import type { ReplyOf } from "../../schemas/operation";
import { emptyChecksum, mergeChecksum, recordBytes, type Checksum } from "./records";
import type { Task, TaskResult, WorkerMessage } from "./tasks";

const { values: flags } = parseArgs({
  options: {
    size: { type: "string", default: "256MiB" },
    maps: { type: "string", default: "8" },
    reduces: { type: "string", default: "8" },
    workers: { type: "string", default: "4" },
    shards: { type: "string", default: "2" },
    dram: { type: "string", default: "1" },
    "max-nodes": { type: "string", default: "4" },
    timeline: { type: "string", default: "pocket-sort-timeline.svg" },
    "task-retries": { type: "string", default: "2" },
    help: { type: "boolean", short: "h" },
  },
});

if (flags.help) {
  process.stdout.write("npm start -- [--size 256MiB] [--maps 8] [--reduces 8] [--workers 4] [--shards 2] [--dram 1] [--max-nodes 4] [--timeline FILE.svg]\n");
  process.exit(0);
}

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`sort: --${name} takes a whole number ≥ 1, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

const sizeBytes = parseBytes(flags.size!);
const maps = positiveInt("maps", flags.maps!);
const reduces = positiveInt("reduces", flags.reduces!);
const workersWanted = positiveInt("workers", flags.workers!);
const retriesMax = Number(flags["task-retries"]);
const totalRecords = Math.floor(sizeBytes / recordBytes);

interface Worker {
  readonly child: ChildProcess;
  busy: boolean;
}

interface PhaseStats {
  readonly name: string;
  readonly seconds: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly tasks: number;
  readonly retries: number;
}

class TaskFailed extends Error {
  override readonly name = "TaskFailed";
}

/** Runs tasks on the worker pool, one per worker at a time, retrying a failed task up to `retriesMax` times. */
async function runPhase(name: string, workers: Worker[], tasks: Task[], progressTotal: number): Promise<{ stats: PhaseStats; results: Map<number, TaskResult> }> {
  const bar = new ProgressBar(name, { total: progressTotal });
  const start = process.hrtime.bigint();
  const results = new Map<number, TaskResult>();
  const queue = [...tasks];
  const attempts = new Map<number, number>();
  let retries = 0;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      if (results.size === tasks.length) {
        resolve();
        return;
      }
      for (const w of workers) {
        if (w.busy || queue.length === 0) continue;
        const task = queue.shift()!;
        w.busy = true;
        const onMessage = (m: WorkerMessage): void => {
          if (m.kind === "progress" && m.id === task.id) bar.add(m.bytes);
          if ((m.kind !== "done" && m.kind !== "failed") || m.id !== task.id) return;
          w.child.off("message", onMessage);
          w.busy = false;
          if (m.kind === "done") {
            results.set(task.id, m.result);
          } else {
            const n = (attempts.get(task.id) ?? 0) + 1;
            attempts.set(task.id, n);
            if (n > retriesMax) {
              reject(new TaskFailed(`${name} task ${task.id} failed ${n} times; last: ${m.code}: ${m.message}`));
              return;
            }
            retries++;
            process.stderr.write(`\n${name} task ${task.id} failed (${m.code}: ${m.message}); retrying\n`);
            queue.push(task);
          }
          pump();
        };
        w.child.on("message", onMessage);
        w.child.send(task);
      }
    };
    for (const w of workers) w.child.once("exit", (code) => reject(new TaskFailed(`a worker exited with ${code} during ${name}`)));
    pump();
  });
  bar.finish();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  let bytesRead = 0;
  let bytesWritten = 0;
  for (const r of results.values()) {
    bytesRead += r.bytesRead;
    bytesWritten += r.bytesWritten;
  }
  return { stats: { name, seconds, bytesRead, bytesWritten, tasks: tasks.length, retries }, results };
}

function sumChecksums(results: Iterable<TaskResult>): Checksum {
  let c = emptyChecksum();
  for (const r of results) c = mergeChecksum(c, r.checksum);
  return c;
}

async function startWorkers(n: number, natsUrl: string, token: string, credentials: string | undefined): Promise<Worker[]> {
  const script = path.join(__dirname, "worker.js");
  const workers: Worker[] = [];
  for (let i = 0; i < n; i++) {
    const child = fork(script, [], { env: { ...process.env, POCKET_NATS_URL: natsUrl, POCKET_TOKEN: token, ...(credentials ? { POCKET_CREDS: credentials } : {}) }, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    workers.push({ child, busy: false });
  }
  await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("a worker did not start within 15 s")), 15_000);
    w.child.once("message", (m: WorkerMessage) => { clearTimeout(timer); if (m.kind === "ready") resolve(); else reject(new Error(`worker said ${m.kind} first`)); });
    w.child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`a worker exited with ${code} while starting`)); });
  })));
  return workers;
}

function rate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : "-";
}

/** Waits (bounded) until the cluster is back to `nodes` serving nodes, showing the count as it changes. */
async function settle(client: PocketClient, nodes: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  while (Date.now() < deadline) {
    const n = (await client.listNodes()).filter((x) => x.state === "active" || x.state === "provisioning" || x.state === "draining").length;
    if (n !== last) process.stderr.write(`${last === -1 ? "sort: waiting for the controller to drain the cluster back to its minimum:" : " →"} ${n}`);
    last = n;
    if (n <= nodes) {
      process.stderr.write(" node(s)\n");
      return true;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  process.stderr.write(` (still ${last} after ${timeoutMs / 1000} s)\n`);
  return false;
}

/** The cluster the job runs on, from the flags: DRAM nodes at rest, shards, the most nodes, and each node's size. */
interface ClusterShape {
  readonly dram: number;
  readonly shards: number;
  readonly maxNodes: number;
  readonly nodeBytes: number;
}

/** What a run holds that teardown releases; filled in as the run gets that far. */
interface Held {
  workers: Worker[];
  client: PocketClient | undefined;
  recorder: TimelineRecorder | undefined;
}

/** The three phases' stats and results. */
interface Phases {
  readonly map: { stats: PhaseStats; results: Map<number, TaskResult> };
  readonly reduce: { stats: PhaseStats; results: Map<number, TaskResult> };
  readonly validate: { stats: PhaseStats; results: Map<number, TaskResult> };
}

/** What cleaning up after the job found and freed. */
interface Cleanup {
  readonly nodes: NodeInfo[];
  readonly dropped: { objects: number; bytes: number };
  readonly out: { objects: number; bytes: number };
  readonly usage: ReplyOf<typeof ControllerOps.jobUsage>;
  readonly freed: { freedBytes: number };
  readonly cleanSeconds: number;
  readonly settled: boolean;
}

type SortEvent = Record<string, unknown>;

/** The controller's decisions shown in the report and on the timeline, with their times from cluster start. */
interface Decisions {
  readonly decisions: SortEvent[];
  readonly at: (e: SortEvent) => number;
  readonly describe: (e: SortEvent) => string;
}

/** The cluster's shape from the flags, announced on stderr. */
function clusterShape(): ClusterShape {
  const dram = positiveInt("dram", flags.dram!);
  const shards = positiveInt("shards", flags.shards!);
  const maxNodes = positiveInt("max-nodes", flags["max-nodes"]!);
  // One node holds the input's size; the job asks for map output and sorted output at once, plus headroom
  // (2.5 × the input), so the controller has to launch nodes for it — and drain them once it ends.
  const nodeBytes = Math.max(16 * 1024 ** 2, sizeBytes);
  process.stderr.write(`sort: ${formatBytes(totalRecords * recordBytes)} in ${totalRecords} records, ${maps} maps × ${reduces} reduces on ${workersWanted} workers\n`);
  process.stderr.write(`sort: starting a local cluster (nats-server, controller, ${shards} shards, ${dram} DRAM node(s) of ${formatBytes(nodeBytes)}; the controller may launch up to ${maxNodes})\n`);
  return { dram, shards, maxNodes, nodeBytes };
}

/** Connects the driver, starts the timeline, registers the job and starts the workers; returns once launched nodes serve. */
async function prepareJob(cluster: LocalCluster, held: Held, clusterStart: number): Promise<{ client: PocketClient; recorder: TimelineRecorder; job: RegisteredJob }> {
  process.stderr.write(`sort: cluster up at ${cluster.natsUrl} in ${((Date.now() - clusterStart) / 1000).toFixed(1)} s\n`);
  const client = await PocketClient.connect({ servers: cluster.natsUrl, name: "sort-driver", credentials: cluster.auth?.credentials(Role.Operator, "sort-driver") });
  held.client = client;
  const recorder = new TimelineRecorder(client, clusterStart);
  held.recorder = recorder;
  recorder.start();
  const job = await client.registerJob("sort", { lambdas: workersWanted, capacityBytes: Math.ceil(2.5 * sizeBytes) });
  process.stderr.write(`sort: job ${job.jobId} on shard ${job.shardId} (${job.tier}), weights ${job.weights.map((w) => `${w.nodeId}=${w.weight.toFixed(2)}`).join(" ")}\n`);
  held.workers = await startWorkers(workersWanted, cluster.natsUrl, job.token, job.credentials);
  // The nodes launched for the job serve before the map phase starts writing.
  const launchedFor = Date.now();
  while (Date.now() - launchedFor < 15_000 && (await client.listNodes()).some((n) => n.state === "provisioning")) await new Promise((r) => setTimeout(r, 100));
  return { client, recorder, job };
}

/** Runs map, reduce and validate in turn, each timed as a span of the timeline. */
async function runPhases(workers: Worker[], spans: Phase[], clusterStart: number): Promise<Phases> {
  const phase = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const fromMs = Date.now() - clusterStart;
    const r = await run();
    spans.push({ name, fromMs, toMs: Date.now() - clusterStart });
    return r;
  };
  let id = 0;
  const perMap = Math.floor(totalRecords / maps);
  const mapTasks: Task[] = Array.from({ length: maps }, (_, i) => ({
    kind: "map" as const, id: id++, index: i, firstIndex: i * perMap,
    records: i === maps - 1 ? totalRecords - perMap * (maps - 1) : perMap, partitions: reduces,
  }));
  const map = await phase("map", () => runPhase("map", workers, mapTasks, totalRecords * recordBytes));
  const reduce = await phase("reduce", () => runPhase("reduce", workers, Array.from({ length: reduces }, (_, r) => ({ kind: "reduce" as const, id: id++, partition: r, maps })), totalRecords * recordBytes));
  const validate = await phase("validate", () => runPhase("validate", workers, Array.from({ length: reduces }, (_, r) => ({ kind: "validate" as const, id: id++, partition: r })), totalRecords * recordBytes));
  return { map, reduce, validate };
}

/** Checks that every record is in the output once, each partition is sorted, and partitions are in key order. */
function checkOutput(phases: Phases): { input: Checksum; problems: string[] } {
  const input = sumChecksums(phases.map.results.values());
  const sortedOut = sumChecksums(phases.reduce.results.values());
  const readBack = sumChecksums(phases.validate.results.values());
  const problems: string[] = [];
  if (input.records !== totalRecords) problems.push(`maps produced ${input.records} records, expected ${totalRecords}`);
  for (const [what, c] of [["reduce output", sortedOut], ["read-back output", readBack]] as const) {
    if (c.records !== input.records || c.sum !== input.sum || c.xor !== input.xor) {
      problems.push(`${what} differs from the input: ${c.records} records (${c.sum}/${c.xor}) vs ${input.records} (${input.sum}/${input.xor})`);
    }
  }
  const parts = [...phases.validate.results.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r);
  parts.forEach((p, r) => { if (!p.sorted) problems.push(`partition ${r} is not sorted`); });
  let lastKey: string | undefined;
  for (const p of parts) {
    if (p.firstKey === undefined) continue;
    if (lastKey !== undefined && p.firstKey < lastKey) problems.push(`partitions out of order at key ${p.firstKey}`);
    lastKey = p.lastKey;
  }
  return { input, problems };
}

/** Drops the map outputs, deregisters the job and waits for the cluster to drain back to `dram` nodes; stops the timeline. */
async function cleanUp(client: PocketClient, recorder: TimelineRecorder, job: RegisteredJob, spans: Phase[], clusterStart: number, dram: number): Promise<Cleanup> {
  const nodes = await client.listNodes();
  const cleanStart = Date.now();
  const jobHandle = client.job(job.token);
  const dropped = await jobHandle.delete("map", { recursive: true });
  const out = await jobHandle.count("out");
  const usage = (await client.controller.call(ControllerOps.jobUsage, { jobId: job.jobId })).reply;
  const freed = await client.deregisterJob(job.token);
  const cleanSeconds = (Date.now() - cleanStart) / 1000;
  spans.push({ name: "cleanup", fromMs: cleanStart - clusterStart, toMs: Date.now() - clusterStart });
  const settled = await settle(client, dram, 60_000);
  await new Promise((r) => setTimeout(r, 600));
  recorder.stop();
  return { nodes, dropped, out, usage, freed, cleanSeconds, settled };
}

/** A decision as a phrase: which node or job, and why. */
function describeEvent(e: SortEvent, launchedAt: ReadonlyMap<string, number>): string {
  const k = String(e["kind"]);
  const id = String(e["nodeId"] ?? e["jobId"] ?? "");
  if (k === "node.active" && launchedAt.has(id)) return `${id} serving ${((Number(e["atMs"]) - launchedAt.get(id)!) / 1000).toFixed(2)} s after the decision`;
  if (k === "node.active") return `${id} joined`;
  if (k === "node.launch" || k === "node.draining" || k === "node.removed" || k === "job.grown") return `${id}: ${String(e["reason"])}`;
  if (k === "scale.in" || k === "scale.out") return `${String(e["tier"])} ${k === "scale.in" ? `−${String(e["nodeId"])}` : `+${String(e["launch"])}`}: ${String(e["reason"])}`;
  return id;
}

/** The controller's decisions since cluster start, from its event stream. */
async function readDecisions(client: PocketClient, clusterStart: number): Promise<Decisions> {
  const events: SortEvent[] = [];
  for await (const { event } of readEvents(client.nc)) events.push(event);
  const at = (e: SortEvent): number => Number(e["atMs"]) - clusterStart;
  const shown = new Set(["node.launch", "node.active", "scale.out", "scale.in", "node.draining", "node.removed", "node.failed", "job.registered", "job.deregistered", "job.grown"]);
  const decisions = events.filter((e) => shown.has(String(e["kind"])) && at(e) >= 0);
  const launchedAt = new Map(events.filter((e) => e["kind"] === "node.launch").map((e) => [String(e["nodeId"]), Number(e["atMs"])]));
  return { decisions, at, describe: (e) => describeEvent(e, launchedAt) };
}

/** Writes the timeline chart (SVG) and its data (JSON); returns the chart's path and the peak count of active nodes. */
function writeTimeline(recorder: TimelineRecorder, spans: Phase[], d: Decisions, shape: ClusterShape): { timelineFile: string; peak: number } {
  const marks: Mark[] = d.decisions.filter((e) => e["kind"] !== "job.grown").map((e) => ({
    tMs: d.at(e), kind: String(e["kind"]),
    label: `${String(e["kind"]).replace("node.", "").replace("job.", "")} ${String(e["nodeId"] ?? "")}`.trim(),
  }));
  const timelineFile = path.resolve(flags.timeline!);
  const peak = Math.max(0, ...recorder.samples.map((s) => s.nodes.filter((n) => n.state === "active").length));
  fs.writeFileSync(timelineFile, timelineChart(
    "Pocket on NATS — the cluster through one sort job",
    `${formatBytes(sizeBytes)} sort, ${workersWanted} workers; ${shape.dram} DRAM node(s) of ${formatBytes(shape.nodeBytes)} at rest, ${peak} at peak; ${os.cpus().length} cores`,
    recorder.samples, spans, marks,
  ));
  fs.writeFileSync(timelineFile.replace(/\.svg$/, "") + ".json", JSON.stringify({ phases: spans, samples: recorder.samples, events: d.decisions.map((e) => ({ ...e, tMs: d.at(e) })) }, null, 1));
  return { timelineFile, peak };
}

/** The per-phase table's lines, header first, and its total line. */
function phaseTable(phases: Phases, cleanSeconds: number, clusterStart: number): string[] {
  const all = [phases.map.stats, phases.reduce.stats, phases.validate.stats];
  const total = all.reduce((s, p) => s + p.seconds, 0);
  const rows = all.map((p) => [p.name, `${p.seconds.toFixed(2)} s`, formatBytes(p.bytesRead), formatBytes(p.bytesWritten),
    rate(p.bytesRead + p.bytesWritten, p.seconds), String(p.tasks), String(p.retries)]);
  rows.push(["cleanup", `${cleanSeconds.toFixed(2)} s`, "-", "-", "-", "-", "-"]);
  const head = ["phase", "time", "read", "written", "throughput", "tasks", "retries"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  return [
    `  ${line(head)}`,
    ...rows.map((r) => `  ${line(r)}`),
    `  ${"total".padEnd(widths[0]!)}  ${total.toFixed(2)} s (map+reduce+validate); end to end ${((Date.now() - clusterStart) / 1000).toFixed(1)} s with cluster start`,
  ];
}

/** Everything the report is written from. */
interface ReportInput {
  readonly shape: ClusterShape;
  readonly phases: Phases;
  readonly check: { input: Checksum; problems: string[] };
  readonly cleanup: Cleanup;
  readonly decisions: Decisions;
  readonly timeline: { timelineFile: string; peak: number };
  readonly clusterStart: number;
}

/** The report printed at the end of a run, as lines. */
function report(r: ReportInput): string[] {
  const { shape: { dram, shards }, check: { input, problems }, cleanup: { nodes, out, dropped, freed, settled, usage }, decisions: d, timeline: { timelineFile, peak } } = r;
  return [
    "",
    "Pocket on NATS — MapReduce sort",
    `  data        ${formatBytes(totalRecords * recordBytes)} (${totalRecords} records of ${recordBytes} B)`,
    `  tasks       ${maps} map, ${reduces} reduce, ${reduces} validate, on ${workersWanted} worker processes`,
    `  cluster     nats-server, controller, ${shards} shards, DRAM nodes (${nodes.filter((n) => n.state === "active").map((n) => `${n.nodeId} held ${formatBytes(n.usedBytes)}`).join(", ")})`,
    `  machine     ${os.cpus().length} cores, ${formatBytes(os.totalmem())}; ${1 + 1 + shards} cluster processes + ${peak} storage nodes at peak + ${workersWanted} workers + driver`,
    "",
    ...phaseTable(r.phases, r.cleanup.cleanSeconds, r.clusterStart),
    "",
    `  output      ${out.objects} partitions, ${formatBytes(out.bytes)}; removed ${dropped.objects} map outputs (${formatBytes(dropped.bytes)}); deregistration freed ${formatBytes(freed.freedBytes)}`,
    `  scaling     ${dram} node(s) at rest → ${peak} at peak → ${settled ? `${dram} again` : "not yet back"}; the controller's decisions:`,
    ...d.decisions.map((e) => `    ${(d.at(e) / 1000).toFixed(1).padStart(6)} s  ${String(e["kind"]).padEnd(16)} ${d.describe(e)}`),
    `  usage       ${usage.demand.nodes.toFixed(2)} node(s) reserved (${usage.demand.bound}-bound), ${usage.requests} requests, ${(usage.byteSeconds / 2 ** 30).toFixed(1)} GiB·s stored; $${usage.cost.toFixed(5)} at $${usage.pricePerNodeHour}/node-hour`,
    `  timeline    ${timelineFile} (and .json)`,
    `  check       ${problems.length === 0 ? `OK: ${input.records} records, sorted, checksums match (sum ${input.sum}, xor ${input.xor})` : "FAILED"}`,
    ...problems.map((p) => `    - ${p}`),
    "",
  ];
}

/** The whole job on a running cluster: prepare, run the phases, check, clean up, chart and report. */
async function sortOn(cluster: LocalCluster, shape: ClusterShape, held: Held, clusterStart: number): Promise<void> {
  const spans: Phase[] = [];
  const { client, recorder, job } = await prepareJob(cluster, held, clusterStart);
  const phases = await runPhases(held.workers, spans, clusterStart);
  const check = checkOutput(phases);
  const cleanup = await cleanUp(client, recorder, job, spans, clusterStart, shape.dram);
  const decisions = await readDecisions(client, clusterStart);
  const timeline = writeTimeline(recorder, spans, decisions, shape);
  process.stdout.write(report({ shape, phases, check, cleanup, decisions, timeline, clusterStart }).join("\n"));
  if (check.problems.length > 0) process.exitCode = 1;
}

/** Stops the timeline and the workers, closes the driver's connection and stops the cluster. */
async function tearDown(cluster: LocalCluster, held: Held): Promise<void> {
  held.recorder?.stop();
  for (const w of held.workers) if (w.child.connected) w.child.disconnect();
  await Promise.all(held.workers.map((w) => (w.child.exitCode === null ? new Promise((r) => w.child.once("exit", r)) : undefined)));
  await held.client?.close();
  await cluster.stop();
}

/** Starts a local cluster, runs the sort job on it and reports; always stops what it started. */
async function main(): Promise<void> {
  const shape = clusterShape();
  const clusterStart = Date.now();
  const cluster = await LocalCluster.start({
    shards: shape.shards, dram: shape.dram, dramCapacityBytes: shape.nodeBytes, minNodes: shape.dram, maxNodes: Math.max(shape.dram, shape.maxNodes),
    policy: { sustainMs: 2_000, cooldownMs: 4_000, windowMs: 3_000 },
  });
  const held: Held = { workers: [], client: undefined, recorder: undefined };
  try {
    await sortOn(cluster, shape, held, clusterStart);
  } finally {
    await tearDown(cluster, held);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`\nsort: failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}\n`);
  process.exit(1);
});
