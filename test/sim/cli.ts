#!/usr/bin/env node
/**
 * The seeded simulation of the whole cluster:
 *   npm run sim -- --seeds 10000 [--from 0] [--duration 30000 | --quick]
 *   npm run sim -- --replay test/replay/sim-<name>.json
 * A failing seed prints its trace (the plan: every client operation and fault
 * with its time), minimised, and saves it with `--save <name>` under
 * test/replay/ as a scenario the test suite replays.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { projectRoot } from "../../lib/process";
import { minimise } from "./minimise";
import { planFor, quickShape, type Plan } from "./plan";
import { runPlan } from "./run";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: "string", default: "100" }, from: { type: "string", default: "0" }, duration: { type: "string" },
      replay: { type: "string" }, save: { type: "string" }, quick: { type: "boolean", default: false }, "no-minimise": { type: "boolean", default: false }, verbose: { type: "boolean", default: false },
    },
  });
  if (!values.verbose) process.env["POCKET_LOG"] = "silent";
  if (values.replay) return replay(values.replay);
  const from = Number(values.from), count = Number(values.seeds);
  // --quick: the short plans `npm test` runs (10 s of steps, 6 s to settle before each final check).
  const shape = values.quick ? quickShape : { ...(values.duration ? { durationMs: Number(values.duration) } : {}) };
  const started = Date.now();
  let events = 0;
  for (let seed = from; seed < from + count; seed++) {
    const plan = planFor(seed, shape);
    const r = await runPlan(plan);
    events += r.events;
    if (r.failure) return report(plan, r.failure, values.save, !values["no-minimise"]);
    if ((seed - from + 1) % 100 === 0 || seed === from + count - 1) {
      const s = (Date.now() - started) / 1000;
      process.stderr.write(`\rseeds ${from}..${seed}: ${seed - from + 1}/${count} passed, ${events} events, ${s.toFixed(1)} s (${((seed - from + 1) / s).toFixed(0)} seeds/s)   `);
    }
  }
  process.stderr.write("\n");
}

async function replay(file: string): Promise<void> {
  const scenario = JSON.parse(fs.readFileSync(file, "utf8")) as { plan: Plan };
  const r = await runPlan(scenario.plan);
  if (r.failure) {
    process.stdout.write(`${JSON.stringify(r.failure)}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`passes: ${r.events} events, ${r.ops.ok} operations ok, ${r.ops.failed} failed (typed)\n`);
  }
}

async function report(plan: Plan, failure: NonNullable<Awaited<ReturnType<typeof runPlan>>["failure"]>, save: string | undefined, shrink: boolean): Promise<void> {
  process.stderr.write(`\nseed ${plan.seed} FAILS ${failure.invariant} at ${failure.atMs} ms: ${failure.message}\n`);
  let out = { plan, failure };
  if (shrink) {
    out = await minimise(plan, failure, 300, (steps, runs) => process.stderr.write(`\rminimising: ${steps} steps left after ${runs} runs   `));
    process.stderr.write("\n");
  }
  const text = JSON.stringify({ found: out.failure, plan: out.plan }, null, 1);
  process.stdout.write(`${text}\n`);
  if (save) {
    const file = path.join(projectRoot(), "test", "replay", `sim-${save}.json`);
    fs.writeFileSync(file, `${text}\n`);
    process.stderr.write(`saved as ${path.relative(projectRoot(), file)}\n`);
  }
  process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(2);
});
