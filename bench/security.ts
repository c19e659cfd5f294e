#!/usr/bin/env node
/**
 * What the trust boundary costs, in one run: `npm run bench:security [-- --quick] [--rounds N] [--baseline DIR]`.
 *
 * Three local clusters side by side (each: nats-server, controller, one
 * shard, two DRAM nodes, as processes): one on an authenticated bus
 * (operator mode, a credential per role, lambdas on their job's own
 * credential), the same with TLS on every connection (NATS and the direct
 * transport), and one on an anonymous bus. All run the same code otherwise:
 * grants, receipts, the direct transport's handshake and CRC-32 on every
 * extent and inline object. Rounds take the three in turn (the order rotates
 * each round) and the figures are medians of per-round differences and
 * ratios: authentication against the anonymous bus, TLS against the same
 * authenticated bus without it. The checksums' own cost is measured in the
 * same run as CPU time per object (they cannot be switched off: a read that
 * is not checked could return wrong bytes). With `--baseline DIR` (a checkout
 * of an earlier commit, built), a fourth cluster runs that build, and the
 * whole trust boundary (identities, grants, receipts, handshake, checksums)
 * is measured against it.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { PocketClient, type PocketJob } from "../client/pocket";
import { Role } from "../bus/credentials";
import { crc32 } from "../lib/checksum";
import { LocalCluster, LaunchMode } from "../deploy/local-cluster";
import { projectRoot } from "../lib/process";
import { NatsServer } from "../deploy/nats-server";
import { formatBytes } from "../lib/units";
import { ratioChart } from "../lib/chart";

const { values: flags } = parseArgs({ options: { quick: { type: "boolean" }, rounds: { type: "string" }, out: { type: "string" }, baseline: { type: "string" } } });
const quick = flags.quick ?? false;
const rounds = Number(flags.rounds ?? (quick ? 3 : 7));
const outDir = flags.out ?? path.join(projectRoot(), "bench", "results");
const latencyOps = quick ? 1_000 : 4_000;
const throughputMs = quick ? 1_000 : 3_000;
const MiB = 1024 * 1024;
const inflight = 8;

type Name = "secure" | "tls" | "anonymous" | "baseline";

/** What the benchmark needs of a cluster, a client and a job: also met by an earlier build's (`--baseline`). */
interface Setup {
  readonly name: Name;
  readonly cluster: { stop(): Promise<void> };
  readonly nats: NatsServer | undefined;
  readonly client: { close(): Promise<void> };
  readonly job: Pick<PocketJob, "put" | "get">;
}

/**
 * A cluster of an earlier build (a checkout built with `npm run build`), as
 * the code was before the trust boundary: no bus identities, grants, receipts,
 * handshake or checksums. Loaded from its own dist/, processes and all.
 */
async function startBaseline(dir: string): Promise<Setup> {
  const load = (file: string): Record<string, unknown> => require(path.join(path.resolve(dir), "dist", file)) as Record<string, unknown>;
  const Cluster = load("deploy/local-cluster.js")["LocalCluster"] as { start(o: object): Promise<{ natsUrl: string; stop(): Promise<void> }> };
  const Client = load("client/pocket.js")["PocketClient"] as {
    connect(o: object): Promise<{ close(): Promise<void>; registerJob(n: string, h: object): Promise<{ token: string }>; job(t: string): Setup["job"] }>;
  };
  const cluster = await Cluster.start({ shards: 1, dram: 2, mode: "process", orchestrator: "events-only" });
  const client = await Client.connect({ servers: cluster.natsUrl, name: "bench-baseline" });
  const reg = await client.registerJob("bench-baseline", { capacityBytes: 512 * MiB });
  return { name: "baseline", cluster, nats: undefined, client, job: client.job(reg.token) };
}

interface Sample { putP50Us: number; getP50Us: number; putMiBps: number; getMiBps: number }

function step(msg: string): void {
  process.stderr.write(`bench:security: ${msg}\n`);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function start(name: Exclude<Name, "baseline">): Promise<Setup> {
  const common = { shards: 1, dram: 2, mode: LaunchMode.Process, orchestrator: "events-only" as const };
  let nats: NatsServer | undefined;
  let cluster: LocalCluster;
  let credentials: string | undefined;
  if (name === "secure" || name === "tls") {
    cluster = await LocalCluster.start({ ...common, tls: name === "tls" });
    credentials = cluster.auth!.credentials(Role.Driver, "bench");
  } else {
    nats = await NatsServer.start({ jetstream: true });
    cluster = await LocalCluster.start({ ...common, natsUrl: nats.url });
  }
  const client = await PocketClient.connect({ servers: cluster.natsUrl, credentials, tlsCa: cluster.tls?.ca(), name: `bench-${name}` });
  const reg = await client.registerJob(`bench-${name}`, { capacityBytes: 512 * MiB });
  return { name, cluster, nats, client, job: client.job(reg.token) };
}

async function latencyP50Us(op: () => Promise<unknown>): Promise<number> {
  const us: number[] = [];
  for (let i = 0; i < latencyOps; i++) {
    const t0 = process.hrtime.bigint();
    await op();
    us.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return median(us);
}

/** Bytes per second over `throughputMs`, `inflight` operations at once. */
async function throughput(op: (i: number) => Promise<unknown>): Promise<number> {
  const end = Date.now() + throughputMs;
  let done = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: inflight }, async (_, lane) => {
    for (let i = lane; Date.now() < end; i += inflight) {
      await op(i);
      done++;
    }
  }));
  return (done * MiB) / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function measure(s: Setup, small: Buffer, big: Buffer): Promise<Sample> {
  let k = 0;
  const putP50Us = await latencyP50Us(() => s.job.put(`small/${k++ % 256}`, small));
  await s.job.put("small/x", small);
  const getP50Us = await latencyP50Us(() => s.job.get("small/x"));
  const putBps = await throughput((i) => s.job.put(`big/${i % 32}`, big));
  const getBps = await throughput(async (i) => {
    const got = await s.job.get(`big/${i % 32}`);
    if (got.byteLength !== big.byteLength) throw new Error("short read");
  });
  return { putP50Us, getP50Us, putMiBps: putBps / MiB, getMiBps: getBps / MiB };
}

