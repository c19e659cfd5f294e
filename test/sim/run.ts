import { ErrorCode, isPocketError } from "../../schemas/errors";
import { ManualClock } from "../../lib/clock";
import { Prng } from "../../lib/prng";
import { JobState, NodeState } from "../../actors/controller/machines";
import { parsePath } from "../../actors/metadata/namespace";
import type { PocketJob } from "../../client/pocket";
import { SimCluster, SimDramStore } from "./cluster";
import { SimNetwork } from "./network";
import type { Plan, Step } from "./plan";

/** What broke, when, and which invariant said so. */
export interface Failure {
  readonly invariant: string;
  readonly atMs: number;
  readonly message: string;
}

export interface RunResult {
  readonly seed: number;
  readonly failure: Failure | undefined;
  /** Simulated events run (timers fired). */
  readonly events: number;
  readonly ops: { ok: number; failed: number };
}

class InvariantViolation extends Error {
  constructor(readonly invariant: string, message: string) {
    super(message);
  }
}

/** One put or delete of a key, as the client saw it. */
interface Write {
  readonly value: Buffer | null;
  readonly startMs: number;
  endMs: number;
  /** undefined while in flight; false when it failed (it may still have landed). */
  ok: boolean | undefined;
}

interface JobRun {
  token: string | undefined;
  job: PocketJob | undefined;
  registeredAtMs: number;
  renewUntil: number;
  ended: boolean;
  /** A deregistration was attempted: if it failed, it may still have dropped the job's data. */
  endAttempted: boolean;
  readonly writes: Map<number, Write[]>;
  readonly busy: Set<number>;
}

/** Hard bound on simulated events per run, whatever the plan. */
const eventsMax = 2_000_000;
const settleDefaultMs = 20_000;

/**
 * Runs one plan on a fresh simulated cluster and checks, after every event:
 * no node holds more than its capacity, every live job's weights sum to 1
 * over active nodes, each shard's books agree with its namespaces, no
 * stopped controller decides anything; at each read, bytes are exactly a
 * value that was written (or a typed error); at the end, with faults healed,
 * committed objects on live nodes read back, and once every job has ended no
 * node holds a byte.
 */
export async function runPlan(plan: Plan): Promise<RunResult> {
  const clock = new ManualClock(1_700_000_000_000);
  const net = new SimNetwork(clock, Prng.forCase(plan.seed, 1));
  const cluster = new SimCluster(net, clock, Prng.forCase(plan.seed, 2), plan.shards, plan.minNodes);
  const run = new Run(plan, cluster, net, clock);
  try {
    await cluster.start();
    await run.execute();
  } catch (e) {
    run.fail(e);
  } finally {
    await cluster.stop().catch((e: unknown) => run.fail(e));
  }
  return { seed: plan.seed, failure: run.failure, events: run.events, ops: run.ops };
}

class Run {
  readonly jobs = new Map<number, JobRun>();
  failure: Failure | undefined;
  events = 0;
  readonly ops = { ok: 0, failed: 0 };
  /** When data could have been lost (node crash, shard restart): reads may then miss objects. */
  dataLossAtMs = Infinity;
  /** Whether some host's clock has jumped (expiry checks may then refuse valid grants). */
  clockJumped = false;

  /** When the run began on the simulated clock: plan steps are times after it. */
  readonly start: number;

  constructor(readonly plan: Plan, readonly cluster: SimCluster, readonly net: SimNetwork, readonly clock: ManualClock) {
    this.start = clock.now();
  }

  fail(e: unknown): void {
    if (this.failure) return;
    const invariant = e instanceof InvariantViolation ? e.invariant : e instanceof Error ? e.name : "exception";
    const message = e instanceof Error ? e.message : String(e);
    this.failure = { invariant, atMs: this.clock.now() - this.start, message };
  }

  async execute(): Promise<void> {
    for (const step of this.plan.steps) this.clock.after(step.at, () => this.#step(step));
    await this.#runUntil(this.start + this.plan.durationMs);
    if (this.failure) return;
    this.#heal();
    const settleMs = this.plan.settleMs ?? settleDefaultMs;
    await this.#runUntil(this.clock.now() + settleMs);
    if (this.failure) return;
    await this.#checkReadable();
    await this.#endAll();
    await this.#runUntil(this.clock.now() + settleMs);
    this.#checkAllFreed();
  }

  /** Fires timers in order up to `untilMs`, letting every promise chain run to rest between them, checking invariants after each. */
  async #runUntil(untilMs: number): Promise<void> {
    while (!this.failure && this.clock.fireNext(untilMs)) {
      if (++this.events > eventsMax) throw new InvariantViolation("bounded", `more than ${eventsMax} events`);
      await settle();
      try {
        this.#checkInvariants();
      } catch (e) {
        this.fail(e);
      }
    }
    if (this.clock.now() < untilMs) this.clock.advance(untilMs - this.clock.now());
    await settle();
  }

