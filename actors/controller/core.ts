import type { JobHints, Tier, Weight } from "../../schemas/operations";
import {
  allocate, demandFromHints, freeSpaceWeights, nodesFor, round, tierFor, weightsFromParts,
  type AllocationPart, type Demand, type NodeSlot,
} from "./allocation";
import type { ControllerInput, Decision, TierMeasurements } from "./inputs";
import {
  JobState, NodeState, jobStateOf, newJobLife, newNodeLife, nodeStateOf, restoreJobLife, restoreNodeLife, stepJob, stepNode,
  type JobLifeEvent, type JobSnapshot, type NodeLifeEvent, type NodeSnapshot,
} from "./machines";
import { nodeTypeOf, type NodeType, type ScalingPolicy } from "./policy";

/** One utilisation sample from a heartbeat. */
interface Sample {
  readonly atMs: number;
  readonly cpu: number;
  readonly netBps: number;
}

export interface NodeBook {
  readonly nodeId: string;
  readonly tier: Tier;
  addr: string;
  capacityBytes: number;
  throughputBps: number;
  /** Launched by the controller through its orchestrator (not started by hand). */
  readonly launched: boolean;
  life: NodeSnapshot;
  usedBytes: number;
  extents: number;
  samples: Sample[];
  migrateRequested: boolean;
}

export interface JobUsage {
  /** Bytes stored now, as last reported by the job's shard. */
  bytes: number;
  byteSeconds: number;
  /** Reserved throughput × time, and reserved capacity × time. */
  reservedBpsSeconds: number;
  reservedByteSeconds: number;
  requests: number;
  /** The shard's request counter when last heard (to count increments). */
  requestsSeen: number;
  requestRate: number;
  lastReportMs: number;
}

export interface JobBook {
  readonly jobId: string;
  readonly name: string;
  readonly shardId: string;
  readonly hints: JobHints;
  readonly tier: Tier;
  demand: Demand;
  readonly registeredAtMs: number;
  endedAtMs: number | null;
  life: JobSnapshot;
  parts: AllocationPart[];
  weights: Weight[];
  usage: JobUsage;
}

/** Per-tier scaling memory: when utilisation left the band, and when the tier last scaled. */
export interface TierMemory {
  aboveSinceMs: number | null;
  belowSinceMs: number | null;
  lastScaledMs: number;
}

export interface CoreMeta {
  seq: number;
  startedAtMs: number;
  lastTickMs: number;
  tiers: Partial<Record<Tier, TierMemory>>;
}

/** What a restarted controller loads to continue where it stopped. */
export interface CoreState {
  readonly meta: CoreMeta;
  readonly nodes: readonly NodeBook[];
  readonly jobs: readonly JobBook[];
}

/** Entities changed since the last `takeDirty()`: what the shell writes to its store. */
export interface Dirty {
  readonly nodes: Set<string>;
  readonly jobs: Set<string>;
  meta: boolean;
}

const samplesMax = 64;
const live = (j: JobBook): boolean => { const s = jobStateOf(j.life); return s === JobState.Registered || s === JobState.Active; };
const byId = <T>(key: (t: T) => string) => (a: T, b: T): number => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

/**
 * The controller's decisions as a pure function of its inputs: job
 * allocation from hints, weight maps, node and job lifecycles, autoscaling
 * and the usage ledger. No I/O and no clock but the inputs' times, so a
 * recorded trace replays to the same decisions.
 */
export class ControllerCore {
  readonly #nodes = new Map<string, NodeBook>();
  readonly #jobs = new Map<string, JobBook>();
  #meta: CoreMeta;
  #dirty: Dirty = { nodes: new Set(), jobs: new Set(), meta: false };
  #out: Decision[] = [];
  #now = 0;
  /** Reservations per node (see #reservations); undefined when allocations changed since. */
  #res: Map<string, { bytes: number; bps: number; jobs: number }> | undefined;

  constructor(readonly policy: ScalingPolicy, state?: CoreState) {
    this.#meta = state ? structuredClone(state.meta) : { seq: 0, startedAtMs: 0, lastTickMs: 0, tiers: {} };
    for (const n of state?.nodes ?? []) this.#nodes.set(n.nodeId, n);
    for (const j of state?.jobs ?? []) this.#jobs.set(j.jobId, j);
  }

