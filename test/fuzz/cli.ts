import { startTestCluster } from "../harness/cluster";
import { defaultFuzzOptions, runFuzz, type FuzzOptions, type FuzzReport } from "./run";
import { fuzzClusterOptions, openFuzzWorld } from "./world";

/**
 * `npm run fuzz`: starts a cluster as the tests do (nats-server with the
 * cluster's identities, inline actors) and runs seeded fuzz cases against
 * every direct-transport port and every NATS subject the actors serve.
 *
 *   npm run fuzz                                   # 1,000,000 cases, seed 1
 *   npm run fuzz -- --seed 7 --cases 50000 --concurrency 64
 *   npm run fuzz -- --seed 7 --from 31337 --cases 1   # replay one case
 *
 * Exit code 1 on any failure; each failure prints the command that replays it.
 */
type CliOptions = Pick<FuzzOptions, "seed" | "from" | "cases" | "concurrency" | "batchCases" | "timeLimitMs">;

const usage = "usage: fuzz [--seed N] [--from I] [--cases N] [--concurrency N] [--batch N] [--time-limit-s S]";

function parseArgs(argv: readonly string[]): CliOptions {
  const o = { seed: 1, from: 0, cases: 1_000_000, concurrency: 32, batchCases: 10_000, timeLimitMs: 24 * 3600_000 };
  const flags: Record<string, (v: number) => void> = {
    "--seed": (v) => { o.seed = v; },
    "--from": (v) => { o.from = v; },
    "--cases": (v) => { o.cases = v; },
    "--concurrency": (v) => { o.concurrency = v; },
    "--batch": (v) => { o.batchCases = v; },
    "--time-limit-s": (v) => { o.timeLimitMs = v * 1000; },
  };
  for (let i = 0; i < argv.length; i += 2) {
    const set = flags[argv[i]!];
    const value = Number(argv[i + 1]?.replace(/_/g, ""));
    if (!set || !Number.isSafeInteger(value) || value < 0) throw new Error(`bad argument ${JSON.stringify(argv[i])} ${JSON.stringify(argv[i + 1])}\n${usage}`);
    set(value);
  }
  if (o.concurrency < 1 || o.batchCases < 1) throw new Error(`--concurrency and --batch must be at least 1\n${usage}`);
  return o;
}

function summary(r: FuzzReport): string {
  const mib = (b: number): string => `${(b / (1024 * 1024)).toFixed(1)} MiB`;
  const lines = [
    `fuzz seed ${r.seed}: ${r.casesRun} cases from ${r.from} in ${(r.elapsedMs / 1000).toFixed(1)} s (${r.casesPerSec}/s), stopped by ${r.stoppedBy}`,
    `  kinds ${JSON.stringify(r.kinds)}`,
    `  error codes ${JSON.stringify(r.codes)}`,
    `  replies ${JSON.stringify(r.replies)}`,
    `  memory: rss ${mib(r.memory.rssStartBytes)} → peak ${mib(r.memory.rssPeakBytes)}, heap in use ${mib(r.memory.heapStartBytes)} → ${mib(r.memory.heapEndBytes)}`
      + `${r.memory.collected ? " (after full collections)" : " (no forced collection available)"}`
      + `, in-flight bytes of TCP servers: ${r.memory.inflightPeakBytes === undefined ? "not reachable (inline actors)" : mib(r.memory.inflightPeakBytes)}`,
    `  ${r.failuresTotal} failure(s)${r.failuresTotal > r.failures.length ? `, the first ${r.failures.length} shown` : ""}`,
  ];
  for (const f of r.failures) {
    lines.push(`  - ${f.kind} case ${f.index}: ${f.note}`, ...f.problems.map((p) => `      ${p}`), `      replay: ${f.replay}`);
  }
  return lines.join("\n");
}

async function main(): Promise<number> {
  process.env["POCKET_LOG"] ??= "error";
  const cli = parseArgs(process.argv.slice(2));
  const t = await startTestCluster(fuzzClusterOptions);
  try {
    const world = await openFuzzWorld(t);
    try {
      const options: FuzzOptions = { ...defaultFuzzOptions, ...cli, progressIntervalMs: 5_000 };
      const report = await runFuzz(world, options);
      process.stdout.write(`${summary(report)}\n`);
      return report.failuresTotal === 0 ? 0 : 1;
    } finally {
      await world.close();
    }
  } finally {
    await t.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`fuzz: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);