  #step(s: Step): void {
    const f = this.net.faults;
    const later = (ms: number, fn: () => void): void => { this.clock.after(ms, fn); };
    switch (s.kind) {
      case "register": return void this.#register(s.job, s.renewUntil < this.plan.durationMs * 10 ? this.start + s.renewUntil : Infinity);
      case "deregister": return void this.#deregister(s.job);
      case "put": return void this.#put(s.job, s.key, s.size, s.value);
      case "get": return void this.#get(s.job, s.key, s.offset, s.length);
      case "delete": return void this.#delete(s.job, s.key);
      case "loss":
        f.lossRate = s.rate;
        return later(s.forMs, () => { f.lossRate = 0; });
      case "delay":
        f.delayMaxMs = s.maxMs;
        return later(s.forMs, () => { f.delayMaxMs = 2; });
      case "isolate": {
        const host = this.#host(s.host);
        f.isolated.add(host);
        return later(s.forMs, () => { f.isolated.delete(host); });
      }
      case "slow": {
        const host = this.#host(s.host);
        f.slow.set(host, s.ms);
        return later(s.forMs, () => { f.slow.delete(host); });
      }
      case "crash-node": {
        const ids = [...this.cluster.nodes.keys()].sort();
        if (ids.length === 0) return;
        this.dataLossAtMs = Math.min(this.dataLossAtMs, this.clock.now());
        return void this.cluster.stopNode(ids[s.node % ids.length]!, "crashed");
      }
      case "restart-shard":
        this.dataLossAtMs = Math.min(this.dataLossAtMs, this.clock.now());
        return void this.cluster.restartShard(`s${s.shard}`);
      case "restart-controller":
        return void this.cluster.restartController(500);
      case "corrupt-extent": {
        const ids = [...this.cluster.nodes.keys()].sort();
        const node = ids.length === 0 ? undefined : this.cluster.nodes.get(ids[s.node % ids.length]!);
        const store = node?.node.logic.store;
        if (store instanceof SimDramStore) store.corruptOne();
        return;
      }
      case "clock-jump": {
        const c = this.cluster.clockOf(this.#host(s.host));
        if (c) c.offsetMs += s.ms;
        this.clockJumped ||= c !== undefined;
        return;
      }
    }
  }

