import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { formatBytes } from "../../lib/units";

interface Row { name: string; unit: string; ours: number; reference?: number; ratio?: number; better: "higher" | "lower" }

// The quick benchmark takes minutes of both cores: it runs only when asked (`npm run test:bench`).
const maybe = process.env.POCKET_TEST_BENCH === "1" ? test : test.skip;

/** Every measure a quick run reports, in its order. */
const quickRows = [
  ...["PUT", "GET", "STAT"].flatMap((op) => [`1 KB ${op} p50`, `1 KB ${op} p99`]),
  ...[1, 4].flatMap((n) => ["GET", "PUT"].map((op) => `1 KB ${op} ops/s, 64 in flight × ${n}`)),
  ...[1, 4].flatMap((n) => ["PUT", "GET"].map((op) => `1 MB ${op} × ${n} clients`)),
  "metadata lookups/s, one shard",
  `${formatBytes(256 * 1024 * 1024)} streamed PUT`,
  `${formatBytes(256 * 1024 * 1024)} streamed GET`,
  "streaming client peak RSS growth",
];

// Speed itself is not asserted (shared, noisy machines): that is what the benchmark's own table is for.
// What is: the run completes (its clients check read bytes as they go and fail the run on a wrong one),
// and every measure is there with a figure that is a real measurement.
maybe("npm run bench -- --quick reports every measure, each a positive finite figure (skipped unless POCKET_TEST_BENCH=1: minutes of CPU)", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-bench-"));
  try {
    const r = spawnSync(process.execPath, [path.join(projectRoot(), "dist", "bench", "run.js"), "--quick", "--out", out], { encoding: "utf8", timeout: 240_000 });
    expect(r.stderr).not.toContain("bench: failed");
    expect(r.status).toBe(0);
    const json = JSON.parse(fs.readFileSync(path.join(out, "latest-quick.json"), "utf8")) as { mode: string; rows: Row[] };
    expect(json.mode).toBe("quick");
    expect(json.rows.map((x) => x.name)).toEqual(quickRows);
    for (const row of json.rows) {
      expect(r.stdout).toContain(row.name);
      if (!Number.isFinite(row.ours)) throw new Error(`${row.name}: ${row.ours} is not a figure`);
      // Memory growth may be nothing at all; every rate and latency is a measured, positive number.
      if (row.unit === "B") expect(row.ours).toBeGreaterThanOrEqual(0);
      else if (!(row.ours > 0)) throw new Error(`${row.name}: ${row.ours} ${row.unit} is not a measurement`);
      if (row.reference !== undefined) {
        if (!(Number.isFinite(row.reference) && row.reference > 0)) throw new Error(`${row.name}: reference ${row.reference} is not a measurement`);
        if (!(Number.isFinite(row.ratio) && row.ratio! > 0)) throw new Error(`${row.name}: ratio ${row.ratio} against ${row.reference}`);
      }
    }
    const byName = new Map(json.rows.map((x) => [x.name, x]));
    for (const op of ["PUT", "GET", "STAT"]) {
      expect(byName.get(`1 KB ${op} p50`)!.ours).toBeLessThanOrEqual(byName.get(`1 KB ${op} p99`)!.ours);
      expect(byName.get(`1 KB ${op} p50`)!.reference!).toBeLessThanOrEqual(byName.get(`1 KB ${op} p99`)!.reference!);
    }
    expect(fs.readFileSync(path.join(out, "latest-quick.svg"), "utf8")).toContain("<svg");
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 300_000);
