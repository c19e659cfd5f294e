import type { Plan } from "./plan";
import { runPlan, type Failure } from "./run";

/**
 * Shrinks a failing plan (delta debugging over its steps): drops chunks of
 * steps, halving the chunk size, keeping each removal after which the run
 * still fails the same invariant. Bounded by `runsMax` runs.
 */
export async function minimise(plan: Plan, failure: Failure, runsMax = 300, onProgress?: (steps: number, runs: number) => void): Promise<{ plan: Plan; failure: Failure }> {
  let best = plan;
  let bestFailure = failure;
  let runs = 0;
  let chunk = Math.max(1, Math.floor(best.steps.length / 2));
  while (chunk >= 1 && runs < runsMax) {
    let removed = false;
    for (let i = 0; i < best.steps.length && runs < runsMax; ) {
      const candidate: Plan = { ...best, steps: [...best.steps.slice(0, i), ...best.steps.slice(i + chunk)] };
      runs++;
      const r = await runPlan(candidate);
      if (r.failure && r.failure.invariant === failure.invariant) {
        best = candidate;
        bestFailure = r.failure;
        removed = true;
        onProgress?.(best.steps.length, runs);
      } else {
        i += chunk;
      }
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return { plan: best, failure: bestFailure };
}
