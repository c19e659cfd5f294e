#!/usr/bin/env node
/**
 * The NVMe engine against fio, in one run on the same file:
 *   npm run bench:nvme [-- --quick] [--file PATH] [--size 1GiB] [--seconds 5]
 * 4 KiB random reads at queue depth 1 and 32, 128 KiB sequential writes and
 * reads, through the engine (from JavaScript, closed loop, N in flight) and
 * through `fio --ioengine=io_uring --direct=1`. Prints a table, writes JSON
 * and an SVG chart under bench/results/.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { NvmeEngine } from "../native";
import { projectRoot } from "../deploy/actor-process";
import { formatBytes, parseBytes } from "../actors/runtime/units";
import { ratioChart, type Bar } from "./chart";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean" },
    file: { type: "string" },
    size: { type: "string" },
    seconds: { type: "string" },
    out: { type: "string" },
  },
});
const quick = flags.quick ?? false;
const seconds = Number(flags.seconds ?? (quick ? 2 : 5));
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

async function main(): Promise<void> {
  try {
    execFileSync("fio", ["--version"], { encoding: "utf8" });
  } catch {
    throw new Error("fio is missing: `bash scripts/provision.sh fio`");
  }
  process.stderr.write(`bench:nvme: ${formatBytes(sizeBytes)} file ${file}, ${seconds} s per case, ${os.cpus().length} cores\n`);
  const e = NvmeEngine.open({ path: file, sizeBytes, queueDepth: 64, model: { tokensPerSec: 1e12, readCost: 100, writeCost: 1000, latencyLimitUs: 1000 } });
  e.addBestEffort(1);
  const rows: Array<{ case: Case; engine: Measure; fio: Measure }> = [];
  try {
    for (const c of cases) {
      process.stderr.write(`  ${c.name}: engine…`);
      const engine = await engineRun(e, c);
      process.stderr.write(" fio…");
      const fio = fioRun(c);
      process.stderr.write(` ${(engine.iops / fio.iops).toFixed(2)}×\n`);
      rows.push({ case: c, engine, fio });
    }
  } finally {
    await e.close();
    if (!flags.file) fs.rmSync(file, { force: true });
  }
  const fmt = (m: Measure): string => `${Math.round(m.iops).toLocaleString("en")} IOPS ${formatBytes(m.bytesPerSec)}/s p50 ${m.p50Us.toFixed(0)} p99 ${m.p99Us.toFixed(0)} µs`;
  process.stdout.write(`\n${"case".padEnd(34)}  ${"engine".padEnd(52)}  ${"fio".padEnd(52)}  ratio\n`);
  for (const r of rows) process.stdout.write(`${r.case.name.padEnd(34)}  ${fmt(r.engine).padEnd(52)}  ${fmt(r.fio).padEnd(52)}  ${(r.engine.iops / r.fio.iops).toFixed(2)}×\n`);
  fs.mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const result = { at: new Date().toISOString(), quick, seconds, sizeBytes, file: flags.file ? file : "(temp file under /var/tmp)", cores: os.cpus().length, rows };
  const name = quick ? "nvme-quick" : "nvme-latest";
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(result, null, 2));
  if (!quick) fs.writeFileSync(path.join(outDir, `nvme-${stamp}.json`), JSON.stringify(result, null, 2));
  const bars: Bar[] = rows.map((r) => ({
    label: r.case.name, ratio: r.engine.iops / r.fio.iops, target: r.case.depth === 32 ? 0.9 : 0,
    note: `${Math.round(r.engine.iops).toLocaleString("en")} vs ${Math.round(r.fio.iops).toLocaleString("en")} IOPS`,
  }));
  fs.writeFileSync(path.join(outDir, `${name}.svg`), ratioChart("NVMe engine ÷ fio (io_uring, O_DIRECT), same file", `${formatBytes(sizeBytes)} file, ${seconds} s per case, ${os.cpus().length} cores; engine driven from JavaScript`, bars));
  process.stderr.write(`bench:nvme: results in ${path.join(outDir, `${name}.json`)} and .svg\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:nvme: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
