import type { Counter } from "prom-client";
import { Tier } from "../../schemas/operations";
import type { ActorMetrics } from "../runtime/metrics";
import type { ControllerCore } from "./core";
import type { Effects } from "./effects";
import type { Decision } from "./inputs";
import { JobState, NodeState } from "./machines";

/** What a controller's metrics read, on each scrape. */
export interface ControllerView {
  readonly core: ControllerCore;
  readonly effects: Effects;
  /** Shards by state ("active" or "failed"), from their heartbeats. */
  shardStates(): Iterable<string>;
}

/** How an effect of a decision ended. */
export const EffectOutcome = { Done: "done", Failed: "failed", Dropped: "dropped" } as const;
export type EffectOutcome = (typeof EffectOutcome)[keyof typeof EffectOutcome];

/** The counters the controller bumps as it decides and carries out (labels: decision kinds and outcomes, fixed sets). */
export interface ControllerCounters {
  decided(d: Decision): void;
  carriedOut(kind: Decision["kind"], outcome: EffectOutcome): void;
}

/** Registers a controller's metrics: decisions and effects, nodes by tier and state, jobs and shards by state, utilisation per tier. */
export function registerControllerMetrics(m: ActorMetrics, v: ControllerView): ControllerCounters {
  const { core } = v;
  const decisions: Counter<"kind"> = m.counter("pocket_controller_decisions_total", "Decisions taken, by kind (node.launch, node.draining, job.weights, scale.out, ...).", ["kind"]);
  const effects: Counter<"kind" | "outcome"> = m.counter(
    "pocket_controller_effects_total", "Decisions carried out (launches, weight pushes, reclaims, moves), by kind and outcome (done, failed, dropped: queue full).", ["kind", "outcome"],
  );
  m.gauges("pocket_controller_nodes", "Storage nodes, by tier and lifecycle state (every state of every configured tier, 0 included).", ["tier", "state"], () => {
    const counts = new Map<string, { tier: string; state: string; n: number }>();
    for (const tier of tiersIn(core)) for (const state of Object.values(NodeState)) counts.set(`${tier} ${state}`, { tier, state, n: 0 });
    for (const n of core.nodes()) {
      const state = core.nodeState(n);
      const key = `${n.tier} ${state}`;
      const c = counts.get(key) ?? { tier: n.tier, state, n: 0 };
      c.n++;
      counts.set(key, c);
    }
    return [...counts.values()].map((c) => [{ tier: c.tier, state: c.state }, c.n] as const);
  });
  m.gauges("pocket_controller_jobs", "Jobs the controller keeps, by lifecycle state (registered and active jobs are live).", ["state"], () => {
    const counts = new Map<string, number>(Object.values(JobState).map((s) => [s, 0]));
    for (const j of core.jobs()) counts.set(core.jobState(j), (counts.get(core.jobState(j)) ?? 0) + 1);
    return [...counts].map(([state, n]) => [{ state }, n] as const);
  });
  m.gauges("pocket_controller_shards", "Metadata shards heard from, by state (failed: heartbeats missed).", ["state"], () => {
    const counts = new Map<string, number>([["active", 0], ["failed", 0]]);
    for (const s of v.shardStates()) counts.set(s, (counts.get(s) ?? 0) + 1);
    return [...counts].map(([state, n]) => [{ state }, n] as const);
  });
  m.gauges("pocket_controller_tier_utilisation", "Use of each tier's active nodes, as a fraction: cpu, network, capacity, reserved_throughput, reserved_capacity.", ["tier", "measure"], () =>
    tiersIn(core).flatMap((tier) => {
      const u = core.measurements(tier);
      return [["cpu", u.cpu], ["network", u.network], ["capacity", u.capacity], ["reserved_throughput", u.reservedThroughput], ["reserved_capacity", u.reservedCapacity]]
        .map(([measure, value]) => [{ tier, measure }, value as number] as const);
    }));
  m.gauge("pocket_controller_effects_pending", "Decisions queued or being carried out.", () => v.effects.pending);
  m.gauge("pocket_controller_effects_unfinished", "Drops and reclaims of ended jobs still to retry.", () => v.effects.unfinished);
  return {
    decided: (d) => decisions.inc({ kind: d.kind }),
    carriedOut: (kind, outcome) => effects.inc({ kind, outcome }),
  };
}

/** The tiers the policy has node types for (in a fixed order). */
function tiersIn(core: ControllerCore): Tier[] {
  const configured = new Set(core.policy.nodeTypes.map((t) => t.tier));
  return Object.values(Tier).filter((t) => configured.has(t));
}
