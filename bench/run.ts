#!/usr/bin/env node
/**
 * Pocket against Redis and NATS KV, on this machine: `npm run bench [-- --quick] [--rounds N] [--out DIR]`.
 * Starts a local cluster (nats-server, controller, 2 shards, 2 DRAM nodes), a
 * redis-server (persistence off) and a plain nats-server with JetStream for
 * NATS KV, forks client processes that hold one connection to each, and runs
 * rounds that take the systems in a rotating order. Reports the median over
 * rounds of each round's ratio Pocket ÷ reference; every read is checked.
 * Prints a table, and writes JSON, a history line and an SVG chart under
 * bench/results/.
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { PocketClient } from "../client/pocket";
import { Role } from "../bus/credentials";
import { LocalCluster } from "../deploy/local-cluster";
import { natsServerBinary } from "../deploy/nats-server";
import { projectRoot } from "../lib/process";
import { formatBytes } from "../lib/units";
import { ClientPool } from "./clients";
import { KvServer, kvBucketConfig } from "./kv";
import { planFor, stepsFor, type Plan } from "./measures";
import { RedisServer, redisServerBinary } from "./redis-server";
import { reportText, writeResults, type RunReport } from "./report";
import { runRounds, summarise } from "./rounds";
import type { System } from "./work";

const { values: flags } = parseArgs({ options: { quick: { type: "boolean" }, rounds: { type: "string" }, out: { type: "string" } } });
const quick = flags.quick ?? false;
const outDir = flags.out ?? path.join(projectRoot(), "bench", "results");

/** Rounds at most: each takes every step on every system. */
const roundsMax = 50;

function step(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

/** `--rounds N`, checked; undefined for the mode's default. */
function roundsFlag(): number | undefined {
  if (flags.rounds === undefined) return undefined;
  const n = Number(flags.rounds);
  if (!Number.isInteger(n) || n < 1 || n > roundsMax) throw new RangeError(`--rounds ${flags.rounds}: expected a whole number from 1 to ${roundsMax}`);
  return n;
}

/** Runs a short command; its output trimmed, or `fallback` if it fails. */
function commandOutput(file: string, args: readonly string[], fallback: string): string {
  try {
    return execFileSync(file, args, { encoding: "utf8", cwd: projectRoot(), stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch (e) {
    // Not a failure of the run: the report says `fallback` instead.
    step(`${file} ${args.join(" ")}: ${e instanceof Error ? e.message : String(e)}`);
    return fallback;
  }
}

/** The servers compared, and the job the clients use. */
interface Servers {
  readonly redis: RedisServer;
  readonly kv: KvServer;
  readonly cluster: LocalCluster;
  readonly admin: PocketClient;
  readonly job: Awaited<ReturnType<PocketClient["registerJob"]>>;
}

/** Starts redis-server, the NATS KV server and a local Pocket cluster with a job; stops what started if one fails. */
async function startServers(plan: Plan): Promise<Servers> {
  step("starting redis-server, a nats-server with JetStream for NATS KV, and a local Pocket cluster (2 shards, 2 DRAM nodes)");
  const started: Array<() => Promise<void>> = [];
  try {
    const redis = await RedisServer.start();
    started.push(() => redis.stop());
    const kv = await KvServer.start();
    started.push(() => kv.stop());
    const cluster = await LocalCluster.start({ shards: 2, dram: 2, dramCapacityBytes: 3 * 1024 ** 3 });
    started.push(() => cluster.stop());
    const admin = await PocketClient.connect({ servers: cluster.natsUrl, name: "bench-driver", credentials: cluster.auth?.credentials(Role.Operator, "bench") });
    started.push(() => admin.close());
    const job = await admin.registerJob("bench", { lambdas: plan.clientsMax });
    return { redis, kv, cluster, admin, job };
  } catch (e) {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
    throw e;
  }
}

async function stopServers(s: Servers): Promise<void> {
  await s.admin.deregisterJob(s.job.token).catch(() => undefined);
  await s.admin.close();
  await s.cluster.stop();
  await s.kv.stop();
  await s.redis.stop();
}

/** Where things ran: the processes' roles and pids, and the busiest matching lines of `ps`. */
function whereThingsRan(pool: ClientPool, s: Servers): Pick<RunReport, "processes" | "ps"> {
  const processes = [
    ...pool.pids,
    { role: "redis-server", pid: s.redis.pid },
    { role: "nats-server for NATS KV", pid: s.kv.pid },
    { role: "bench driver", pid: process.pid },
  ];
  const ps = execFileSync("ps", ["-eo", "pid,psr,time,rss,args", "--sort=-time"], { encoding: "utf8" })
    .split("\n").filter((l, i) => i === 0 || /nats-server|actors\/main\.js|redis-server|bench\/(run|worker)\.js/.test(l)).slice(0, 40);
  return { processes, ps };
}

/** What each system was, as the results state it. */
function systemsText(): Record<System, string> {
  const natsVersion = commandOutput(natsServerBinary(), ["--version"], "nats-server").replace(":", "");
  return {
    pocket: "local cluster: nats-server with authentication, controller, 2 shards, 2 DRAM nodes; object bytes over the direct TCP transport",
    redis: `redis-server (${commandOutput(redisServerBinary(), ["--version"], "version unknown").split(" ").slice(0, 3).join(" ")}), persistence off; one ioredis connection per client`,
    "nats-kv": `its own ${natsVersion} (JetStream, no authentication); one bucket "${kvBucketConfig.bucket}", history ${kvBucketConfig.history}, ${kvBucketConfig.storage} storage, ${kvBucketConfig.replicas} replica; one connection per client (@nats-io/kv)`,
  };
}

/** Runs the rounds on started servers; returns the report (taken before anything stops). */
async function measure(s: Servers, plan: Plan, started: Date): Promise<RunReport> {
  const steps = stepsFor(plan);
  step(`forking ${plan.clientsMax} client processes`);
  const base = { natsUrl: s.cluster.natsUrl, token: s.job.token, credentials: s.job.credentials, redisPort: s.redis.port, kvUrl: s.kv.url, kvBucket: s.kv.bucket };
  const pool = await ClientPool.start(base, plan.clientsMax);
  try {
    const { rounds, observed } = await runRounds(pool, steps, plan.rounds, step);
    const dirty = commandOutput("git", ["status", "--porcelain"], "") !== "";
    return {
      mode: quick ? "quick" : "full", startedAt: started.toISOString(), finishedAt: new Date().toISOString(),
      commit: commandOutput("git", ["rev-parse", "--short", "HEAD"], "unknown"), dirty,
      machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${formatBytes(os.totalmem())}, Node ${process.version}`,
      cores: os.cpus().length, plan, systems: systemsText(), rounds, measures: summarise(steps, observed),
      ...whereThingsRan(pool, s),
    };
  } finally {
    await pool.stop();
  }
}

async function main(): Promise<void> {
  const started = new Date();
  const plan = planFor(quick, roundsFlag());
  const servers = await startServers(plan);
  let report: RunReport;
  try {
    report = await measure(servers, plan, started);
  } finally {
    await stopServers(servers);
  }
  const processesLine = `nats-server, controller, 2 shards, 2 DRAM nodes, redis-server, nats-server for NATS KV, ${plan.clientsMax} client processes, driver`;
  process.stdout.write(`\n${reportText(report, processesLine)}\n`);
  for (const p of writeResults(outDir, report)) step(`wrote ${p}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