  /** Applies one input; returns what was decided, in order. */
  apply(input: ControllerInput): Decision[] {
    this.#out = [];
    this.#now = input.atMs;
    switch (input.kind) {
      case "start": this.#start(); break;
      case "tick": this.#tick(); break;
      case "node.heartbeat": this.#heartbeat(input.hb); break;
      case "shard.usage": this.#usage(input.jobs); break;
      case "job.register": this.#register(input); break;
      case "job.renew": this.#jobEvent(input.jobId, { type: "renew", atMs: this.#now }); break;
      case "job.deregister": this.#end(input.jobId, { type: "deregister", atMs: this.#now }); break;
      case "node.retire": this.#drain(input.nodeId, "retired by an operator"); break;
      case "node.migrated": this.#migrated(input.nodeId); break;
    }
    return this.#out;
  }

  // ------------------------------------------------------------ views

  node(nodeId: string): NodeBook | undefined { return this.#nodes.get(nodeId); }
  job(jobId: string): JobBook | undefined { return this.#jobs.get(jobId); }
  nodes(): NodeBook[] { return [...this.#nodes.values()].sort(byId((n) => n.nodeId)); }
  jobs(): JobBook[] { return [...this.#jobs.values()].sort(byId((j) => j.jobId)); }
  liveJobs(): JobBook[] { return this.jobs().filter(live); }
  /** Registered or active: the job's lease holds and its shard serves it. */
  isLive(j: JobBook): boolean { return live(j); }
  get meta(): Readonly<CoreMeta> { return this.#meta; }

  nodeState(n: NodeBook): NodeState { return nodeStateOf(n.life); }
  jobState(j: JobBook): JobState { return jobStateOf(j.life); }

  /** A node's utilisation over the window: CPU and network as fractions of what it offers, capacity as used/total. */
  nodeUtilisation(n: NodeBook): { cpu: number; network: number; capacity: number } {
    const from = this.#now - this.policy.windowMs;
    const recent = n.samples.filter((s) => s.atMs >= from);
    const cores = this.#type(n.tier)?.cpuCores ?? 1;
    const mean = (f: (s: Sample) => number): number => (recent.length ? recent.reduce((a, s) => a + f(s), 0) / recent.length : 0);
    return {
      cpu: mean((s) => s.cpu) / cores,
      network: mean((s) => s.netBps) / n.throughputBps,
      capacity: n.capacityBytes > 0 ? n.usedBytes / n.capacityBytes : 0,
    };
  }

  /** Reserved bytes and throughput on a node, from the live jobs' allocations. */
  reservedOn(nodeId: string): { bytes: number; bps: number; jobs: number } {
    return this.#reservations().get(nodeId) ?? { bytes: 0, bps: 0, jobs: 0 };
  }

  /** Reservations per node, in one pass over the live jobs; kept until an allocation or a job's state changes. */
  #reservations(): Map<string, { bytes: number; bps: number; jobs: number }> {
    if (this.#res) return this.#res;
    const res = new Map<string, { bytes: number; bps: number; jobs: number }>();
    for (const j of this.#jobs.values()) {
      if (!live(j)) continue;
      const seen = new Set<string>();
      for (const p of j.parts) {
        let r = res.get(p.nodeId);
        if (!r) res.set(p.nodeId, (r = { bytes: 0, bps: 0, jobs: 0 }));
        r.bytes += p.bytes;
        r.bps += p.bps;
        if (!seen.has(p.nodeId)) { seen.add(p.nodeId); r.jobs++; }
      }
    }
    this.#res = res;
    return res;
  }

  measurements(tier: Tier): TierMeasurements {
    const serving = this.nodes().filter((n) => n.tier === tier && this.nodeState(n) === NodeState.Active);
    let cpu = 0, net = 0, thr = 0, used = 0, cap = 0, rBytes = 0, rBps = 0;
    for (const n of serving) {
      const u = this.nodeUtilisation(n);
      cpu += u.cpu;
      net += u.network * n.throughputBps;
      thr += n.throughputBps;
      used += n.usedBytes;
      cap += n.capacityBytes;
      const r = this.reservedOn(n.nodeId);
      rBytes += r.bytes;
      rBps += r.bps;
    }
    const k = serving.length;
    return {
      nodes: k,
      cpu: round(k ? cpu / k : 0, 4),
      network: round(thr ? net / thr : 0, 4),
      capacity: round(cap ? used / cap : 0, 4),
      reservedThroughput: round(thr ? rBps / thr : 0, 4),
      reservedCapacity: round(cap ? rBytes / cap : 0, 4),
    };
  }

  takeDirty(): Dirty {
    const d = this.#dirty;
    this.#dirty = { nodes: new Set(), jobs: new Set(), meta: false };
    return d;
  }

  // ------------------------------------------------------------ inputs

  #start(): void {
    this.#meta.startedAtMs = this.#now;
    this.#meta.lastTickMs = Math.max(this.#meta.lastTickMs, this.#now);
    this.#dirty.meta = true;
    // Nodes get a fresh hearing after a restart: silence while the controller was down is not theirs.
    for (const n of this.#nodes.values()) {
      const state = this.nodeState(n);
      if (state === NodeState.Removed) continue;
      n.life = restoreNodeLife(state, { ...n.life.context, lastSeenMs: Math.max(n.life.context.lastSeenMs, this.#now), stateSinceMs: state === NodeState.Provisioning ? this.#now : n.life.context.stateSinceMs });
      n.samples = [];
    }
  }

  #heartbeat(hb: Extract<ControllerInput, { kind: "node.heartbeat" }>["hb"]): void {
    let n = this.#nodes.get(hb.nodeId);
    if (n && n.tier !== hb.tier && this.nodeState(n) !== NodeState.Removed) return; // an id reused for another tier: ignored until the old one is removed
    // A removed node's last heartbeats (sent while it was being retired) do not bring it back;
    // a node of that id heard again later (restarted by hand) joins afresh.
    if (n && this.nodeState(n) === NodeState.Removed && this.#now - n.life.context.stateSinceMs <= this.policy.heartbeatIntervalMs * this.policy.heartbeatsMissedMax) return;
    if (!n || this.nodeState(n) === NodeState.Removed) {
      // A node started outside the controller joins the books.
      const type = this.#type(hb.tier);
      n = {
        nodeId: hb.nodeId, tier: hb.tier, addr: hb.addr, capacityBytes: hb.capacityBytes,
        throughputBps: type?.throughputBps ?? 1e9, launched: false, life: this.#newNodeLife(),
        usedBytes: hb.usedBytes, extents: hb.extents, samples: [], migrateRequested: false,
      };
      this.#nodes.set(n.nodeId, n);
    }
    const before = this.nodeState(n);
    n.addr = hb.addr;
    n.capacityBytes = hb.capacityBytes;
    n.usedBytes = hb.usedBytes;
    n.extents = hb.extents;
    n.samples.push({ atMs: this.#now, cpu: hb.cpu, netBps: hb.bytesInPerSec + hb.bytesOutPerSec });
    if (n.samples.length > samplesMax) n.samples.splice(0, n.samples.length - samplesMax);
    this.#stepNode(n, { type: "heartbeat", atMs: this.#now });
    const after = this.nodeState(n);
    if (before !== after && after === NodeState.Active) {
      this.#emit({ kind: "node.active", atMs: this.#now, nodeId: n.nodeId, tier: n.tier, launched: n.launched });
      this.#pushWeights((j) => j.tier === n!.tier, `node ${n.nodeId} active`);
    }
    // Empty, as reported after the drain had time to reach every shard (writes laid out before it may still land).
    if (after === NodeState.Draining && hb.usedBytes === 0 && hb.extents === 0 && this.#now - n.life.context.stateSinceMs >= 2 * this.policy.heartbeatIntervalMs) {
      this.#remove(n, "drained: holds no live data");
    }
  }

  #usage(reports: Extract<ControllerInput, { kind: "shard.usage" }>["jobs"]): void {
    for (const r of [...reports].sort(byId((x) => x.jobId))) {
      const j = this.#jobs.get(r.jobId);
      if (!j || !live(j)) continue;
      const u = j.usage;
      // A restarted shard counts from zero again.
      const delta = r.requests >= u.requestsSeen ? r.requests - u.requestsSeen : r.requests;
      const dt = (this.#now - u.lastReportMs) / 1000;
      u.requests += delta;
      u.requestsSeen = r.requests;
      u.requestRate = dt > 0 ? delta / dt : u.requestRate;
      u.bytes = r.bytes;
      u.lastReportMs = this.#now;
      this.#dirty.jobs.add(j.jobId);
      if (delta > 0) this.#jobEvent(j.jobId, { type: "used", atMs: this.#now });
      // A job storing more than it asked for gets more room (scale on measured use, not only on hints).
      if (r.bytes > 0.9 * j.demand.capacityBytes) {
        this.#grow(j, r.bytes * 1.5, `stores ${r.bytes} bytes, over 90% of the ${Math.round(j.demand.capacityBytes)} it reserved`);
      }
    }
  }

  #register(input: Extract<ControllerInput, { kind: "job.register" }>): void {
    if (this.#jobs.has(input.jobId)) return;
    const tier = tierFor(input.hints, this.#tiersWithNodes());
    const type = this.#type(tier) ?? this.policy.nodeTypes[0]!;
    const demand = demandFromHints(input.hints, type, this.policy);
    const j: JobBook = {
      jobId: input.jobId, name: input.name, shardId: input.shardId, hints: input.hints, tier, demand,
      registeredAtMs: this.#now, endedAtMs: null, life: newJobLife(this.#now, input.leaseMs ?? this.policy.leaseMs),
      parts: [], weights: [],
      usage: { bytes: 0, byteSeconds: 0, reservedBpsSeconds: 0, reservedByteSeconds: 0, requests: 0, requestsSeen: 0, requestRate: 0, lastReportMs: this.#now },
    };
    this.#jobs.set(j.jobId, j);
    this.#dirty.jobs.add(j.jobId);
    const launches: Decision[] = [];
    j.parts = this.#place(demand, tier, `job ${j.jobId} (${j.name}) needs more than the ${tier} nodes have spare`, launches);
    this.#res = undefined;
    j.weights = this.#weightsFor(j);
    this.#emit({ kind: "job.registered", atMs: this.#now, jobId: j.jobId, name: j.name, tier, demand: roundDemand(demand), weights: j.weights });
    for (const d of launches) this.#emit(d);
    this.#forgetEndedJobs();
  }

  #end(jobId: string, event: JobLifeEvent): void {
    const j = this.#jobs.get(jobId);
    if (!j || !live(j)) return;
    this.#stepJob(j, event);
    if (live(j)) return;
    j.endedAtMs = this.#now;
    j.parts = [];
    this.#res = undefined;
    j.weights = [];
    if (this.jobState(j) === JobState.Expired) {
      this.#emit({ kind: "job.expired", atMs: this.#now, jobId, shardId: j.shardId, leaseExpiresAtMs: j.life.context.leaseExpiresAtMs });
    } else {
      this.#emit({ kind: "job.deregistered", atMs: this.#now, jobId });
    }
  }

  #jobEvent(jobId: string, event: JobLifeEvent): void {
    const j = this.#jobs.get(jobId);
    if (!j || !live(j)) return;
    const before = this.jobState(j);
    this.#stepJob(j, event);
    if (before === JobState.Registered && this.jobState(j) === JobState.Active) this.#emit({ kind: "job.active", atMs: this.#now, jobId });
  }

  #migrated(nodeId: string): void {
    const n = this.#nodes.get(nodeId);
    if (n && this.nodeState(n) === NodeState.Draining) this.#remove(n, "live extents moved to other nodes");
  }

  // ------------------------------------------------------------ the periodic pass

  #tick(): void {
    const dt = Math.max(0, this.#now - this.#meta.lastTickMs) / 1000;
    this.#meta.lastTickMs = this.#now;
    this.#dirty.meta = true;
    for (const j of this.jobs()) {
      if (!live(j)) continue;
      j.usage.byteSeconds += j.usage.bytes * dt;
      j.usage.reservedBpsSeconds += j.demand.throughputBps * dt;
      j.usage.reservedByteSeconds += j.demand.capacityBytes * dt;
      this.#dirty.jobs.add(j.jobId);
    }
    const judging = this.#now - this.#meta.startedAtMs >= this.policy.startupGraceMs;
    for (const n of this.nodes()) {
      const before = this.nodeState(n);
      if (before === NodeState.Removed) {
        // Removed nodes leave memory after a while (their rows stay in the store until pruned).
        if (this.#now - n.life.context.stateSinceMs > this.policy.failedRetentionMs) this.#nodes.delete(n.nodeId);
        continue;
      }
      if (judging) this.#stepNode(n, { type: "tick", atMs: this.#now });
      const after = this.nodeState(n);
      if (before !== after && after === NodeState.Failed) {
        if (before === NodeState.Provisioning) {
          this.#remove(n, "launched but never reported");
          continue;
        }
        this.#emit({ kind: "node.failed", atMs: this.#now, nodeId: n.nodeId, tier: n.tier, lastSeenMs: n.life.context.lastSeenMs });
        this.#replaceParts(n.nodeId, `node ${n.nodeId} failed`);
      } else if (after === NodeState.Failed && this.#now - n.life.context.stateSinceMs > this.policy.failedRetentionMs) {
        this.#remove(n, "failed and not back");
      } else if (after === NodeState.Draining && !n.migrateRequested && this.#now >= n.life.context.drainDeadlineMs) {
        n.migrateRequested = true;
        this.#dirty.nodes.add(n.nodeId);
        this.#emit({ kind: "node.migrate", atMs: this.#now, nodeId: n.nodeId, usedBytes: n.usedBytes });
      }
    }
    for (const j of this.jobs()) if (live(j)) this.#end(j.jobId, { type: "tick", atMs: this.#now });
    if (!judging) return;
    for (const type of this.policy.nodeTypes) this.#keepMinimum(type);
    if (this.policy.scaling) for (const type of this.policy.nodeTypes) this.#autoscale(type);
  }

  #keepMinimum(type: NodeType): void {
    const counted = this.#tierNodes(type.tier, [NodeState.Active, NodeState.Provisioning]).length;
    for (let i = counted; i < type.minNodes; i++) this.#emit(this.#launch(type.tier, `${type.tier} has ${counted} nodes, below its minimum of ${type.minNodes}`));
  }

  #autoscale(type: NodeType): void {
    const tier = type.tier;
    const mem = this.#tierMemory(tier);
    const m = this.measurements(tier);
    if (m.nodes === 0) return;
    const { bandLow, bandHigh } = this.policy;
    const mid = (bandLow + bandHigh) / 2;
    const hottest = Math.max(m.cpu, m.network, m.capacity);
    const above = hottest > bandHigh;
    const below = Math.max(m.cpu, m.network, m.capacity, m.reservedCapacity, m.reservedThroughput) < bandLow;
    mem.aboveSinceMs = above ? (mem.aboveSinceMs ?? this.#now) : null;
    mem.belowSinceMs = below ? (mem.belowSinceMs ?? this.#now) : null;
    if (this.#now - mem.lastScaledMs < this.policy.cooldownMs) return;
    // One change at a time: wait for launched nodes to report and draining ones to go.
    if (this.#tierNodes(tier, [NodeState.Provisioning, NodeState.Draining]).length > 0) return;
    const counted = m.nodes;
    if (mem.aboveSinceMs !== null && this.#now - mem.aboveSinceMs >= this.policy.sustainMs) {
      const room = type.maxNodes - counted;
      if (room <= 0) return;
      const want = Math.min(room, Math.max(1, Math.ceil((counted * hottest) / mid) - counted));
      const dim = hottest === m.capacity ? "capacity" : hottest === m.network ? "network" : "CPU";
      const reason = `${dim} at ${pct(hottest)} above ${pct(bandHigh)} for ${Math.round((this.#now - mem.aboveSinceMs) / 1000)} s`;
      mem.lastScaledMs = this.#now;
      mem.aboveSinceMs = null;
      this.#dirty.meta = true;
      this.#emit({ kind: "scale.out", atMs: this.#now, tier, reason, measurements: m, launch: want });
      const launches = Array.from({ length: want }, () => this.#launch(tier, reason));
      for (const d of launches) this.#emit(d);
      if (dim !== "capacity") this.#giveToBusiest(tier, launches, type);
      return;
    }
    if (mem.belowSinceMs !== null && this.#now - mem.belowSinceMs >= this.policy.sustainMs && counted > type.minNodes) {
      // Only if the rest stays under the middle of the band without it.
      const after = (x: number): number => (x * counted) / (counted - 1);
      if (Math.max(m.cpu, m.network, m.capacity, m.reservedCapacity, m.reservedThroughput) * counted / (counted - 1) > mid) return;
      const candidate = this.#tierNodes(tier, [NodeState.Active])
        .filter((n) => this.reservedOn(n.nodeId).jobs === 0)
        .sort((a, b) => Number(b.launched) - Number(a.launched) || a.usedBytes - b.usedBytes || (a.nodeId < b.nodeId ? 1 : -1))[0];
      if (!candidate) return;
      const reason = `every dimension under ${pct(bandLow)} for ${Math.round((this.#now - mem.belowSinceMs) / 1000)} s; ${counted - 1} node${counted === 2 ? "" : "s"} keep${counted === 2 ? "s" : ""} it under ${pct(after(Math.max(m.cpu, m.network, m.capacity)))}`;
      mem.lastScaledMs = this.#now;
      mem.belowSinceMs = null;
      this.#dirty.meta = true;
      this.#emit({ kind: "scale.in", atMs: this.#now, tier, reason, measurements: m, nodeId: candidate.nodeId });
      this.#drain(candidate.nodeId, "scale-in");
    }
  }

  /** Load scale-out: the job with the highest request rate on the tier takes the new nodes. */
  #giveToBusiest(tier: Tier, launches: Decision[], type: NodeType): void {
    const busiest = this.liveJobs().filter((j) => j.tier === tier && j.usage.requestRate > 0)
      .sort((a, b) => b.usage.requestRate - a.usage.requestRate || (a.jobId < b.jobId ? -1 : 1))[0];
    if (!busiest) return;
    const ratio = busiest.demand.capacityBytes / Math.max(1, busiest.demand.throughputBps);
    for (const d of launches) {
      if (d.kind !== "node.launch") continue;
      busiest.parts.push({ nodeId: d.nodeId, bps: type.throughputBps, bytes: Math.min(type.capacityBytes, type.throughputBps * ratio) });
    }
    this.#res = undefined;
    busiest.demand = { ...busiest.demand, throughputBps: busiest.demand.throughputBps + launches.length * type.throughputBps };
    this.#dirty.jobs.add(busiest.jobId);
    this.#emit({ kind: "job.grown", atMs: this.#now, jobId: busiest.jobId, demand: roundDemand(busiest.demand), reason: `busiest job on ${tier} at ${Math.round(busiest.usage.requestRate)} requests/s` });
  }

  // ------------------------------------------------------------ placement

  /** Reserves a demand on a tier's nodes; launches nodes for what does not fit (into `launches`). */
  #place(demand: Demand, tier: Tier, reason: string, launches: Decision[]): AllocationPart[] {
    const type = this.#type(tier);
    const slots: NodeSlot[] = this.#tierNodes(tier, [NodeState.Active, NodeState.Provisioning]).map((n) => {
      const r = this.reservedOn(n.nodeId);
      return { nodeId: n.nodeId, capacityBytes: n.capacityBytes, throughputBps: n.throughputBps, reservedBytes: r.bytes, reservedBps: r.bps, usedBytes: n.usedBytes };
    });
    const { parts, remainder } = allocate(demand, slots);
    if (!type) return parts;
    const room = type.maxNodes - this.#tierNodes(tier, [NodeState.Active, NodeState.Provisioning, NodeState.Draining]).length;
    const count = Math.min(room, nodesFor(remainder, type));
    if (count <= 0) return parts;
    const fresh: NodeSlot[] = [];
    for (let i = 0; i < count; i++) {
      const d = this.#launch(tier, reason);
      launches.push(d);
      fresh.push({ nodeId: d.nodeId, capacityBytes: type.capacityBytes, throughputBps: type.throughputBps, reservedBytes: 0, reservedBps: 0, usedBytes: 0 });
    }
    return [...parts, ...allocate(remainder, fresh).parts];
  }

  /** Adds capacity to a live job's reservation (launching nodes when it does not fit). */
  #grow(j: JobBook, capacityBytes: number, reason: string): void {
    const extra = capacityBytes - j.demand.capacityBytes;
    if (extra <= 0) return;
    const launches: Decision[] = [];
    const more = this.#place({ capacityBytes: extra, throughputBps: 0, bound: "capacity" }, j.tier, `job ${j.jobId} grew`, launches);
    j.demand = { ...j.demand, capacityBytes };
    j.parts = [...j.parts, ...more];
    this.#res = undefined;
    this.#dirty.jobs.add(j.jobId);
    this.#emit({ kind: "job.grown", atMs: this.#now, jobId: j.jobId, demand: roundDemand(j.demand), reason });
    for (const d of launches) this.#emit(d);
    this.#pushWeights((x) => x.jobId === j.jobId, reason);
  }

  /** Moves live jobs' reservations off a node (failed or draining) onto others. */
  #replaceParts(nodeId: string, reason: string): void {
    for (const j of this.liveJobs()) {
      const lost = j.parts.filter((p) => p.nodeId === nodeId);
      const hadWeight = j.weights.some((w) => w.nodeId === nodeId);
      if (lost.length === 0 && !hadWeight) continue;
      if (lost.length > 0) {
        j.parts = j.parts.filter((p) => p.nodeId !== nodeId);
        this.#res = undefined;
        const bytes = lost.reduce((s, p) => s + p.bytes, 0);
        const bps = lost.reduce((s, p) => s + p.bps, 0);
        const launches: Decision[] = [];
        j.parts.push(...this.#place({ capacityBytes: bytes, throughputBps: bps, bound: j.demand.bound }, j.tier, `${reason}: job ${j.jobId}'s reservation moves`, launches));
        this.#res = undefined;
        for (const d of launches) this.#emit(d);
      }
      this.#dirty.jobs.add(j.jobId);
      this.#pushWeights((x) => x.jobId === j.jobId, reason);
    }
  }

  /** Recomputes the weight maps of the matching live jobs; emits the ones that changed. */
  #pushWeights(match: (j: JobBook) => boolean, reason: string): void {
    for (const j of this.liveJobs()) {
      if (!match(j)) continue;
      const w = this.#weightsFor(j);
      if (sameWeights(w, j.weights)) continue;
      j.weights = w;
      this.#dirty.jobs.add(j.jobId);
      this.#emit({ kind: "job.weights", atMs: this.#now, jobId: j.jobId, shardId: j.shardId, weights: w, reason });
    }
  }

  /**
   * A job's weights over its reservations on nodes that take writes now; when
   * none can yet (its nodes are still starting), by free space over the tier's
   * active nodes, then any tier's, so that it can write at once.
   */
  #weightsFor(j: JobBook): Weight[] {
    const writable = new Set(this.nodes().filter((n) => this.nodeState(n) === NodeState.Active).map((n) => n.nodeId));
    const w = weightsFromParts(j.parts, writable);
    if (w.length > 0) return w;
    const active = this.nodes().filter((n) => this.nodeState(n) === NodeState.Active);
    const sameTier = freeSpaceWeights(active.filter((n) => n.tier === j.tier));
    return sameTier.length > 0 ? sameTier : freeSpaceWeights(active);
  }

  // ------------------------------------------------------------ node lifecycle

  #launch(tier: Tier, reason: string): Extract<Decision, { kind: "node.launch" }> {
    this.#meta.seq += 1;
    this.#dirty.meta = true;
    const nodeId = `${tier}-auto-${this.#meta.seq}`;
    const type = this.#type(tier);
    this.#nodes.set(nodeId, {
      nodeId, tier, addr: "", capacityBytes: type?.capacityBytes ?? 0, throughputBps: type?.throughputBps ?? 1e9, launched: true,
      life: this.#newNodeLife(), usedBytes: 0, extents: 0, samples: [], migrateRequested: false,
    });
    this.#dirty.nodes.add(nodeId);
    this.#tierMemory(tier).lastScaledMs = this.#now;
    return { kind: "node.launch", atMs: this.#now, nodeId, tier, reason };
  }

  #drain(nodeId: string, reason: string): void {
    const n = this.#nodes.get(nodeId);
    if (!n || this.nodeState(n) !== NodeState.Active) return;
    this.#stepNode(n, { type: "drain", atMs: this.#now, deadlineMs: this.#now + this.policy.drainDeadlineMs });
    this.#emit({ kind: "node.draining", atMs: this.#now, nodeId, tier: n.tier, reason });
    this.#replaceParts(nodeId, `node ${nodeId} draining`);
  }

  #remove(n: NodeBook, reason: string): void {
    this.#stepNode(n, { type: "remove", atMs: this.#now });
    if (this.nodeState(n) !== NodeState.Removed) this.#stepNode(n, { type: "empty", atMs: this.#now });
    if (this.nodeState(n) !== NodeState.Removed) return;
    this.#emit({ kind: "node.removed", atMs: this.#now, nodeId: n.nodeId, tier: n.tier, reason });
    this.#replaceParts(n.nodeId, `node ${n.nodeId} removed`);
  }

  // ------------------------------------------------------------ helpers

  #stepNode(n: NodeBook, e: NodeLifeEvent): void {
    const next = stepNode(n.life, e);
    if (next !== n.life) { n.life = next; this.#dirty.nodes.add(n.nodeId); }
  }

  #stepJob(j: JobBook, e: JobLifeEvent): void {
    const next = stepJob(j.life, e);
    if (next === j.life) return;
    if (next.value !== j.life.value) this.#res = undefined;
    j.life = next;
    this.#dirty.jobs.add(j.jobId);
  }

  #newNodeLife(): NodeSnapshot {
    return newNodeLife({
      silenceMs: this.policy.heartbeatIntervalMs * this.policy.heartbeatsMissedMax,
      launchTimeoutMs: this.policy.launchTimeoutMs,
    }, this.#now);
  }

  #type(tier: Tier): NodeType | undefined { return nodeTypeOf(this.policy, tier); }

  #tierNodes(tier: Tier, states: readonly NodeState[]): NodeBook[] {
    return this.nodes().filter((n) => n.tier === tier && states.includes(this.nodeState(n)));
  }

  #tiersWithNodes(): Set<Tier> {
    return new Set(this.nodes().filter((n) => {
      const s = this.nodeState(n);
      return s === NodeState.Active || s === NodeState.Provisioning;
    }).map((n) => n.tier));
  }

