/**
 * What `npm run bench` measures, as data: steps of work run on each system
 * once per round, and the measures (figures with a unit, an orientation and
 * a target) each step yields.
 */
import { formatBytes } from "../lib/units";
import { System, systems, type Work, type WorkResult } from "./work";

const MiB = 1024 * 1024;

/** How much each step does: less with --quick. */
export interface Plan {
  readonly quick: boolean;
  readonly rounds: number;
  readonly durationMs: number;
  readonly latencyCount: number;
  readonly latencyWarmup: number;
  /** Client processes for 1 KB ops/s, and for 1 MB throughput. */
  readonly opsClientCounts: readonly number[];
  readonly megabyteClientCounts: readonly number[];
  readonly clientsMax: number;
  readonly streamBytes: number;
}

/** The plan for a quick or a full run; `rounds` overrides the default (2 quick, 5 full). */
export function planFor(quick: boolean, rounds?: number): Plan {
  const opsClientCounts = quick ? [1, 4] : [1, 4, 16];
  const megabyteClientCounts = quick ? [4] : [4, 16];
  return {
    quick,
    rounds: rounds ?? (quick ? 2 : 5),
    durationMs: quick ? 1_000 : 3_000,
    latencyCount: quick ? 2_000 : 10_000,
    latencyWarmup: quick ? 200 : 1_000,
    opsClientCounts,
    megabyteClientCounts,
    clientsMax: Math.max(...opsClientCounts, ...megabyteClientCounts),
    streamBytes: quick ? 256 * MiB : 1024 * MiB,
  };
}

export type Unit = "µs" | "ops/s" | "B/s" | "B";

/** What a measure is held to. */
export type Target =
  /** The median over rounds of Pocket ÷ Redis (oriented: > 1 is better for Pocket) at least `min`. */
  | { readonly kind: "ratio"; readonly min: number; readonly text: string }
  /** Pocket's median figure at least `bound`. */
  | { readonly kind: "atLeast"; readonly bound: number; readonly text: string }
  /** Pocket's median figure below `bound`. */
  | { readonly kind: "below"; readonly bound: number; readonly text: string }
  | { readonly kind: "none" };

export interface Measure {
  readonly name: string;
  /** Which of its step's figures it is. */
  readonly figure: string;
  readonly unit: Unit;
  /** "higher" is better (throughput) or "lower" (latency, memory). */
  readonly better: "higher" | "lower";
  readonly target: Target;
}

export interface Step {
  /** As the progress lines name it. */
  readonly title: string;
  /** The systems it runs on, in the first round's order. */
  readonly systems: readonly System[];
  /** Client processes it runs on at once. */
  readonly clients: number;
  /** Run on a freshly forked client process (the last one, replaced): its memory holds nothing earlier work left. */
  readonly fresh: boolean;
  readonly work: (system: System) => Work;
  /** Its figures, from its clients' results. */
  readonly figures: (results: readonly WorkResult[]) => Readonly<Record<string, number>>;
  readonly measures: readonly Measure[];
}

const sum = (rs: readonly WorkResult[], f: (r: WorkResult) => number): number => rs.reduce((s, r) => s + f(r), 0);
/** Requests per second of all clients together. */
const opsRate = (rs: readonly WorkResult[]): Record<string, number> => ({ rate: sum(rs, (r) => r.ops / r.seconds) });
/** Bytes per second of all clients together, over the longest client's time. */
const bytesRate = (rs: readonly WorkResult[]): Record<string, number> => ({ rate: sum(rs, (r) => r.bytes) / Math.max(...rs.map((r) => r.seconds)) });

const vsRedis = (min: number, text: string): Target => ({ kind: "ratio", min, text });

/** 1 KB latency, one client process, one request in flight: p50 and p99 of put, get and stat. */
function latencySteps(plan: Plan): Step[] {
  return (["put", "get", "stat"] as const).map((op) => {
    const OP = op.toUpperCase();
    const timed = op !== "stat";
    return {
      title: `1 KB ${op} latency, ${plan.latencyCount} requests, one in flight`,
      systems: timed ? systems : [System.Pocket, System.Redis],
      clients: 1,
      fresh: false,
      work: (system: System): Work => ({ kind: "latency", system, op, size: 1024, count: plan.latencyCount, warmup: plan.latencyWarmup }),
      figures: (rs) => ({ p50: rs[0]!.p50Us!, p99: rs[0]!.p99Us! }),
      measures: [
        { name: `1 KB ${OP} p50`, figure: "p50", unit: "µs", better: "lower", target: timed ? vsRedis(1, "≤ 1.0× Redis") : { kind: "none" } },
        { name: `1 KB ${OP} p99`, figure: "p99", unit: "µs", better: "lower", target: timed ? vsRedis(1 / 1.5, "≤ 1.5× Redis") : { kind: "none" } },
      ],
    };
  });
}

