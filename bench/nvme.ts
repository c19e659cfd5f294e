#!/usr/bin/env node
/**
 * The NVMe engine against fio, in one run on the same file:
 *   npm run bench:nvme [-- --quick] [--file PATH] [--size 1GiB] [--seconds 3] [--rounds 3]
 * 4 KiB random reads at queue depth 1 and 32, 128 KiB sequential writes and
 * reads, three ways: through the engine's JavaScript API (closed loop, N
 * promises in flight), through the engine from C++ (`native/test/engine_bench.cc`,
 * no JavaScript: the engine's own ceiling) and through
 * `fio --ioengine=io_uring --direct=1`. The three run back to back, `rounds`
 * times per case (a shared virtual disk drifts by tens of percent from one
 * minute to the next); ratios are medians of each round's pair. Then QoS
 * isolation and 1 MB objects through the SDK. Prints a table, writes JSON
 * and an SVG chart under bench/results/.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { NvmeEngine } from "../native";
import { calibrate } from "../native/calibrate";
import { projectRoot } from "../lib/process";
import { formatBytes, parseBytes } from "../lib/units";
import { ratioChart, type Bar } from "../lib/chart";
import { LocalCluster } from "../deploy/local-cluster";
import { PocketClient } from "../client/pocket";
import { Role } from "../bus/credentials";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean" },
    file: { type: "string" },
    size: { type: "string" },
    seconds: { type: "string" },
    rounds: { type: "string" },
    out: { type: "string" },
  },
});
const quick = flags.quick ?? false;
const seconds = Number(flags.seconds ?? (quick ? 2 : 3));
const rounds = Math.max(1, Math.floor(Number(flags.rounds ?? (quick ? 1 : 3))));
const sizeBytes = parseBytes(flags.size ?? (quick ? "256MiB" : "1GiB"));
const file = flags.file ?? path.join("/var/tmp", `pocket-bench-nvme-${process.pid}.img`);
const outDir = flags.out ?? path.join(projectRoot(), "bench", "results");

interface Measure {
  readonly iops: number;
  readonly bytesPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
}

interface Case {
  readonly name: string;
  readonly rw: "randread" | "read" | "write";
  readonly bs: number;
  readonly depth: number;
}

const cases: Case[] = [
  { name: "128 KiB sequential write, QD 32", rw: "write", bs: 128 * 1024, depth: 32 },
  { name: "128 KiB sequential read, QD 32", rw: "read", bs: 128 * 1024, depth: 32 },
  { name: "4 KiB random read, QD 1", rw: "randread", bs: 4096, depth: 1 },
  { name: "4 KiB random read, QD 32", rw: "randread", bs: 4096, depth: 32 },
];

function percentile(sorted: Float64Array, q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0;
}

/** Closed loop: `depth` requests in flight from JavaScript for `seconds`; latency as JavaScript sees it. */
async function engineRun(e: NvmeEngine, c: Case): Promise<Measure> {
  const blocks = Math.floor(sizeBytes / c.bs);
  const latencies: number[] = [];
  const data = Buffer.alloc(c.bs, 0x5a);
  let seq = 0;
  let x = 12345;
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  let ops = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: c.depth }, async () => {
    while (process.hrtime.bigint() < deadline) {
      let block: number;
      if (c.rw === "randread") {
        x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
        block = x % blocks;
      } else {
        block = seq++ % blocks;
      }
      const t0 = process.hrtime.bigint();
      if (c.rw === "write") await e.write(1, block * c.bs, data);
      else await e.read(1, block * c.bs, c.bs);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
      ops++;
    }
  }));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const sorted = Float64Array.from(latencies).sort();
  return { iops: ops / elapsed, bytesPerSec: (ops * c.bs) / elapsed, p50Us: percentile(sorted, 0.5), p99Us: percentile(sorted, 0.99) };
}

/** The C++ closed loop through the engine, built here from the engine's sources (the same code the addon links). */
function nativeBenchBinary(): string {
  const root = projectRoot();
  const bin = path.join(root, "build", "engine_bench");
  const sources = ["native/src/scheduler.cc", "native/src/engine.cc", "native/test/engine_bench.cc"].map((f) => path.join(root, f));
  const newest = Math.max(...[...sources, path.join(root, "native/src/engine.h"), path.join(root, "native/src/scheduler.h")].map((f) => fs.statSync(f).mtimeMs));
  if (!fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest) {
    fs.mkdirSync(path.dirname(bin), { recursive: true });
    execFileSync("c++", ["-std=c++17", "-O2", "-Wall", "-Wextra", "-o", bin, ...sources, "-luring", "-lpthread"], { stdio: "inherit" });
  }
  return bin;
}

