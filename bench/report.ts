/**
 * The benchmark's results: the table on stdout, bench/results/latest.json
 * (overwritten), one line appended to bench/results/history.ndjson per run,
 * and the ratio chart bench/results/latest.svg.
 */
import fs from "node:fs";
import path from "node:path";
import { ratioChart, type Bar } from "../lib/chart";
import type { Plan } from "./measures";
import { formatFigure, type MeasureSummary, type RoundInfo } from "./rounds";
import { System, systemNames, systems } from "./work";

/** Everything a run reports. */
export interface RunReport {
  readonly mode: "quick" | "full";
  readonly startedAt: string;
  readonly finishedAt: string;
  /** `git rev-parse --short HEAD`, and whether the work tree had changes. */
  readonly commit: string;
  readonly dirty: boolean;
  readonly machine: string;
  readonly cores: number;
  readonly plan: Plan;
  /** What each system was, as run. */
  readonly systems: Readonly<Record<System, string>>;
  readonly rounds: readonly RoundInfo[];
  readonly measures: readonly MeasureSummary[];
  readonly processes: ReadonlyArray<{ readonly role: string; readonly pid: number | undefined }>;
  /** `ps` lines of the processes involved, busiest first: pid, last core, CPU time, RSS, command. */
  readonly ps: readonly string[];
}

const ratioText = (r: number | undefined): string => (r === undefined ? "-" : `${r.toFixed(2)}×`);
const count = (n: number): string => n.toLocaleString("en-US");

function targetText(m: MeasureSummary): string {
  return m.target.kind === "none" ? "" : m.target.text;
}

/** The results table as text, one row per measure. */
export function tableText(measures: readonly MeasureSummary[]): string {
  const table = [
    ["measure", ...systems.map((s) => systemNames[s]), "Pocket ÷ Redis", "Pocket ÷ NATS KV", "target", "met", "reads verified"],
    ...measures.map((m) => [
      m.name,
      ...systems.map((s) => (m.median[s] === undefined ? "-" : formatFigure(m.median[s]!, m.unit))),
      ratioText(m.vsRedis?.median), ratioText(m.vsNatsKv?.median), targetText(m),
      m.met === undefined ? "" : m.met ? "yes" : "no",
      m.reads === 0 ? "-" : `${count(m.verified)}/${count(m.reads)}`,
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/** The run as printed: what ran where, the rounds, the table, and how many targets were met. */
export function reportText(r: RunReport, processesLine: string): string {
  const judged = r.measures.filter((m) => m.met !== undefined);
  const rounds = r.rounds.map((x) => `${x.round}: ${x.order.join(", ")} (load ${x.loadAvg1m.toFixed(2)})`).join("; ");
  return [
    `Pocket on NATS vs Redis and NATS KV — ${r.mode} run, ${r.plan.rounds} rounds, ${r.startedAt}`,
    `${r.machine}; commit ${r.commit}${r.dirty ? " with uncommitted changes" : ""}`,
    `processes: ${processesLine} — all sharing the same ${r.cores} cores`,
    `rounds (order; 1-minute load average before each): ${rounds}`,
    ...systems.map((s) => `${systemNames[s]}: ${r.systems[s]}`),
    "",
    tableText(r.measures),
    "",
    "Figures are each system's median over rounds; ratios the median of the same round's Pocket ÷ reference, > 1 better for Pocket (latency and memory: reference ÷ Pocket).",
    "Redis's STAT is STRLEN; NATS KV runs the 1 KB measures only.",
    `Targets met: ${judged.filter((m) => m.met).length} of ${judged.length}. Reads: every one compared with what was written (a put's last write read back).`,
    "",
  ].join("\n");
}

/** One line of history.ndjson: the run and its ratios, per measure. */
function historyLine(r: RunReport): string {
  const pick = (f: (m: MeasureSummary) => number | undefined): Record<string, number> =>
    Object.fromEntries(r.measures.flatMap((m) => { const v = f(m); return v === undefined ? [] : [[m.name, v]]; }));
  return JSON.stringify({
    date: r.startedAt, commit: r.commit, dirty: r.dirty, mode: r.mode, rounds: r.plan.rounds,
    loadAvg1m: r.rounds.map((x) => x.loadAvg1m),
    ratios: pick((m) => m.vsRedis?.median),
    ratiosVsNatsKv: pick((m) => m.vsNatsKv?.median),
    figures: pick((m) => m.median[System.Pocket]),
  });
}

/** The chart's bars: every measure held to a target or compared with Redis, then the comparisons with NATS KV. */
function bars(measures: readonly MeasureSummary[]): Bar[] {
  const held = measures.flatMap((m): Bar[] => {
    const ratio = m.targetRatio ?? m.vsRedis?.median;
    if (ratio === undefined) return [];
    const t = m.target;
    const target = t.kind === "ratio" ? t.min : t.kind === "none" ? 0 : 1;
    return [{ label: m.name, ratio, target, note: t.kind === "atLeast" || t.kind === "below" ? `vs target ${t.text}` : "vs Redis" }];
  });
  const kv = measures.flatMap((m): Bar[] => (m.vsNatsKv ? [{ label: `${m.name} (NATS KV)`, ratio: m.vsNatsKv.median, target: 0, note: "vs NATS KV" }] : []));
  return [...held, ...kv];
}

/**
 * Writes latest.json and latest.svg (overwritten) and appends to history.ndjson, under `outDir`; returns the paths.
 * A quick run writes latest-quick.* and history-quick.ndjson instead (not kept in git): the README shows full runs.
 */
export function writeResults(outDir: string, r: RunReport): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  const suffix = r.mode === "full" ? "" : `-${r.mode}`;
  const json = path.join(outDir, `latest${suffix}.json`);
  const svg = path.join(outDir, `latest${suffix}.svg`);
  const history = path.join(outDir, `history${suffix}.ndjson`);
  fs.writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  fs.appendFileSync(history, `${historyLine(r)}\n`);
  fs.writeFileSync(svg, ratioChart(
    `Pocket on NATS ÷ Redis and NATS KV (${r.mode} run, ${r.plan.rounds} rounds)`,
    `medians of per-round ratios; ${r.machine}; commit ${r.commit}; ${r.startedAt}`,
    bars(r.measures)));
  return [json, svg, history];
}