/** 1 KB ops/s, 64 in flight per client process, 1, 4 (and 16) processes. */
function opsSteps(plan: Plan): Step[] {
  return plan.opsClientCounts.flatMap((n) => (["get", "put"] as const).map((op): Step => ({
    title: `1 KB ${op} ops/s, 64 in flight per client, ${n} client process(es), ${plan.durationMs} ms`,
    systems,
    clients: n,
    fresh: false,
    work: (system) => ({ kind: "ops", system, op, size: 1024, inflight: 64, durationMs: plan.durationMs }),
    figures: opsRate,
    measures: [{
      name: `1 KB ${op.toUpperCase()} ops/s, 64 in flight × ${n}`, figure: "rate", unit: "ops/s", better: "higher",
      target: n <= 4 ? vsRedis(1, "≥ 1.0× Redis") : { kind: "none" },
    }],
  })));
}

/** Large objects: 1 MB over 4 (and 16) client processes, 64 MB from one; one request at a time per process. */
function throughputSteps(plan: Plan): Step[] {
  const cases = [
    ...plan.megabyteClientCounts.map((n) => ({ size: 1_000_000, clients: n, keys: 4, min: 1, text: "≥ 1.0× Redis" })),
    { size: 64_000_000, clients: 1, keys: 1, min: 1.2, text: "≥ 1.2× Redis" },
  ];
  return cases.flatMap((c) => (["put", "get"] as const).map((op): Step => ({
    title: `${c.size / 1e6} MB ${op}, ${c.clients} client process(es), ${plan.durationMs} ms`,
    systems: [System.Pocket, System.Redis],
    clients: c.clients,
    fresh: false,
    work: (system) => ({ kind: "throughput", system, op, size: c.size, keys: c.keys, durationMs: plan.durationMs, opsMin: 2 }),
    figures: bytesRate,
    measures: [{
      name: `${c.size / 1e6} MB ${op.toUpperCase()} × ${c.clients} client${c.clients > 1 ? "s" : ""}`, figure: "rate", unit: "B/s", better: "higher",
      target: vsRedis(c.min, c.text),
    }],
  })));
}

/** The metadata shard alone: lookups per second from 2 client processes, 128 pipelined each. */
function metadataStep(plan: Plan): Step {
  return {
    title: `metadata lookups, 2 clients × 128 pipelined, ${plan.durationMs} ms`,
    systems: [System.Pocket],
    clients: 2,
    fresh: false,
    work: () => ({ kind: "metadata", inflight: 128, durationMs: plan.durationMs }),
    figures: opsRate,
    measures: [{ name: "metadata lookups/s, one shard", figure: "rate", unit: "ops/s", better: "higher", target: { kind: "atLeast", bound: 150_000, text: "≥ 150K/s" } }],
  };
}

/** A large object streamed in and out from a freshly forked client process, with its RSS growth. */
function streamStep(plan: Plan): Step {
  const size = plan.streamBytes;
  return {
    title: `${formatBytes(size)} streamed put and get, from a fresh client process`,
    systems: [System.Pocket],
    clients: 1,
    fresh: true,
    work: () => ({ kind: "stream", size }),
    figures: (rs) => ({ put: size / rs[0]!.putSeconds!, get: size / rs[0]!.getSeconds!, rss: rs[0]!.rssGrowthBytes! }),
    measures: [
      { name: `${formatBytes(size)} streamed PUT`, figure: "put", unit: "B/s", better: "higher", target: { kind: "none" } },
      { name: `${formatBytes(size)} streamed GET`, figure: "get", unit: "B/s", better: "higher", target: { kind: "none" } },
      { name: "streaming client peak RSS growth", figure: "rss", unit: "B", better: "lower", target: { kind: "below", bound: 64 * MiB, text: "< 64 MiB" } },
    ],
  };
}

/** Every step of a round, in the order they run. */
export function stepsFor(plan: Plan): Step[] {
  return [...latencySteps(plan), ...opsSteps(plan), ...throughputSteps(plan), metadataStep(plan), streamStep(plan)];
}
