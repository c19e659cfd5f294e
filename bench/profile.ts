import fs from "node:fs";
import path from "node:path";

/*
 * Reading V8 CPU profiles (`node --cpu-prof`): where a process's samples
 * landed, by function, as shares of the whole. `bench:cpu --profile DIR`
 * writes one profile per process and prints these summaries.
 */

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
}

/** The parts of a `.cpuprofile` read here. */
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface HotFunction {
  /** `name (file:line)`, or V8's own entries such as `(garbage collector)`. */
  readonly where: string;
  /** Time in the function itself (not in what it called), µs. */
  readonly selfUs: number;
  /** Its share of all sampled time. */
  readonly share: number;
}

export interface ProfileSummary {
  readonly sampledUs: number;
  /** Sampled time outside `(idle)` and `(program)`: JavaScript, native calls and the collector. */
  readonly busyUs: number;
  readonly top: readonly HotFunction[];
}

/** Where a call frame is, shortened to the file's last two path parts. */
function frameName(f: CallFrame): string {
  const name = f.functionName === "" ? "(anonymous)" : f.functionName;
  if (f.url === "") return name;
  const file = f.url.replace(/^file:\/\//, "").split("/").slice(-2).join("/");
  return `${name} (${file}:${f.lineNumber + 1})`;
}

/** Self time by function (summed over every call path), the `topN` largest. */
export function summarizeProfile(profile: CpuProfile, topN = 12): ProfileSummary {
  const nameOf = new Map<number, string>();
  for (const n of profile.nodes) nameOf.set(n.id, frameName(n.callFrame));
  const selfUs = new Map<string, number>();
  let sampledUs = 0;
  // timeDeltas[i] is the time before sample i; it is charged to the sample it leads to.
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = Math.max(0, profile.timeDeltas[i] ?? 0);
    const where = nameOf.get(profile.samples[i]!) ?? "(unknown)";
    selfUs.set(where, (selfUs.get(where) ?? 0) + dt);
    sampledUs += dt;
  }
  const idle = (selfUs.get("(idle)") ?? 0) + (selfUs.get("(program)") ?? 0);
  const top = [...selfUs.entries()]
    .filter(([where]) => where !== "(idle)")
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([where, us]) => ({ where, selfUs: us, share: sampledUs > 0 ? us / sampledUs : 0 }));
  return { sampledUs, busyUs: sampledUs - idle, top };
}

/** The pid in a profile's file name (`CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`). */
export function pidOfProfileFile(file: string): number | undefined {
  const m = /^CPU\.\d+\.\d+\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(path.basename(file));
  return m ? Number(m[1]) : undefined;
}

/** The profiles in `dir`, by the pid that wrote each. */
export function profilesIn(dir: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const pid = pidOfProfileFile(f);
    if (pid !== undefined) out.set(pid, path.join(dir, f));
  }
  return out;
}

/** A summary as text: one line per hot function, busiest first. */
export function summaryText(title: string, s: ProfileSummary): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1).padStart(5)}%`;
  const lines = [`${title}: ${(s.sampledUs / 1e6).toFixed(2)} s sampled, ${pct(s.sampledUs > 0 ? s.busyUs / s.sampledUs : 0)} busy`];
  for (const h of s.top) lines.push(`  ${pct(h.share)}  ${h.where}`);
  return lines.join("\n");
}
