/**
 * Rounds: every step on every system it compares, the systems in a rotating
 * order (round r starts with the r-th), so that no system always runs first
 * or last while the machine's load drifts. The summary takes, per measure,
 * the median over rounds of each round's ratio Pocket ÷ reference, and each
 * system's median figure.
 */
import os from "node:os";
import type { ClientPool } from "./clients";
import type { Measure, Step, Target, Unit } from "./measures";
import { System, systems, type ReadCounts, type WorkResult } from "./work";

export interface RoundInfo {
  readonly round: number;
  readonly order: readonly System[];
  /** The 1-minute load average as the round began. */
  readonly loadAvg1m: number;
  readonly startedAt: string;
}

/** What one measure saw: per system, its figure in each round (in round order), and its reads summed over rounds. */
export interface Observed {
  readonly figures: Partial<Record<System, number[]>>;
  readonly reads: Partial<Record<System, ReadCounts>>;
}

export interface RoundsResult {
  readonly rounds: readonly RoundInfo[];
  readonly observed: ReadonlyMap<string, Observed>;
}

/** A read that returned wrong bytes: the run fails with it. */
export class WrongReadError extends Error {
  override readonly name = "WrongReadError";
}

/** The systems in round `r`'s order. */
export function orderOf(round: number): System[] {
  return systems.map((_, i) => systems[(i + round) % systems.length]!);
}

/** The reads of several results together. */
function addCounts(a: ReadCounts, b: ReadCounts): ReadCounts {
  const firstWrong = a.firstWrong ?? b.firstWrong;
  return { reads: a.reads + b.reads, verified: a.verified + b.verified, wrong: a.wrong + b.wrong, ...(firstWrong ? { firstWrong } : {}) };
}

const noReads: ReadCounts = { reads: 0, verified: 0, wrong: 0 };

/** Runs a step on one system; fails with WrongReadError if any read returned wrong bytes. */
async function runStep(pool: ClientPool, step: Step, system: System): Promise<{ figures: Readonly<Record<string, number>>; counts: ReadCounts }> {
  let results: WorkResult[];
  if (step.fresh) {
    await pool.renew(pool.size - 1);
    results = [await pool.run(pool.size - 1, step.work(system))];
  } else {
    results = await pool.onClients(step.clients, step.work(system));
  }
  const counts = results.reduce(addCounts, noReads);
  if (counts.wrong > 0) {
    throw new WrongReadError(`${step.title} on ${system}: ${counts.wrong} of ${counts.reads} reads returned wrong bytes (first: ${counts.firstWrong})`);
  }
  return { figures: step.figures(results), counts };
}

/** Notes one step's figures and reads under each of its measures. */
function record(observed: Map<string, Observed>, step: Step, system: System, out: Awaited<ReturnType<typeof runStep>>): void {
  for (const m of step.measures) {
    let o = observed.get(m.name);
    if (!o) observed.set(m.name, o = { figures: {}, reads: {} });
    (o.figures[system] ??= []).push(out.figures[m.figure]!);
    o.reads[system] = addCounts(o.reads[system] ?? noReads, out.counts);
  }
}

/** Runs `rounds` rounds of every step; `progress` gets a line per step and system. */
export async function runRounds(pool: ClientPool, steps: readonly Step[], rounds: number, progress: (line: string) => void): Promise<RoundsResult> {
  const infos: RoundInfo[] = [];
  const observed = new Map<string, Observed>();
  for (let r = 0; r < rounds; r++) {
    const order = orderOf(r);
    const info = { round: r + 1, order, loadAvg1m: os.loadavg()[0]!, startedAt: new Date().toISOString() };
    infos.push(info);
    progress(`round ${r + 1}/${rounds}: order ${order.join(", ")}; 1-minute load average ${info.loadAvg1m.toFixed(2)}`);
    for (const step of steps) {
      for (const system of order.filter((s) => step.systems.includes(s))) {
        const out = await runStep(pool, step, system);
        record(observed, step, system, out);
        const figures = step.measures.map((m) => `${m.name.replace(/^1 KB /, "")} ${formatFigure(out.figures[m.figure]!, m.unit)}`).join(", ");
        progress(`round ${r + 1}/${rounds} ${system.padEnd(7)} ${figures} (${out.counts.verified}/${out.counts.reads} reads verified)`);
      }
    }
  }
  return { rounds: infos, observed };
}

