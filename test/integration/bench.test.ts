import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../lib/process";

interface Row { name: string; ours: number; reference?: number; ratio?: number }

// The benchmark's quick mode runs end to end beside a real redis-server and reports every figure.
// Speed itself is not asserted here (shared, noisy machines): that is what the benchmark's own table is for.
test("npm run bench -- --quick produces its table, JSON and chart", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-bench-"));
  try {
    const r = spawnSync(process.execPath, [path.join(projectRoot(), "dist", "bench", "run.js"), "--quick", "--out", out], { encoding: "utf8", timeout: 240_000 });
    expect(r.stderr).not.toContain("bench: failed");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("Pocket on NATS vs Redis");
    const json = JSON.parse(fs.readFileSync(path.join(out, "latest-quick.json"), "utf8")) as { rows: Row[] };
    const names = json.rows.map((x) => x.name);
    for (const want of ["1 KB GET p50", "1 KB PUT ops/s, 64 in flight × 4", "1 MB GET × 4 clients", "metadata lookups/s, one shard", "streaming client peak RSS growth"]) {
      expect(names).toContain(want);
    }
    for (const row of json.rows) {
      expect(Number.isFinite(row.ours)).toBe(true);
      if (row.reference !== undefined && row.name !== "streaming client peak RSS growth") expect(row.ours).toBeGreaterThan(0);
    }
    expect(fs.readFileSync(path.join(out, "latest-quick.svg"), "utf8")).toContain("<svg");
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 300_000);