  #host(name: string): string {
    if (!name.startsWith("node:")) return name;
    const ids = [...this.cluster.nodes.keys()].sort();
    return ids.length === 0 ? "none" : ids[Number(name.slice(5)) % ids.length]!;
  }

  #heal(): void {
    const f = this.net.faults;
    f.lossRate = 0;
    f.delayMaxMs = 2;
    f.isolated.clear();
    f.slow.clear();
  }

  async #register(index: number, renewUntil: number): Promise<void> {
    const run: JobRun = { token: undefined, job: undefined, registeredAtMs: this.clock.now(), renewUntil, ended: false, endAttempted: false, writes: new Map(), busy: new Set() };
    this.jobs.set(index, run);
    try {
      const reg = await this.cluster.driver.registerJob(`job-${index}`, {}, { leaseMs: 15_000 });
      run.token = reg.token;
      run.job = this.cluster.driver.job(reg.token);
      this.#renewLoop(run);
    } catch (e) {
      this.#typed(e, "register");
      run.ended = true;
    }
  }

  /** The driver renews its job's lease every 4 s until its plan says it stops (then the lease runs out). */
  #renewLoop(run: JobRun): void {
    this.clock.after(4_000, () => {
      if (run.ended || this.clock.now() > run.renewUntil || !run.token) return;
      this.cluster.driver.renewLease(run.token).catch((e: unknown) => this.#typed(e, "renew"));
      this.#renewLoop(run);
    });
  }

  async #deregister(index: number): Promise<void> {
    const run = this.jobs.get(index);
    if (!run?.token || run.ended) return;
    run.endAttempted = true;
    try {
      await this.cluster.driver.deregisterJob(run.token);
      run.ended = true;
    } catch (e) {
      this.#typed(e, "deregister");
    }
  }

  /** A put of `size` bytes drawn from `value`; one operation per key at a time. */
  async #put(index: number, key: number, size: number, value: number): Promise<void> {
    const run = this.jobs.get(index);
    if (!run?.job || run.busy.has(key)) return;
    const bytes = Prng.forCase(value, size).bytes(size);
    await this.#write(run, key, bytes, () => run.job!.put(`k${key}`, bytes));
  }

  async #delete(index: number, key: number): Promise<void> {
    const run = this.jobs.get(index);
    if (!run?.job || run.busy.has(key)) return;
    await this.#write(run, key, null, () => run.job!.delete(`k${key}`));
  }

  async #write(run: JobRun, key: number, value: Buffer | null, op: () => Promise<unknown>): Promise<void> {
    run.busy.add(key);
    const w: Write = { value, startMs: this.clock.now(), endMs: Infinity, ok: undefined };
    let list = run.writes.get(key);
    if (!list) run.writes.set(key, (list = []));
    list.push(w);
    try {
      await op();
      w.ok = true;
      this.ops.ok++;
    } catch (e) {
      w.ok = false;
      this.ops.failed++;
      // A delete of what is not there did what it was asked.
      if (value === null && isPocketError(e, ErrorCode.NotFound)) w.ok = true;
      else this.#typed(e, value === null ? "delete" : "put");
    } finally {
      w.endMs = this.clock.now();
      run.busy.delete(key);
    }
  }

  async #get(index: number, key: number, offset: number | undefined, length: number | undefined): Promise<void> {
    const run = this.jobs.get(index);
    if (!run?.job || run.busy.has(key)) return;
    run.busy.add(key);
    const startMs = this.clock.now();
    try {
      const got = await run.job.get(`k${key}`, { offset, length });
      this.ops.ok++;
      this.#checkRead(run, key, startMs, got, offset, length);
    } catch (e) {
      this.ops.failed++;
      if (e instanceof InvariantViolation) throw e;
      this.#typed(e, "get");
      if (isPocketError(e, ErrorCode.NotFound) && startMs < this.dataLossAtMs && !run.endAttempted) {
        // Not there: only if absence is one of the values the key may have.
        if (!this.#candidates(run, key, startMs).some((c) => c === null)) {
          this.fail(new InvariantViolation("read-committed", `get k${key} of job ${run.job.jobId}: NotFound, but the key holds a committed object`));
        }
      }
    } finally {
      run.busy.delete(key);
    }
  }

  /**
   * What a read that started at `startMs` may see: the value of the last
   * write known to have succeeded before it, and any write that had not
   * certainly lost the race to it (failed or in flight, its messages may
   * land late).
   */
  #candidates(run: JobRun, key: number, startMs: number): Array<Buffer | null> {
    const list = run.writes.get(key) ?? [];
    let last: Write | undefined;
    for (const w of list) if (w.ok === true && w.endMs <= startMs) last = w;
    const from = last?.startMs ?? -Infinity;
    const out: Array<Buffer | null> = [last ? last.value : null];
    const bound = this.net.delayBoundMs + 10_000;
    for (const w of list) {
      if (w === last || w.ok === true && w.endMs <= startMs) continue;
      if (w.endMs + bound >= from) out.push(w.value);
    }
    return out;
  }

  #checkRead(run: JobRun, key: number, startMs: number, got: Buffer, offset: number | undefined, length: number | undefined): void {
    const candidates = this.#candidates(run, key, startMs);
    const ok = candidates.some((c) => {
      if (c === null) return false;
      const from = Math.min(offset ?? 0, c.byteLength);
      const to = length === undefined ? c.byteLength : Math.min(c.byteLength, from + length);
      return got.equals(c.subarray(from, to));
    });
    if (!ok) {
      this.fail(new InvariantViolation("read-committed", `get k${key} [${offset ?? 0}, +${length ?? "all"}) of job ${run.job!.jobId} returned ${got.byteLength} bytes that no write of the key holds (${candidates.length} candidates)`));
    }
  }

  /** Errors must be typed; an Integrity error means wrong bytes reached a reader (no fault here corrupts bytes). */
  #typed(e: unknown, what: string): void {
    if (!isPocketError(e)) {
      this.fail(new InvariantViolation("typed-errors", `${what} failed with an untyped ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`));
    } else if (e.code === ErrorCode.Integrity) {
      this.fail(new InvariantViolation("integrity", `${what}: ${e.message}`));
    } else if (e.code === ErrorCode.Unauthorized && this.clockJumped) {
      // Grants and tokens carry absolute expiry times: a host whose clock jumped past them refuses them, as it should.
    } else if (e.code === ErrorCode.Unauthorized || e.code === ErrorCode.InvalidArgument) {
      // The simulation's clients send only well-formed requests with their own valid tokens.
      this.fail(new InvariantViolation("well-formed", `${what} of a well-formed request failed: ${e.code}: ${e.message}`));
    }
  }

  #checkInvariants(): void {
    for (const [id, n] of this.cluster.nodes) {
      const s = n.node.logic.store;
      if (s.usedBytes > s.capacityBytes) throw new InvariantViolation("capacity", `node ${id} holds ${s.usedBytes} bytes of ${s.capacityBytes}`);
    }
    for (const s of this.cluster.shards.values()) s.shard.logic.checkInvariants();
    const c = this.cluster.controller;
    if (c) {
      for (const j of c.core.liveJobs()) {
        if (j.weights.length === 0) continue;
        const sum = j.weights.reduce((a, w) => a + w.weight, 0);
        // Weights are rounded to six decimals (stable in recorded decisions): each may be off by half a millionth.
        if (Math.abs(sum - 1) > j.weights.length * 5e-7 + 1e-12) throw new InvariantViolation("weights", `job ${j.jobId}'s weights sum to ${sum}`);
        for (const w of j.weights) {
          const n = c.core.node(w.nodeId);
          if (w.weight > 0 && (!n || c.core.nodeState(n) !== NodeState.Active)) {
            throw new InvariantViolation("weights", `job ${j.jobId} weights node ${w.nodeId} (${n ? c.core.nodeState(n) : "unknown"}) at ${w.weight}`);
          }
        }
      }
    }
    if (this.cluster.startError !== undefined) throw this.cluster.startError;
    const late = this.cluster.lateEvent;
    if (late) throw new InvariantViolation("fenced", `controller incarnation ${late.incarnation} decided ${late.kind} after it stopped`);
  }

  /** With faults healed: every key whose last write is certain reads back exactly, if its bytes live on nodes that never crashed. */
  async #checkReadable(): Promise<void> {
    const c = this.cluster.controller;
    if (!c) return;
    for (const run of this.jobs.values()) {
      // A job its driver stopped renewing may expire while it is read.
      if (!run.job || run.ended || run.endAttempted || run.renewUntil !== Infinity) continue;
      const book = c.core.job(run.job.jobId);
      if (!book || c.core.jobState(book) === JobState.Ended || c.core.jobState(book) === JobState.Expired) continue;
      const shard = this.cluster.shards.get(run.job.shardId);
      if (!shard || shard.crashes > 0) continue;
      for (const [key, list] of run.writes) {
        const last = list[list.length - 1]!;
        if (last.ok !== true || list.some((w) => w.ok !== true && w.endMs + 10_000 >= last.startMs)) continue;
        const state = shard.shard.logic.jobState(run.job.jobId);
        const entry = state?.ns.find(parsePath(`k${key}`));
        if (last.value !== null && entry?.kind === "object" && entry.extents.some((e) => !this.cluster.nodes.has(e.nodeId))) continue;
        try {
          const got = await this.#settled(run.job.get(`k${key}`));
          if (last.value === null || !got.equals(last.value)) {
            this.fail(new InvariantViolation("readable", `after healing, k${key} of job ${run.job.jobId} read ${got.byteLength} bytes; the last write put ${last.value?.byteLength ?? "nothing"}`));
          }
        } catch (e) {
          if (last.value === null && isPocketError(e, ErrorCode.NotFound)) continue;
          this.fail(new InvariantViolation("readable", `after healing, k${key} of job ${run.job.jobId} (${last.value?.byteLength ?? 0} bytes on live nodes) failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`));
        }
      }
    }
  }

  /** Deregisters every job still registered (faults healed: each must succeed). */
  async #endAll(): Promise<void> {
    for (const run of this.jobs.values()) {
      if (!run.token || run.ended) continue;
      const book = this.cluster.controller?.core.job(run.job!.jobId);
      if (!book || !this.cluster.controller!.core.isLive(book)) continue;
      try {
        await this.#settled(this.cluster.driver.deregisterJob(run.token));
        run.ended = true;
      } catch (e) {
        this.fail(new InvariantViolation("freed", `after healing, deregistering job ${run.job!.jobId} failed: ${e instanceof Error ? e.message : String(e)}`));
      }
    }
  }

  /** Every job has ended (deregistered or expired): no node may hold a byte. */
  #checkAllFreed(): void {
    if (this.failure) return;
    for (const [id, n] of this.cluster.nodes) {
      const s = n.node.logic.store;
      if (s.usedBytes !== 0) this.fail(new InvariantViolation("freed", `every job has ended, but node ${id} still holds ${s.usedBytes} bytes in ${s.extentCount} extents`));
    }
  }

  /** Awaits a promise while running the simulation until it settles (bounded by the run's event limit). */
  async #settled<T>(p: Promise<T>): Promise<T> {
    let done = false;
    const tracked = p.finally(() => { done = true; });
    tracked.catch(() => undefined);
    while (!done && this.clock.fireNext()) {
      if (++this.events > eventsMax) throw new InvariantViolation("bounded", `more than ${eventsMax} events`);
      await settle();
    }
    return tracked;
  }
}

/** Lets every promise chain started by the last event run to rest (nothing in the simulation waits on real I/O). */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
