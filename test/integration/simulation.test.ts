import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { planFor, quickShape, type Plan } from "../sim/plan";
import { runPlan } from "../sim/run";

/*
 * The seeded simulation of the whole cluster (controller, shards, storage
 * nodes and clients on a simulated network and clock; see test/sim/). The
 * seed sweep runs the built CLI (what `npm run sim` runs; jest's global setup
 * has rebuilt it), as a separate process at full speed.
 */
process.env["POCKET_LOG"] = "silent";

const seeds = Number(process.env["POCKET_SIM_SEEDS"] ?? 2000);

test(`${seeds} seeds of faults keep every invariant`, () => {
  const cli = path.join(projectRoot(), "dist", "test", "sim", "cli.js");
  const r = spawnSync(process.execPath, [cli, "--seeds", String(seeds), "--quick", "--no-minimise"], { encoding: "utf8", timeout: 280_000, env: { ...process.env, POCKET_LOG: "silent" } });
  // A failing seed prints its plan on stdout and names itself on stderr.
  const failed = /seed \d+ FAILS [^\n]*/.exec(r.stderr)?.[0];
  expect({ status: r.status, failed }).toEqual({ status: 0, failed: undefined });
  expect(r.stderr).toMatch(new RegExp(`${seeds}/${seeds} passed`));
}, 300_000);

const scenarios = fs.readdirSync(path.join(projectRoot(), "test", "replay")).filter((f) => /^sim-.*\.json$/.test(f));

test.each(scenarios)("replayed scenario %s keeps every invariant", async (file) => {
  const { plan } = JSON.parse(fs.readFileSync(path.join(projectRoot(), "test", "replay", file), "utf8")) as { plan: Plan };
  const r = await runPlan(plan);
  expect(r.failure).toBeUndefined();
});

test("a byte flipped on a node is caught by the reader, and the run says which invariant", async () => {
  const plan: Plan = {
    seed: 7, shards: 1, minNodes: 1, durationMs: 8_000, settleMs: 5_000,
    steps: [
      { at: 2_500, kind: "register", job: 0, renewUntil: 120_000 },
      { at: 3_000, kind: "put", job: 0, key: 0, size: 6_000, value: 42 },
      { at: 5_000, kind: "corrupt-extent", node: 0 },
      { at: 6_000, kind: "get", job: 0, key: 0 },
    ],
  };
  const r = await runPlan(plan);
  expect(r.ops.ok).toBeGreaterThanOrEqual(1);
  expect(r.failure?.invariant).toBe("integrity");
});

test("the same seed runs the same way twice", async () => {
  const a = await runPlan(planFor(11, quickShape));
  const b = await runPlan(planFor(11, quickShape));
  expect(b).toEqual(a);
  expect(a.events).toBeGreaterThan(100);
});
