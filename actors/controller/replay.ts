import fs from "node:fs";
import { ControllerCore } from "./core";
import type { ControllerInput, Decision } from "./inputs";
import { policyWith, type ScalingPolicy } from "./policy";
import { readTrace } from "./trace";

export interface ReplayResult {
  readonly inputs: number;
  readonly decisions: Decision[];
}

/**
 * Re-runs the controller's logic over recorded inputs, on the inputs' own
 * clock. The policy is the one the trace's first `start` input carries
 * (what the live controller ran with), with `overrides` on top.
 */
export async function replayTrace(file: string, overrides: Partial<ScalingPolicy> = {}): Promise<ReplayResult> {
  const inputs: ControllerInput[] = [];
  for await (const input of readTrace(file)) inputs.push(input);
  return replayInputs(inputs, overrides);
}

export function replayInputs(inputs: readonly ControllerInput[], overrides: Partial<ScalingPolicy> = {}): ReplayResult {
  let core: ControllerCore | undefined;
  const decisions: Decision[] = [];
  for (const input of inputs) {
    if (!core) {
      const recorded = input.kind === "start" ? input.policy : undefined;
      core = new ControllerCore(policyWith({ ...recorded, ...overrides }));
      if (input.kind !== "start") decisions.push(...core.apply({ kind: "start", atMs: input.atMs }));
    }
    decisions.push(...core.apply(input));
  }
  return { inputs: inputs.length, decisions };
}

/** One decision as a stable JSON line (keys in a fixed order), for expected files and diffs. */
export function decisionLine(d: Decision): string {
  return JSON.stringify(sortKeys(d));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort((a, b) => (a === "atMs" ? -1 : b === "atMs" ? 1 : a === "kind" ? -1 : b === "kind" ? 1 : a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(keys.map((k) => [k, sortKeys(o[k])]));
  }
  return v;
}

/** Reads an expected-decisions file (NDJSON; blank lines and `#` comments skipped), as normalised lines. */
export function readExpected(file: string): string[] {
  return fs.readFileSync(file, "utf8").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))
    .map((l, i) => {
      try {
        return JSON.stringify(sortKeys(JSON.parse(l)));
      } catch (e) {
        throw new Error(`${file}: decision ${i + 1} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
}

export interface DiffLine {
  readonly op: "-" | "+";
  /** 1-based position in the expected (for "-") or actual (for "+") list. */
  readonly at: number;
  readonly line: string;
}

/** Lines only in `expected` (-) or only in `actual` (+), by longest common subsequence. */
export function diffLines(expected: readonly string[], actual: readonly string[], cellsMax = 25_000_000): DiffLine[] {
  const n = expected.length, m = actual.length;
  if (n * m > cellsMax) {
    // Too large for a table: position by position.
    const out: DiffLine[] = [];
    for (let i = 0; i < Math.max(n, m); i++) {
      if (expected[i] === actual[i]) continue;
      if (i < n) out.push({ op: "-", at: i + 1, line: expected[i]! });
      if (i < m) out.push({ op: "+", at: i + 1, line: actual[i]! });
    }
    return out;
  }
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = expected[i] === actual[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: DiffLine[] = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && expected[i] === actual[j]) { i++; j++; continue; }
    if (j < m && (i >= n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) { out.push({ op: "+", at: j + 1, line: actual[j]! }); j++; }
    else { out.push({ op: "-", at: i + 1, line: expected[i]! }); i++; }
  }
  return out;
}

/** A decision for people: time from the first input, kind, and what matters about it. */
export function describeDecision(d: Decision, originMs: number): string {
  const t = `${((d.atMs - originMs) / 1000).toFixed(1).padStart(7)}s`;
  const m = "measurements" in d ? d.measurements : undefined;
  const util = m ? ` [cpu ${pct(m.cpu)} net ${pct(m.network)} cap ${pct(m.capacity)} reserved ${pct(m.reservedCapacity)}/${pct(m.reservedThroughput)} on ${m.nodes} nodes]` : "";
  switch (d.kind) {
    case "node.launch": return `${t}  ${d.kind.padEnd(16)} ${d.nodeId} (${d.tier}): ${d.reason}`;
    case "node.active": return `${t}  ${d.kind.padEnd(16)} ${d.nodeId} (${d.tier}${d.launched ? ", launched" : ""})`;
    case "node.draining": case "node.removed": return `${t}  ${d.kind.padEnd(16)} ${d.nodeId}: ${d.reason}`;
    case "node.failed": return `${t}  ${d.kind.padEnd(16)} ${d.nodeId}: not heard since ${((d.lastSeenMs - originMs) / 1000).toFixed(1)}s`;
    case "node.migrate": return `${t}  ${d.kind.padEnd(16)} ${d.nodeId}: ${d.usedBytes} bytes to move`;
    case "job.registered": return `${t}  ${d.kind.padEnd(16)} ${d.jobId} (${d.name}) on ${d.tier}, ${d.demand.bound}-bound, weights ${weights(d.weights)}`;
    case "job.weights": return `${t}  ${d.kind.padEnd(16)} ${d.jobId} ${weights(d.weights)} (${d.reason})`;
    case "job.grown": return `${t}  ${d.kind.padEnd(16)} ${d.jobId}: ${d.reason}`;
    case "scale.out": return `${t}  ${d.kind.padEnd(16)} ${d.tier} +${d.launch}: ${d.reason}${util}`;
    case "scale.in": return `${t}  ${d.kind.padEnd(16)} ${d.tier} -${d.nodeId}: ${d.reason}${util}`;
    default: {
      // Other events (the shell's own, e.g. node.migrated): their fields as recorded.
      const { atMs: _a, kind: _k, ...rest } = d as { atMs: number; kind: string } & Record<string, unknown>;
      return `${t}  ${d.kind.padEnd(16)} ${"jobId" in d && Object.keys(rest).length === 1 ? String(d.jobId) : JSON.stringify(rest)}`;
    }
  }
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

function weights(w: ReadonlyArray<{ nodeId: string; weight: number }>): string {
  return w.length === 0 ? "{}" : `{${w.map((x) => `${x.nodeId}: ${x.weight.toFixed(2)}`).join(", ")}}`;
}
