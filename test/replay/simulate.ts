/**
 * Builds the checked-in scaling traces: a small simulated cluster (nodes that
 * heartbeat, jobs that store bytes and draw throughput) runs in closed loop
 * with the controller core — launched nodes start heartbeating two seconds
 * after the decision, removed ones stop — and every input is recorded. The
 * trace (`<name>.trace.ndjson`) and the decisions it produced
 * (`<name>.expected.ndjson`) are written next to this file.
 *
 *   npm run build && node dist/test/replay/simulate.js [DIR]
 *
 * Regenerate only when a change to the controller's logic is meant to change
 * its decisions, and read the diff of the expected files.
 */
import fs from "node:fs";
import path from "node:path";
import type { JobHints, Weight } from "../../schemas/operations";
import { ControllerCore } from "../../actors/controller/core";
import type { ControllerInput, Decision } from "../../actors/controller/inputs";
import { policyWith, type ScalingPolicy } from "../../actors/controller/policy";
import { decisionLine } from "../../actors/controller/replay";

const GB = 1e9;

/** The policy every trace runs with (recorded in its start input). */
export const tracePolicy: ScalingPolicy = policyWith({
  nodeTypes: [
    { tier: "dram", capacityBytes: 10 * GB, throughputBps: 1 * GB, cpuCores: 1, minNodes: 2, maxNodes: 6, pricePerHour: 0.3 },
    { tier: "nvme", capacityBytes: 100 * GB, throughputBps: 1 * GB, cpuCores: 1, minNodes: 0, maxNodes: 0, pricePerHour: 0.16 },
  ],
  windowMs: 3_000,
  sustainMs: 3_000,
  cooldownMs: 10_000,
  startupGraceMs: 2_000,
  heartbeatIntervalMs: 1_000,
  heartbeatsMissedMax: 3,
  launchTimeoutMs: 20_000,
  drainDeadlineMs: 30_000,
  leaseMs: 10_000,
});

interface SimJob {
  readonly jobId: string;
  readonly name: string;
  readonly hints: JobHints;
  readonly startS: number;
  /** When the driver deregisters; undefined: never (it may crash instead). */
  readonly endS?: number;
  /** The driver renews its lease until then (a crash), else until it ends. */
  readonly renewUntilS?: number;
  readonly leaseMs?: number;
  /** Bytes stored and throughput drawn at `s` seconds after its start. */
  readonly bytes: (s: number) => number;
  readonly bps: (s: number) => number;
}

interface Scenario {
  readonly name: string;
  readonly seconds: number;
  readonly initialNodes: number;
  readonly jobs: readonly SimJob[];
  /** Node ids that stop heartbeating at the given second. */
  readonly crashes?: ReadonlyArray<{ nodeId: string; atS: number }>;
}

interface SimNode {
  readonly nodeId: string;
  heartbeating: boolean;
  startsAtMs: number;
}

export function simulate(s: Scenario): { inputs: ControllerInput[]; decisions: Decision[] } {
  const core = new ControllerCore(tracePolicy);
  const inputs: ControllerInput[] = [];
  const decisions: Decision[] = [];
  const nodes = new Map<string, SimNode>();
  const weights = new Map<string, Weight[]>();
  const live = new Set<string>();
  const requests = new Map<string, number>();
  const origin = 1_700_000_000_000;
  const apply = (input: ControllerInput): void => {
    inputs.push(input);
    for (const d of core.apply(input)) {
      decisions.push(d);
      if (d.kind === "node.launch") nodes.set(d.nodeId, { nodeId: d.nodeId, heartbeating: false, startsAtMs: d.atMs + 2_000 });
      if (d.kind === "node.removed") { const n = nodes.get(d.nodeId); if (n) n.heartbeating = false; }
      if (d.kind === "job.registered" || d.kind === "job.weights") weights.set(d.jobId, d.weights);
      if (d.kind === "job.expired" || d.kind === "job.deregistered") live.delete(d.jobId);
    }
  };
  for (let i = 0; i < s.initialNodes; i++) nodes.set(`dram-${i}`, { nodeId: `dram-${i}`, heartbeating: true, startsAtMs: origin });
  apply({ kind: "start", atMs: origin, policy: tracePolicy });
  for (let sec = 0; sec <= s.seconds; sec++) {
    const base = origin + sec * 1_000;
    // Drivers: register, renew, deregister.
    for (const j of s.jobs) {
      if (j.startS === sec) {
        apply({ kind: "job.register", atMs: base + 10, jobId: j.jobId, name: j.name, shardId: "s0", hints: j.hints, ...(j.leaseMs ? { leaseMs: j.leaseMs } : {}) });
        live.add(j.jobId);
      }
      const renewUntil = j.renewUntilS ?? j.endS ?? s.seconds;
      if (live.has(j.jobId) && sec > j.startS && sec <= renewUntil && (sec - j.startS) % 3 === 0) apply({ kind: "job.renew", atMs: base + 20, jobId: j.jobId });
      if (j.endS === sec && live.has(j.jobId)) apply({ kind: "job.deregister", atMs: base + 30, jobId: j.jobId });
    }
    for (const c of s.crashes ?? []) if (c.atS === sec) nodes.get(c.nodeId)!.heartbeating = false;
    // Where each live job's bytes and throughput land, by its weight map.
    const used = new Map<string, number>();
    const net = new Map<string, number>();
    for (const j of s.jobs) {
      if (!live.has(j.jobId)) continue;
      for (const w of weights.get(j.jobId) ?? []) {
        used.set(w.nodeId, (used.get(w.nodeId) ?? 0) + j.bytes(sec - j.startS) * w.weight);
        net.set(w.nodeId, (net.get(w.nodeId) ?? 0) + j.bps(sec - j.startS) * w.weight);
      }
    }
    let k = 0;
    for (const n of [...nodes.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1))) {
      if (!n.heartbeating && n.startsAtMs <= base && n.startsAtMs > origin) { n.heartbeating = true; n.startsAtMs = origin; }
      if (!n.heartbeating) continue;
      const bps = net.get(n.nodeId) ?? 0;
      apply({
        kind: "node.heartbeat", atMs: base + 100 + 10 * k++,
        hb: {
          nodeId: n.nodeId, tier: "dram", addr: `10.0.0.${k}:7400`, capacityBytes: 10 * GB,
          usedBytes: Math.round(used.get(n.nodeId) ?? 0), extents: Math.ceil((used.get(n.nodeId) ?? 0) / 2 ** 20),
          cpu: round3(0.05 + 0.7 * bps / GB), bytesInPerSec: Math.round(bps / 2), bytesOutPerSec: Math.round(bps / 2),
        },
      });
    }
    // The shard's usage report.
    const usage = s.jobs.filter((j) => live.has(j.jobId)).map((j) => {
      const r = (requests.get(j.jobId) ?? 0) + Math.round(j.bps(sec - j.startS) / 1e6);
      requests.set(j.jobId, r);
      return { jobId: j.jobId, bytes: Math.round(j.bytes(sec - j.startS)), requests: r };
    });
    if (usage.length > 0) apply({ kind: "shard.usage", atMs: base + 500, shardId: "s0", jobs: usage });
    apply({ kind: "tick", atMs: base + 900 });
  }
  return { inputs, decisions };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