/** CPU time of one CRC-32 over `bytes`, median of many. */
function crcMicros(bytes: Buffer, reps: number): number {
  const us: number[] = [];
  for (let r = 0; r < 15; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) crc32(bytes);
    us.push(Number(process.hrtime.bigint() - t0) / 1000 / reps);
  }
  return median(us);
}

async function main(): Promise<void> {
  const setups = await startSetups();
  const small = Buffer.alloc(1024, 7);
  const big = Buffer.alloc(MiB);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131) & 0xff;
  let per: Record<Name, Sample[]>;
  try {
    per = await runRounds(setups, small, big);
  } finally {
    await stopAll(setups);
  }
  const result = summarise(per, setups.length, small, big);
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, "security-latest.json"), `${JSON.stringify(result, null, 2)}\n`);
  printSummary(result);
  writeChart(per, result);
}

/** The clusters compared: authenticated, with TLS, anonymous, and an earlier build when asked. */
async function startSetups(): Promise<Setup[]> {
  step(`clusters: authenticated bus, the same with TLS, anonymous bus${flags.baseline ? `, the build in ${flags.baseline}` : ""}; ${rounds} rounds taking them in turn`);
  const setups: Setup[] = [];
  try {
    for (const name of ["secure", "tls", "anonymous"] as const) setups.push(await start(name));
    if (flags.baseline) setups.push(await startBaseline(flags.baseline));
  } catch (e) {
    await stopAll(setups);
    throw e;
  }
  return setups;
}

/** Measures every cluster once per round, each going first, second and third in turn. */
async function runRounds(setups: readonly Setup[], small: Buffer, big: Buffer): Promise<Record<Name, Sample[]>> {
  const per: Record<Name, Sample[]> = { secure: [], tls: [], anonymous: [], baseline: [] };
  for (let r = 0; r < rounds; r++) {
    const order = setups.map((_, i) => setups[(i + r) % setups.length]!);
    for (const s of order) {
      const sample = await measure(s, small, big);
      per[s.name].push(sample);
      step(`round ${r + 1}/${rounds} ${s.name.padEnd(9)} 1 KB put/get p50 ${sample.putP50Us.toFixed(0)}/${sample.getP50Us.toFixed(0)} µs, ` +
        `1 MiB put/get ${sample.putMiBps.toFixed(0)}/${sample.getMiBps.toFixed(0)} MiB/s`);
    }
  }
  return per;
}

/** Median over rounds of `of`'s figure minus `base`'s, same round. */
function diffOf(per: Record<Name, Sample[]>, of: Name, base: Name, k: keyof Sample): number {
  return median(per[of].map((x, i) => x[k] - per[base][i]![k]));
}

/** Median over rounds of `of`'s figure divided by `base`'s, same round. */
function ratioOf(per: Record<Name, Sample[]>, of: Name, base: Name, k: keyof Sample): number {
  return median(per[of].map((x, i) => x[k] / per[base][i]![k]));
}

/** What one cluster costs over another: 1 KB latency deltas and 1 MiB throughput ratios. */
function costOf(per: Record<Name, Sample[]>, of: Name, base: Name) {
  return {
    put1KbP50DeltaUs: diffOf(per, of, base, "putP50Us"), get1KbP50DeltaUs: diffOf(per, of, base, "getP50Us"),
    put1MiBThroughputRatio: ratioOf(per, of, base, "putMiBps"), get1MiBThroughputRatio: ratioOf(per, of, base, "getMiBps"),
  };
}

/** The run's figures, as written to security-latest.json. */
function summarise(per: Record<Name, Sample[]>, clusters: number, small: Buffer, big: Buffer) {
  const crc1k = crcMicros(small, 20_000);
  const crc1m = crcMicros(big, 20);
  return {
    date: new Date().toISOString(), rounds, latencyOps, throughputMs, inflight,
    processes: `per cluster: nats-server, controller, 1 shard, 2 DRAM nodes (${5 * clusters} in all, idle in turn); client in the bench process; 2 cores`,
    auth: costOf(per, "secure", "anonymous"),
    ...(flags.baseline ? { wholeBoundary: { baseline: flags.baseline, ...costOf(per, "secure", "baseline") } } : {}),
    tls: costOf(per, "tls", "secure"),
    checksums: { crc32Per1KbUs: crc1k, crc32PerMiBUs: crc1m, crc32MiBps: 1 / (crc1m / 1e6) },
    samples: per,
  };
}