/** A figure for people. */
export function formatFigure(v: number, unit: Unit): string {
  const MiB = 1024 * 1024;
  if (unit === "B/s") return v >= 1024 * MiB ? `${(v / 1024 / MiB).toFixed(2)} GiB/s` : `${(v / MiB).toFixed(0)} MiB/s`;
  if (unit === "B") return `${(v / MiB).toFixed(1)} MiB`;
  if (unit === "µs") return `${v.toFixed(0)} µs`;
  return v >= 10_000 ? `${(v / 1000).toFixed(1)}K ops/s` : `${v.toFixed(0)} ops/s`;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Lower-is-better figures have a floor (1 µs, 1 MiB): none at all is not an infinite ratio. */
function floorOf(unit: Unit): number {
  return unit === "B" ? 1024 * 1024 : 1;
}

/** Pocket's figure against a reference's, oriented so that > 1 is better for Pocket. */
export function oriented(m: Pick<Measure, "better" | "unit">, ours: number, reference: number): number {
  return m.better === "higher" ? ours / reference : reference / Math.max(ours, floorOf(m.unit));
}

/** The median over rounds of the same round's ratio Pocket ÷ `reference`, and each round's. */
export interface RatioSummary { readonly median: number; readonly perRound: readonly number[] }

export interface MeasureSummary {
  readonly name: string;
  readonly unit: Unit;
  readonly better: "higher" | "lower";
  readonly target: Target;
  /** Each system's median figure over rounds. */
  readonly median: Partial<Record<System, number>>;
  readonly perRound: Partial<Record<System, readonly number[]>>;
  readonly vsRedis?: RatioSummary;
  readonly vsNatsKv?: RatioSummary;
  /** What the target is judged on: the ratio against Redis, or Pocket's figure against an absolute bound (> 1 is better). */
  readonly targetRatio?: number;
  readonly met?: boolean;
  readonly reads: number;
  readonly verified: number;
}

function ratioAgainst(m: Measure, o: Observed, reference: System): RatioSummary | undefined {
  const ours = o.figures[System.Pocket];
  const ref = o.figures[reference];
  if (!ours || !ref || ref.length !== ours.length) return undefined;
  const perRound = ours.map((x, i) => oriented(m, x, ref[i]!));
  return { median: median(perRound), perRound };
}

/** Where a measure stands against its target: the ratio it is judged on, and whether it met it. */
function judge(m: Measure, pocket: number | undefined, vsRedis: RatioSummary | undefined): { targetRatio?: number; met?: boolean } {
  const t = m.target;
  if (t.kind === "ratio" && vsRedis) return { targetRatio: vsRedis.median, met: vsRedis.median >= t.min };
  if (pocket === undefined) return {};
  if (t.kind === "atLeast") return { targetRatio: pocket / t.bound, met: pocket >= t.bound };
  if (t.kind === "below") return { targetRatio: t.bound / Math.max(pocket, floorOf(m.unit)), met: pocket < t.bound };
  return {};
}

/** Every measure of `steps`, summarised over the rounds observed. */
export function summarise(steps: readonly Step[], observed: ReadonlyMap<string, Observed>): MeasureSummary[] {
  return steps.flatMap((step) => step.measures.map((m): MeasureSummary => {
    const o = observed.get(m.name) ?? { figures: {}, reads: {} };
    const med: Partial<Record<System, number>> = {};
    for (const s of systems) if (o.figures[s]?.length) med[s] = median(o.figures[s]!);
    const vsRedis = ratioAgainst(m, o, System.Redis);
    const vsNatsKv = ratioAgainst(m, o, System.NatsKv);
    const counts = Object.values(o.reads).reduce(addCounts, noReads);
    return {
      name: m.name, unit: m.unit, better: m.better, target: m.target, median: med, perRound: o.figures,
      ...(vsRedis ? { vsRedis } : {}), ...(vsNatsKv ? { vsNatsKv } : {}),
      ...judge(m, med[System.Pocket], vsRedis), reads: counts.reads, verified: counts.verified,
    };
  }));
}
