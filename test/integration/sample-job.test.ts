import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../lib/process";

test("the sample sort job runs end to end through a local cluster and checks its output", () => {
  const main = path.join(projectRoot(), "dist", "examples", "sort", "main.js");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-sort-"));
  const timeline = path.join(dir, "timeline.svg");
  const r = spawnSync(process.execPath, [main, "--size", "8MiB", "--maps", "4", "--reduces", "3", "--workers", "2", "--timeline", timeline], { encoding: "utf8", timeout: 120_000 });
  expect(r.stderr).not.toContain("failed");
  expect(r.status).toBe(0);
  expect(r.stdout).toContain("check       OK: 83886 records, sorted, checksums match");
  expect(r.stdout).toMatch(/map\s+\d+\.\d+ s/);
  // Deregistration frees the 8 MiB of output, and the map outputs too if their frees (queued by the delete) had not reached the nodes yet.
  const freed = /removed 12 map outputs \(8\.00 MiB\); deregistration freed (\d+\.\d+) MiB/.exec(r.stdout);
  expect(freed).not.toBeNull();
  expect(Number(freed![1])).toBeGreaterThanOrEqual(8);
  expect(Number(freed![1])).toBeLessThanOrEqual(16);
  // The cluster scaled for the job and back: launched on its hints, drained after it ended.
  expect(r.stdout).toMatch(/scaling {5}1 node\(s\) at rest → [2-9] at peak → 1 again/);
  expect(r.stdout).toMatch(/node\.launch\s+dram-auto-1: job j-\w+ \(sort\) needs more than/);
  expect(r.stdout).toMatch(/node\.active\s+dram-auto-1 serving [\d.]+ s after the decision/);
  expect(r.stdout).toMatch(/scale\.in\s+dram −dram-auto-1/);
  expect(r.stdout).toMatch(/node\.removed\s+dram-auto-1/);
  const svg = fs.readFileSync(timeline, "utf8");
  expect(svg).toContain("<svg");
  expect(svg).toContain("active nodes");
  const data = JSON.parse(fs.readFileSync(path.join(dir, "timeline.json"), "utf8")) as { samples: Array<{ nodes: unknown[] }> };
  expect(Math.max(...data.samples.map((s) => s.nodes.length))).toBeGreaterThanOrEqual(2);
  fs.rmSync(dir, { recursive: true, force: true });
});
