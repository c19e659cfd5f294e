import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { planFor, type Plan } from "../sim/plan";
import { runPlan } from "../sim/run";

/*
 * The seeded simulation of the whole cluster (controller, shards, storage
 * nodes and clients on a simulated network and clock; see test/sim/). Here
 * a quick run of short plans; `npm run sim -- --seeds N` runs as many as asked.
 */
process.env["POCKET_LOG"] = "silent";

const seeds = Number(process.env["POCKET_SIM_SEEDS"] ?? 300);
const quick = { durationMs: 15_000, settleMs: 12_000 };

test(`${seeds} seeds of faults keep every invariant`, async () => {
  const failures: string[] = [];
  for (let seed = 0; seed < seeds && failures.length === 0; seed++) {
    const r = await runPlan(planFor(seed, quick));
    if (r.failure) failures.push(`seed ${seed}: ${r.failure.invariant} at ${r.failure.atMs} ms: ${r.failure.message} (npm run sim -- --seeds 1 --from ${seed})`);
  }
  expect(failures).toEqual([]);
}, 240_000);

const scenarios = fs.readdirSync(path.join(projectRoot(), "test", "replay")).filter((f) => /^sim-.*\.json$/.test(f));

test.each(scenarios)("replayed scenario %s keeps every invariant", async (file) => {
  const { plan } = JSON.parse(fs.readFileSync(path.join(projectRoot(), "test", "replay", file), "utf8")) as { plan: Plan };
  const r = await runPlan(plan);
  expect(r.failure).toBeUndefined();
});

test("a byte flipped on a node is caught by the reader, and the run says which invariant", async () => {
  const plan: Plan = {
    seed: 7, shards: 1, minNodes: 1, durationMs: 12_000, settleMs: 5_000,
    steps: [
      { at: 5_000, kind: "register", job: 0, renewUntil: 120_000 },
      { at: 6_000, kind: "put", job: 0, key: 0, size: 6_000, value: 42 },
      { at: 8_000, kind: "corrupt-extent", node: 0 },
      { at: 9_000, kind: "get", job: 0, key: 0 },
    ],
  };
  const r = await runPlan(plan);
  expect(r.failure?.invariant).toBe("integrity");
});

test("the same seed runs the same way twice", async () => {
  const a = await runPlan(planFor(11, quick));
  const b = await runPlan(planFor(11, quick));
  expect(b).toEqual(a);
  expect(a.events).toBeGreaterThan(100);
});