const ramp = (from: number, to: number, overS: number) => (s: number): number => from + (to - from) * Math.min(1, Math.max(0, s / overS));

export const scenarios: readonly Scenario[] = [
  {
    // One job whose stored bytes and throughput climb past the band: the tier scales out.
    name: "scale-out",
    seconds: 60,
    initialNodes: 2,
    jobs: [{
      jobId: "j-rising", name: "rising", hints: { lambdas: 20 }, startS: 1,
      bytes: ramp(1 * GB, 6 * GB, 40), bps: ramp(0.5 * GB, 2.6 * GB, 30),
    }],
  },
  {
    // Two jobs that needed four nodes end; the tier drains back to its minimum of two.
    name: "scale-in",
    seconds: 90,
    initialNodes: 2,
    jobs: [
      { jobId: "j-big-a", name: "big-a", hints: { capacityBytes: 25 * GB }, startS: 1, endS: 20, bytes: () => 20 * GB, bps: () => 0.5 * GB },
      { jobId: "j-big-b", name: "big-b", hints: { lambdas: 10 }, startS: 2, endS: 30, bytes: () => 3 * GB, bps: () => 0.4 * GB },
    ],
  },
  {
    // A node stops heartbeating: failed after three missed heartbeats, its reservation moves, a replacement is launched.
    name: "node-failure",
    seconds: 40,
    initialNodes: 3,
    jobs: [{ jobId: "j-steady", name: "steady", hints: { capacityBytes: 15 * GB }, startS: 1, bytes: () => 6 * GB, bps: () => 0.3 * GB }],
    crashes: [{ nodeId: "dram-1", atS: 10 }],
  },
  {
    // Pocket's multi-job figure: three jobs register and end at different times; the cluster follows them.
    name: "three-jobs",
    seconds: 150,
    initialNodes: 2,
    jobs: [
      { jobId: "j-sort", name: "sort", hints: { capacityBytes: 28 * GB, lambdas: 20 }, startS: 1, endS: 60, bytes: ramp(0, 24 * GB, 30), bps: () => 1.2 * GB },
      { jobId: "j-video", name: "video", hints: { lambdas: 8 }, startS: 20, endS: 80, bytes: ramp(0, 4 * GB, 20), bps: () => 0.5 * GB },
      { jobId: "j-compile", name: "compile", hints: { capacityBytes: 2 * GB, latencySensitive: true }, startS: 45, endS: 100, bytes: () => 1 * GB, bps: () => 0.1 * GB },
    ],
  },
  {
    // A driver renews its job's lease, then crashes: the job expires when the lease runs out and its reservation goes.
    name: "lease-expiry",
    seconds: 45,
    initialNodes: 2,
    jobs: [
      { jobId: "j-crashy", name: "crashy", hints: { capacityBytes: 8 * GB }, startS: 1, renewUntilS: 13, leaseMs: 10_000, bytes: () => 2 * GB, bps: () => 0 },
    ],
  },
];

function main(): void {
  const dir = process.argv[2] ?? path.join(__dirname.replace(`${path.sep}dist${path.sep}`, path.sep));
  fs.mkdirSync(dir, { recursive: true });
  for (const s of scenarios) {
    const { inputs, decisions } = simulate(s);
    fs.writeFileSync(path.join(dir, `${s.name}.trace.ndjson`), inputs.map((i) => `${JSON.stringify(i)}\n`).join(""));
    fs.writeFileSync(path.join(dir, `${s.name}.expected.ndjson`), decisions.map((d) => `${decisionLine(d)}\n`).join(""));
    process.stdout.write(`${s.name}: ${inputs.length} inputs, ${decisions.length} decisions\n`);
  }
}

if (require.main === module) main();
