import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { formatBytes } from "../../lib/units";

type Figures = Partial<Record<"pocket" | "redis" | "nats-kv", number>>;
interface Measure { name: string; unit: string; median: Figures; vsRedis?: { median: number; perRound: number[] }; reads: number; verified: number }
interface Report { mode: string; commit: string; plan: { rounds: number }; rounds: Array<{ order: string[]; loadAvg1m: number }>; measures: Measure[] }

// The quick benchmark takes minutes of both cores: it runs only when asked (`npm run test:bench`).
const maybe = process.env.POCKET_TEST_BENCH === "1" ? test : test.skip;

/** Every measure a quick run reports, in its order. */
const quickMeasures = [
  ...["PUT", "GET", "STAT"].flatMap((op) => [`1 KB ${op} p50`, `1 KB ${op} p99`]),
  ...[1, 4].flatMap((n) => ["GET", "PUT"].map((op) => `1 KB ${op} ops/s, 64 in flight × ${n}`)),
  "1 MB PUT × 4 clients", "1 MB GET × 4 clients",
  "64 MB PUT × 1 client", "64 MB GET × 1 client",
  "metadata lookups/s, one shard",
  `${formatBytes(256 * 1024 * 1024)} streamed PUT`,
  `${formatBytes(256 * 1024 * 1024)} streamed GET`,
  "streaming client peak RSS growth",
];

/** Fails unless every figure of `m` is a real measurement, and every read it made was verified. */
function expectMeasured(m: Measure, stdout: string): void {
  expect(stdout).toContain(m.name);
  for (const [system, v] of Object.entries(m.median)) {
    // Memory growth may be nothing at all; every rate and latency is a measured, positive number.
    const ok = Number.isFinite(v) && (m.unit === "B" ? v! >= 0 : v! > 0);
    if (!ok) throw new Error(`${m.name}: ${system}'s ${v} ${m.unit} is not a measurement`);
  }
  if (m.median.redis !== undefined && !(Number.isFinite(m.vsRedis?.median) && m.vsRedis!.median > 0)) throw new Error(`${m.name}: no ratio against Redis`);
  if (!(m.reads > 0 && m.verified === m.reads)) throw new Error(`${m.name}: ${m.verified} of ${m.reads} reads verified`);
}

// Speed itself is not asserted (shared, noisy machines): that is what the benchmark's own table is for.
// What is: the run completes (its clients compare every read with what was written and fail the run on a
// wrong one), every measure is there with real figures from every round, and the history gains one line.
maybe("npm run bench -- --quick reports every measure over its rounds, each read verified (skipped unless POCKET_TEST_BENCH=1: minutes of CPU)", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-bench-"));
  try {
    const r = spawnSync(process.execPath, [path.join(projectRoot(), "dist", "bench", "run.js"), "--quick", "--out", out], { encoding: "utf8", timeout: 420_000 });
    expect(r.stderr).not.toContain("bench: failed");
    expect(r.status).toBe(0);
    const json = JSON.parse(fs.readFileSync(path.join(out, "latest-quick.json"), "utf8")) as Report;
    expect(json.mode).toBe("quick");
    expect(json.rounds.map((x) => x.order[0])).toEqual(["pocket", "redis"]);
    for (const x of json.rounds) expect(Number.isFinite(x.loadAvg1m)).toBe(true);
    expect(json.measures.map((x) => x.name)).toEqual(quickMeasures);
    for (const m of json.measures) expectMeasured(m, r.stdout);
    const byName = new Map(json.measures.map((x) => [x.name, x]));
    for (const op of ["PUT", "GET", "STAT"]) {
      for (const system of ["pocket", "redis", "nats-kv"] as const) {
        const p50 = byName.get(`1 KB ${op} p50`)!.median[system];
        if (p50 !== undefined) expect(p50).toBeLessThanOrEqual(byName.get(`1 KB ${op} p99`)!.median[system]!);
      }
    }
    expect(byName.get("1 KB GET p50")!.median["nats-kv"]).toBeGreaterThan(0);
    const history = fs.readFileSync(path.join(out, "history-quick.ndjson"), "utf8").trim().split("\n");
    expect(history).toHaveLength(1);
    const line = JSON.parse(history[0]!) as { mode: string; commit: string; ratios: Record<string, number> };
    expect(line.mode).toBe("quick");
    expect(line.commit).toBe(json.commit);
    expect(Object.keys(line.ratios)).toContain("1 KB GET p50");
    expect(fs.readFileSync(path.join(out, "latest-quick.svg"), "utf8")).toContain("<svg");
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 480_000);