function nativeRun(bin: string, c: Case): Measure {
  const out = execFileSync(bin, [file, c.rw, String(c.bs), String(c.depth), String(seconds)], { encoding: "utf8" });
  return JSON.parse(out) as Measure;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The round whose figure is the median (so a row's columns come from one run). */
function medianOf(ms: readonly Measure[]): Measure {
  const sorted = [...ms].sort((a, b) => a.iops - b.iops);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function fioRun(c: Case): Measure {
  const out = execFileSync("fio", [
    "--name=pocket", `--filename=${file}`, "--ioengine=io_uring", "--direct=1", `--rw=${c.rw}`, `--bs=${c.bs}`, `--iodepth=${c.depth}`,
    `--size=${sizeBytes}`, `--runtime=${seconds}`, "--time_based", "--output-format=json", "--randrepeat=0",
  ], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const job = (JSON.parse(out.slice(out.indexOf("{"))) as { jobs: Array<Record<string, { iops: number; bw_bytes: number; clat_ns: { percentile?: Record<string, number> } }>> }).jobs[0]!;
  const side = c.rw === "write" ? job["write"]! : job["read"]!;
  const p = side.clat_ns.percentile ?? {};
  return { iops: side.iops, bytesPerSec: side.bw_bytes, p50Us: (p["50.000000"] ?? 0) / 1000, p99Us: (p["99.000000"] ?? 0) / 1000 };
}

interface Row {
  readonly case: Case;
  readonly runs: ReadonlyArray<{ engine: Measure; native: Measure; fio: Measure }>;
  /** The median round of each. */
  readonly engine: Measure;
  readonly native: Measure;
  readonly fio: Measure;
  /** Median over rounds of engine (JS) ÷ fio, and of engine (C++) ÷ fio, IOPS. */
  readonly ratio: number;
  readonly nativeRatio: number;
}

interface IsolationRun {
  readonly name: string;
  readonly lcP95Us: number;
  readonly lcP50Us: number;
  readonly lcIops: number;
  readonly beBytesPerSec: number;
  /** Requests that failed (not counted above). */
  readonly errors: number;
}

/**
 * A latency-critical tenant issuing 4 KiB random reads open-loop at `lcIops`,
 * alone or next to a best-effort tenant saturating the device with 128 KiB
 * writes (32 in flight), with the QoS scheduler or plain FIFO.
 */
async function isolationRun(name: string, model: { tokensPerSec: number; readCost: number; writeCost: number; latencyLimitUs: number }, lcIops: number, withBe: boolean, mode: "qos" | "fifo"): Promise<IsolationRun> {
  const e = NvmeEngine.open({ path: file, queueDepth: 64, model });
  try {
    e.setMode(mode);
    // The reservation has headroom over the offered rate (a tenant reserves its peak): at exactly its
    // rate, any jitter in arrivals would queue up for good.
    if (lcIops > 0) e.addLatencyCritical(2, { iops: Math.ceil(lcIops * 1.25), readRatio: 1, p95Us: model.latencyLimitUs });
    e.addBestEffort(3);
    const blocks = Math.floor(sizeBytes / 4096);
    const lat: number[] = [];
    let beBytes = 0;
    let errors = 0;
    const deadline = Date.now() + seconds * 1000;
    const data = Buffer.alloc(128 * 1024, 0x33);
    const be = withBe ? Promise.all(Array.from({ length: 32 }, async (_, k) => {
      let i = k;
      while (Date.now() < deadline) {
        const ok = await e.write(3, ((i * 32) % Math.floor(sizeBytes / (128 * 1024))) * 128 * 1024, data).then(() => true, () => false);
        // Past the deadline the engine is closed under writes still queued: those end cancelled, not failed.
        if (Date.now() > deadline) break;
        if (ok) beBytes += data.byteLength;
        else errors++;
        i += 32;
      }
    })) : Promise.resolve();
    let x = 777;
    const lc: Promise<void>[] = [];
    const start = Date.now();
    let issued = 0;
    while (Date.now() < deadline) {
      const due = Math.floor(((Date.now() - start) / 1000) * lcIops);
      while (issued < due) {
        x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
        const t0 = process.hrtime.bigint();
        lc.push(e.read(2, (x % blocks) * 4096, 4096).then(() => { lat.push(Number(process.hrtime.bigint() - t0) / 1000); }, () => { errors++; }));
        issued++;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    // Rates over the window the load was offered in. Writes a slow model still holds in the queue are
    // cancelled by closing the engine (a 128 KiB write can wait many seconds for its tokens).
    const elapsed = (Date.now() - start) / 1000;
    await Promise.all(lc);
    await e.close();
    await be;
    const sorted = Float64Array.from(lat).sort();
    return { name, lcP95Us: percentile(sorted, 0.95), lcP50Us: percentile(sorted, 0.5), lcIops: lat.length / elapsed, beBytesPerSec: beBytes / elapsed, errors };
  } finally {
    await e.close();
  }
}

interface SdkRun { readonly tier: string; readonly putBytesPerSec: number; readonly getBytesPerSec: number }

/** 1 MB objects through the SDK to a DRAM node and to an NVMe node of one local cluster (separate processes). */
async function sdkRuns(): Promise<SdkRun[]> {
  const objects = quick ? 64 : 256;
  const inflight = 16;
  const cluster = await LocalCluster.start({ shards: 1, dram: 1, nvme: 1, nvmeCapacityBytes: 1024 ** 3, orchestrator: "events-only" });
  const client = await PocketClient.connect({ servers: cluster.natsUrl, credentials: cluster.auth?.credentials(Role.Operator, "bench") });
  const out: SdkRun[] = [];
  try {
    for (const latencySensitive of [true, false]) {
      const reg = await client.registerJob(latencySensitive ? "dram-1mb" : "nvme-1mb", { capacityBytes: 512 * 1024 ** 2, latencySensitive });
      const job = client.job(reg.token);
      const data = Buffer.alloc(1000 * 1000, 0x61);
      const timed = async (f: (i: number) => Promise<unknown>): Promise<number> => {
        const t0 = process.hrtime.bigint();
        let next = 0;
        await Promise.all(Array.from({ length: inflight }, async () => {
          for (let i = next++; i < objects; i = next++) await f(i);
        }));
        return (objects * data.byteLength) / (Number(process.hrtime.bigint() - t0) / 1e9);
      };
      const put = await timed((i) => job.put(`o${i}`, data));
      const get = await timed((i) => job.get(`o${i}`));
      out.push({ tier: reg.tier, putBytesPerSec: put, getBytesPerSec: get });
      await client.deregisterJob(reg.token);
    }
  } finally {
    await client.close();
    await cluster.stop();
  }
  return out;
}

/** Fails with how to get fio when it is missing. */
function requireFio(): void {
  try {
    execFileSync("fio", ["--version"], { encoding: "utf8" });
  } catch {
    throw new Error("fio is missing: `bash scripts/provision.sh fio`");
  }
}

/** One round of a case through the engine's JavaScript API, on an engine of its own (closed before the C++ loop and fio open the file). */
async function engineRound(c: Case): Promise<Measure> {
  const e = NvmeEngine.open({ path: file, sizeBytes, queueDepth: 64, model: { tokensPerSec: 1e12, readCost: 100, writeCost: 1000, latencyLimitUs: 1000 } });
  try {
    e.addBestEffort(1);
    return await engineRun(e, c);
  } finally {
    await e.close();
  }
}

/** A case `rounds` times, the engine from JavaScript, from C++ and fio back to back each round; medians of each. */
async function measureCase(bin: string, c: Case): Promise<Row> {
  const runs: Array<{ engine: Measure; native: Measure; fio: Measure }> = [];
  process.stderr.write(`  ${c.name}:`);
  for (let r = 0; r < rounds; r++) {
    const engine = await engineRound(c);
    const native = nativeRun(bin, c);
    const fio = fioRun(c);
    runs.push({ engine, native, fio });
    process.stderr.write(` [${r + 1}/${rounds}: JS ${(engine.iops / fio.iops).toFixed(2)}×, C++ ${(native.iops / fio.iops).toFixed(2)}×]`);
  }
  const row: Row = {
    case: c, runs,
    engine: medianOf(runs.map((x) => x.engine)), native: medianOf(runs.map((x) => x.native)), fio: medianOf(runs.map((x) => x.fio)),
    ratio: median(runs.map((x) => x.engine.iops / x.fio.iops)), nativeRatio: median(runs.map((x) => x.native.iops / x.fio.iops)),
  };
  process.stderr.write(` → JS ${row.ratio.toFixed(2)}×, C++ ${row.nativeRatio.toFixed(2)}×\n`);
  return row;
}

/** The device model the QoS scheduler runs by. */
interface DeviceModel { readonly tokensPerSec: number; readonly readCost: number; readonly writeCost: number; readonly latencyLimitUs: number }

/** The QoS isolation runs, their device model and LC rate, and the device's 4 KiB read capacity. */
interface Isolation {
  readonly calibrated: Awaited<ReturnType<typeof calibrate>>;
  readonly model: DeviceModel;
  readonly lcIops: number;
  readonly readCapacity: number;
  readonly runs: IsolationRun[];
}

/**
 * QoS isolation. The device model as ReFlex builds it: calibrated on this file against a latency limit
 * (p95 device latency against offered load, for reads and an 80/20 mix: what `pocket calibrate` does).
 * Removes the file afterwards unless --file named it.
 */
async function isolationRuns(rows: readonly Row[]): Promise<Isolation> {
  const qd32 = rows.find((r) => r.case.rw === "randread" && r.case.depth === 32)!;
  const readCapacity = Math.max(qd32.fio.iops, qd32.native.iops);
  process.stderr.write("  calibrating the device model (p95 ≤ 1000 µs)…\n");
  const calibrated = await calibrate({ path: file, latencyLimitUs: 1000, stepSeconds: quick ? 0.3 : 0.5, readRatio: 0.8 });
  const model = { tokensPerSec: calibrated.tokensPerSec, readCost: calibrated.readCost, writeCost: calibrated.writeCost, latencyLimitUs: calibrated.latencyLimitUs };
  // LC reads at 30% of what the model says the device serves within the limit (and of what one JS thread offers).
  const lcIops = Math.round(0.3 * Math.min(model.tokensPerSec / model.readCost, qd32.engine.iops));
  process.stderr.write(`  QoS isolation: LC ${lcIops} IOPS of 4 KiB reads; model ${Math.round(model.tokensPerSec).toLocaleString("en")} tokens/s, write cost ${model.writeCost}\n`);
  const runs: IsolationRun[] = [];
  try {
    for (const [name, withLc, withBe, mode] of [["BE alone", false, true, "qos"], ["LC alone", true, false, "qos"], ["LC + BE writes, QoS", true, true, "qos"], ["LC + BE writes, FIFO", true, true, "fifo"]] as const) {
      process.stderr.write(`    ${name}…`);
      const r = await isolationRun(name, model, withLc ? lcIops : 0, withBe, mode);
      process.stderr.write(` LC p95 ${r.lcP95Us.toFixed(0)} µs, BE ${formatBytes(r.beBytesPerSec)}/s\n`);
      runs.push(r);
    }
  } finally {
    if (!flags.file) fs.rmSync(file, { force: true });
  }
  return { calibrated, model, lcIops, readCapacity, runs };
}

/**
 * BE's share of the leftover, two ways. In the model's terms (ReFlex's): tokens per second BE spent
 * against the token rate LC left (the model's rate less what LC used). Against the device: BE under
 * QoS against BE alone (the whole device, no reservation: work-conserving) less LC's share of the
 * device's 4 KiB read capacity.
 */
function shares(iso: Isolation): { beTokens: number; leftoverTokens: number; beTokenShare: number; lcShare: number; leftover: number; beShare: number } {
  const [beAlone, lcAlone, qos] = iso.runs as [IsolationRun, IsolationRun, IsolationRun, IsolationRun];
  const beTokens = (qos.beBytesPerSec / 4096) * iso.model.writeCost;
  const leftoverTokens = Math.max(1, iso.model.tokensPerSec - qos.lcIops * iso.model.readCost);
  const lcShare = Math.min(1, lcAlone.lcIops / iso.readCapacity);
  const leftover = beAlone.beBytesPerSec * (1 - lcShare);
  return { beTokens, leftoverTokens, beTokenShare: beTokens / leftoverTokens, lcShare, leftover, beShare: qos.beBytesPerSec / leftover };
}

/** Prints the engine-against-fio table and the SDK line. */
function printCases(rows: readonly Row[], dram: SdkRun, nvme: SdkRun): void {
  const fmt = (m: Measure): string => `${Math.round(m.iops).toLocaleString("en")} IOPS ${formatBytes(m.bytesPerSec)}/s p50 ${m.p50Us.toFixed(0)} p99 ${m.p99Us.toFixed(0)} µs`;
  process.stdout.write(`\n${"case".padEnd(34)}  ${"engine from JavaScript".padEnd(50)}  ${"engine from C++".padEnd(50)}  ${"fio".padEnd(50)}  JS÷fio  C++÷fio\n`);
  for (const r of rows) {
    process.stdout.write(`${r.case.name.padEnd(34)}  ${fmt(r.engine).padEnd(50)}  ${fmt(r.native).padEnd(50)}  ${fmt(r.fio).padEnd(50)}  ${r.ratio.toFixed(2).padStart(5)}×  ${r.nativeRatio.toFixed(2).padStart(6)}×\n`);
  }
  process.stdout.write(`(medians of ${rounds} back-to-back round(s) of ${seconds} s each; ratios are medians of each round's pair)\n`);
  process.stdout.write(`\n1 MB objects through the SDK (16 in flight): DRAM node PUT ${formatBytes(dram.putBytesPerSec)}/s GET ${formatBytes(dram.getBytesPerSec)}/s; NVMe node PUT ${formatBytes(nvme.putBytesPerSec)}/s GET ${formatBytes(nvme.getBytesPerSec)}/s → ${(nvme.putBytesPerSec / dram.putBytesPerSec).toFixed(2)}× / ${(nvme.getBytesPerSec / dram.getBytesPerSec).toFixed(2)}×\n`);
}

/** Prints the QoS isolation runs and how they compare with their targets. */
function printIsolation(iso: Isolation, s: ReturnType<typeof shares>): void {
  const { model, lcIops } = iso;
  const [, lcAlone, qos, fifo] = iso.runs as [IsolationRun, IsolationRun, IsolationRun, IsolationRun];
  process.stdout.write(`\nQoS isolation (LC: ${lcIops} IOPS of 4 KiB random reads, open loop, SLO p95 ${model.latencyLimitUs} µs; BE: 128 KiB writes, 32 in flight)\n`);
  for (const r of iso.runs) process.stdout.write(`  ${r.name.padEnd(24)}  ${r.lcIops ? `LC p50 ${r.lcP50Us.toFixed(0)} µs, p95 ${r.lcP95Us.toFixed(0)} µs, ${Math.round(r.lcIops)} IOPS;  ` : ""}BE ${formatBytes(r.beBytesPerSec)}/s${r.errors ? `; ${r.errors} requests failed` : ""}\n`);
  process.stdout.write(`  LC p95 with BE under QoS ${(qos.lcP95Us / lcAlone.lcP95Us).toFixed(2)}× alone (target ≤ 1.5×, within SLO: ${qos.lcP95Us <= model.latencyLimitUs ? "yes" : "no"}); with FIFO ${(fifo.lcP95Us / lcAlone.lcP95Us).toFixed(2)}×\n`);
  process.stdout.write(`  BE under QoS: ${(s.beTokenShare * 100).toFixed(0)}% of the leftover token rate (${Math.round(s.beTokens).toLocaleString("en")} of ${Math.round(s.leftoverTokens).toLocaleString("en")} tokens/s; target ≥ 80%); ${(s.beShare * 100).toFixed(0)}% of the device's raw leftover (${formatBytes(s.leftover)}/s: BE alone × (1 − LC's ${(s.lcShare * 100).toFixed(0)}% of the 4 KiB read capacity))\n`);
}

/** The chart's bars: each case against fio, NVMe against DRAM through the SDK, and the isolation targets. */
function chartBars(rows: readonly Row[], dram: SdkRun, nvme: SdkRun, iso: Isolation, s: ReturnType<typeof shares>): Bar[] {
  const [, lcAlone, qos, fifo] = iso.runs as [IsolationRun, IsolationRun, IsolationRun, IsolationRun];
  const bars: Bar[] = rows.flatMap((r) => {
    const target = r.case.depth === 32 ? 0.9 : 0;
    return [
      { label: `${r.case.name}, JS API`, ratio: r.ratio, target, note: `${Math.round(r.engine.iops).toLocaleString("en")} vs ${Math.round(r.fio.iops).toLocaleString("en")} IOPS` },
      { label: `${r.case.name}, C++ loop`, ratio: r.nativeRatio, target, note: `${Math.round(r.native.iops).toLocaleString("en")} vs ${Math.round(r.fio.iops).toLocaleString("en")} IOPS` },
    ];
  });
  bars.push({ label: "1 MB PUT via SDK, NVMe ÷ DRAM node", ratio: nvme.putBytesPerSec / dram.putBytesPerSec, target: 0.8, note: `${formatBytes(nvme.putBytesPerSec)}/s vs ${formatBytes(dram.putBytesPerSec)}/s` });
  bars.push({ label: "1 MB GET via SDK, NVMe ÷ DRAM node", ratio: nvme.getBytesPerSec / dram.getBytesPerSec, target: 0.8, note: `${formatBytes(nvme.getBytesPerSec)}/s vs ${formatBytes(dram.getBytesPerSec)}/s` });
  for (const r of [qos, fifo]) {
    bars.push({ label: `LC p95 alone ÷ with BE (${r.name.split(", ")[1]})`, ratio: lcAlone.lcP95Us / r.lcP95Us, target: 1 / 1.5, note: `${lcAlone.lcP95Us.toFixed(0)} vs ${r.lcP95Us.toFixed(0)} µs; BE ${formatBytes(r.beBytesPerSec)}/s` });
  }
  bars.push({ label: "BE under QoS ÷ leftover token rate", ratio: s.beTokenShare, target: 0.8, note: `${formatBytes(qos.beBytesPerSec)}/s at write cost ${iso.model.writeCost}` });
  bars.push({ label: "BE under QoS ÷ device's raw leftover", ratio: s.beShare, target: 0, note: `${formatBytes(qos.beBytesPerSec)}/s of ${formatBytes(s.leftover)}/s` });
  return bars;
}

/** Writes the results as JSON (latest, and stamped on a full run) and the chart as SVG under `outDir`. */
function writeResults(rows: readonly Row[], sdk: SdkRun[], iso: Isolation, s: ReturnType<typeof shares>, bars: Bar[]): void {
  fs.mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const result = {
    at: new Date().toISOString(), quick, seconds, rounds, sizeBytes, file: flags.file ? file : "(temp file under /var/tmp)", cores: os.cpus().length,
    rows, isolation: { lcIops: iso.lcIops, model: iso.model, calibration: iso.calibrated.points, readCapacity: iso.readCapacity, beTokenShare: s.beTokenShare, lcShare: s.lcShare, leftoverBytesPerSec: s.leftover, beShareOfRawLeftover: s.beShare, runs: iso.runs }, sdk,
  };
  const name = quick ? "nvme-quick" : "nvme-latest";
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(result, null, 2));
  if (!quick) fs.writeFileSync(path.join(outDir, `nvme-${stamp}.json`), JSON.stringify(result, null, 2));
  fs.writeFileSync(path.join(outDir, `${name}.svg`), ratioChart("NVMe engine ÷ fio (io_uring, O_DIRECT), same file", `${formatBytes(sizeBytes)} file, ${seconds} s × ${rounds} rounds per case, ${os.cpus().length} cores; engine from JavaScript and from C++`, bars));
  process.stderr.write(`bench:nvme: results in ${path.join(outDir, `${name}.json`)} and .svg\n`);
}

/** Every case against fio, then QoS isolation and the SDK; prints the results and writes them under `outDir`. */
async function main(): Promise<void> {
  requireFio();
  process.stderr.write(`bench:nvme: ${formatBytes(sizeBytes)} file ${file}, ${seconds} s per case, ${os.cpus().length} cores\n`);
  const bin = nativeBenchBinary();
  const rows: Row[] = [];
  for (const c of cases) rows.push(await measureCase(bin, c));
  const iso = await isolationRuns(rows);
  process.stderr.write("  1 MB objects through the SDK: DRAM node, then NVMe node…\n");
  const sdk = await sdkRuns();
  const [dram, nvme] = [sdk.find((r) => r.tier === "dram")!, sdk.find((r) => r.tier === "nvme")!];
  printCases(rows, dram, nvme);
  const s = shares(iso);
  printIsolation(iso, s);
  writeResults(rows, sdk, iso, s, chartBars(rows, dram, nvme, iso, s));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:nvme: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