  #tierMemory(tier: Tier): TierMemory {
    let m = this.#meta.tiers[tier];
    if (!m) {
      m = { aboveSinceMs: null, belowSinceMs: null, lastScaledMs: Number.MIN_SAFE_INTEGER };
      this.#meta.tiers[tier] = m;
    }
    return m;
  }

  /** Ended jobs past the retention count leave memory (their rows stay in the store). */
  #forgetEndedJobs(): void {
    const ended = [...this.#jobs.values()].filter((j) => !live(j));
    if (ended.length <= this.policy.endedJobsRetained) return;
    ended.sort((a, b) => (a.endedAtMs ?? 0) - (b.endedAtMs ?? 0));
    for (const j of ended.slice(0, ended.length - this.policy.endedJobsRetained)) this.#jobs.delete(j.jobId);
  }

  #emit(d: Decision): void {
    this.#out.push(d);
  }
}

function sameWeights(a: readonly Weight[], b: readonly Weight[]): boolean {
  return a.length === b.length && a.every((w, i) => w.nodeId === b[i]!.nodeId && w.weight === b[i]!.weight);
}

function roundDemand(d: Demand): Demand {
  return { throughputBps: Math.round(d.throughputBps), capacityBytes: Math.round(d.capacityBytes), bound: d.bound };
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

/** Restores a snapshot of stored fields; for the store. */
export { restoreJobLife, restoreNodeLife };