type Summary = ReturnType<typeof summarise>;

/** The summary on stdout, each figure against its budget. */
function printSummary(result: Summary): void {
  const a = result.auth;
  const x = result.tls;
  const w = result.wholeBoundary;
  const signed = (v: number, digits: number): string => `${v >= 0 ? "+" : ""}${v.toFixed(digits)}`;
  const pct = (r: number): string => ((r - 1) * 100).toFixed(1);
  const lines = [
    "what the authenticated bus costs (secure − anonymous, median of per-round figures):",
    `  1 KB PUT p50 ${signed(a.put1KbP50DeltaUs, 1)} µs, GET p50 ${signed(a.get1KbP50DeltaUs, 1)} µs (budget +10 µs)`,
    `  1 MiB PUT ${pct(a.put1MiBThroughputRatio)}%, GET ${pct(a.get1MiBThroughputRatio)}% throughput (budget −5%)`,
    ...(w ? [
      `what the whole trust boundary costs (secure − the build in ${flags.baseline}: no identities, grants, handshake or checksums):`,
      `  1 KB PUT p50 ${signed(w.put1KbP50DeltaUs, 1)} µs, GET p50 ${signed(w.get1KbP50DeltaUs, 1)} µs (budget +10 µs)`,
      `  1 MiB PUT ${pct(w.put1MiBThroughputRatio)}%, GET ${pct(w.get1MiBThroughputRatio)}% throughput (budget −5%)`,
    ] : []),
    "what TLS costs on top (secure with TLS − secure, median of per-round figures):",
    `  1 KB PUT p50 ${signed(x.put1KbP50DeltaUs, 1)} µs, GET p50 ${signed(x.get1KbP50DeltaUs, 1)} µs`,
    `  1 MiB PUT ${pct(x.put1MiBThroughputRatio)}%, GET ${pct(x.get1MiBThroughputRatio)}% throughput`,
    "what the checksums cost (both clusters pay it; CPU per object, this run):",
    `  CRC-32 of 1 KB ${result.checksums.crc32Per1KbUs.toFixed(2)} µs; of 1 MiB ${result.checksums.crc32PerMiBUs.toFixed(0)} µs (${formatBytes(MiB / (result.checksums.crc32PerMiBUs / 1e6))}/s), once by the writer, once by the node, once by the reader`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** security-latest.svg: every comparison as a ratio bar. */
function writeChart(per: Record<Name, Sample[]>, result: Summary): void {
  const ratio = (of: Name, base: Name, k: keyof Sample): number => ratioOf(per, of, base, k);
  const bar = (label: string, r: number, target = 0): { label: string; ratio: number; target: number; note: string } => ({ label, ratio: r, target, note: "" });
  const w = result.wholeBoundary;
  const bars = [
    bar("1 KB PUT p50 (anonymous ÷ secure)", ratio("anonymous", "secure", "putP50Us")),
    bar("1 KB GET p50 (anonymous ÷ secure)", ratio("anonymous", "secure", "getP50Us")),
    bar("1 MiB PUT throughput (secure ÷ anonymous)", result.auth.put1MiBThroughputRatio, 0.95),
    bar("1 MiB GET throughput (secure ÷ anonymous)", result.auth.get1MiBThroughputRatio, 0.95),
    ...(w ? [
      bar("1 KB PUT p50 (before ÷ secure)", ratio("baseline", "secure", "putP50Us")),
      bar("1 KB GET p50 (before ÷ secure)", ratio("baseline", "secure", "getP50Us")),
      bar("1 MiB PUT throughput (secure ÷ before)", w.put1MiBThroughputRatio, 0.95),
      bar("1 MiB GET throughput (secure ÷ before)", w.get1MiBThroughputRatio, 0.95),
    ] : []),
    bar("1 KB PUT p50 (secure ÷ secure with TLS)", ratio("secure", "tls", "putP50Us")),
    bar("1 KB GET p50 (secure ÷ secure with TLS)", ratio("secure", "tls", "getP50Us")),
    bar("1 MiB PUT throughput (TLS ÷ secure)", result.tls.put1MiBThroughputRatio),
    bar("1 MiB GET throughput (TLS ÷ secure)", result.tls.get1MiBThroughputRatio),
  ];
  fs.writeFileSync(path.join(outDir, "security-latest.svg"), ratioChart(
    "Pocket on an authenticated bus, with and without TLS, against an anonymous one",
    `${rounds} alternating rounds, medians of per-round ratios; ${result.processes}`, bars));
}

async function stopAll(setups: readonly Setup[]): Promise<void> {
  for (const s of setups) {
    await s.client.close();
    await s.cluster.stop();
    await s.nats?.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:security: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
