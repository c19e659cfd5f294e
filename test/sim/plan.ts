import { Prng } from "../../lib/prng";

/** One thing that happens at a simulated time: a client operation or a fault. Plain data: a plan is its own replayable trace. */
export type Step =
  | { readonly at: number; readonly kind: "register"; readonly job: number; readonly renewUntil: number }
  | { readonly at: number; readonly kind: "deregister"; readonly job: number }
  | { readonly at: number; readonly kind: "put"; readonly job: number; readonly key: number; readonly size: number; readonly value: number }
  | { readonly at: number; readonly kind: "get"; readonly job: number; readonly key: number; readonly offset?: number; readonly length?: number }
  | { readonly at: number; readonly kind: "delete"; readonly job: number; readonly key: number }
  | { readonly at: number; readonly kind: "loss"; readonly rate: number; readonly forMs: number }
  | { readonly at: number; readonly kind: "delay"; readonly maxMs: number; readonly forMs: number }
  | { readonly at: number; readonly kind: "isolate"; readonly host: string; readonly forMs: number }
  | { readonly at: number; readonly kind: "slow"; readonly host: string; readonly ms: number; readonly forMs: number }
  | { readonly at: number; readonly kind: "crash-node"; readonly node: number }
  | { readonly at: number; readonly kind: "restart-shard"; readonly shard: number }
  | { readonly at: number; readonly kind: "restart-controller" }
  | { readonly at: number; readonly kind: "clock-jump"; readonly host: string; readonly ms: number }
  /** Flips a byte of a stored extent (never drawn by planFor: tests use it to show a reader catches it). */
  | { readonly at: number; readonly kind: "corrupt-extent"; readonly node: number };

export interface Plan {
  readonly seed: number;
  readonly shards: number;
  readonly minNodes: number;
  /** Simulated time the steps span; healing and final checks follow. */
  readonly durationMs: number;
  /** Simulated time given to heal before each final check (20 s unless given). */
  readonly settleMs?: number;
  readonly steps: readonly Step[];
}

/** The short plans `npm test` runs: 10 s of steps, 6 s to settle before each final check. */
export const quickShape = { durationMs: 10_000, settleMs: 6_000 } as const;

/** Hosts a fault can name: `node:<i>` is the i-th live storage node (by id) when the fault strikes. */
const faultHosts = ["controller", "s0", "s1", "lambda", "driver", "node:0", "node:1", "node:2"];

/**
 * The plan a seed draws: a cluster shape, a few jobs with objects of sizes
 * from inline to several extents, and faults — message loss, delay and
 * reordering, isolated and slow hosts, node crashes, shard and controller
 * restarts, clock jumps. Same seed, same plan.
 */
export function planFor(seed: number, options: { durationMs?: number; faults?: boolean; settleMs?: number } = {}): Plan {
  const rng = Prng.forCase(seed, 0);
  const durationMs = options.durationMs ?? 30_000;
  const shards = rng.int(1, 2);
  const steps: Step[] = [];
  const jobs = rng.int(1, 3);
  for (let job = 0; job < jobs; job++) {
    // After the controller's startup grace (1 s in the simulation), once its first nodes are up.
    const at = 2_500 + rng.below(2_000);
    // Most jobs renew their lease to the end; some are abandoned by their driver and expire.
    const renewUntil = rng.chance(0.8) ? Infinity : at + rng.below(durationMs / 2);
    steps.push({ at, kind: "register", job, renewUntil: Number.isFinite(renewUntil) ? renewUntil : durationMs * 10 });
    if (rng.chance(0.15)) steps.push({ at: at + rng.below(durationMs - at), kind: "deregister", job });
    const ops = rng.int(10, 40);
    for (let i = 0; i < ops; i++) {
      const t = at + 200 + rng.below(durationMs - at - 200);
      const key = rng.below(4);
      const r = rng.float();
      if (r < 0.45) steps.push({ at: t, kind: "put", job, key, size: objectSize(rng), value: rng.u32() });
      else if (r < 0.85) steps.push(rangeOrWhole(rng, t, job, key));
      else steps.push({ at: t, kind: "delete", job, key });
    }
  }
  if (options.faults !== false) steps.push(...faultsFor(rng, durationMs, shards));
  steps.sort((a, b) => a.at - b.at);
  return { seed, shards, minNodes: rng.int(1, 3), durationMs, steps, ...(options.settleMs === undefined ? {} : { settleMs: options.settleMs }) };
}

function objectSize(rng: Prng): number {
  return rng.weighted<number>([[3, rng.int(0, 512)], [3, rng.int(513, 4096)], [3, rng.int(4097, 20_000)], [1, rng.int(20_001, 60_000)]]);
}

function rangeOrWhole(rng: Prng, at: number, job: number, key: number): Step {
  if (rng.chance(0.7)) return { at, kind: "get", job, key };
  return { at, kind: "get", job, key, offset: rng.below(6000), length: rng.below(9000) };
}

function faultsFor(rng: Prng, durationMs: number, shards: number): Step[] {
  const out: Step[] = [];
  const n = rng.int(0, 6);
  for (let i = 0; i < n; i++) {
    const at = 1_000 + rng.below(durationMs - 1_000);
    const forMs = 500 + rng.below(8_000);
    const host = rng.pick(faultHosts);
    out.push(rng.weighted<Step>([
      [3, { at, kind: "loss", rate: 0.02 + rng.float() * 0.3, forMs }],
      [2, { at, kind: "delay", maxMs: 20 + rng.below(3_000), forMs }],
      [2, { at, kind: "isolate", host, forMs }],
      [2, { at, kind: "slow", host, ms: 50 + rng.below(2_000), forMs }],
      [2, { at, kind: "crash-node", node: rng.below(3) }],
      [1, { at, kind: "restart-shard", shard: rng.below(shards) }],
      [1, { at, kind: "restart-controller" }],
      [1, { at, kind: "clock-jump", host, ms: rng.pick([-5_000, 2_000, 20_000, 90_000]) }],
    ]));
  }
  return out;
}
