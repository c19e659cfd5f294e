import { Tier } from "../../schemas/operations";
import { OffsetClock, type ManualClock } from "../../lib/clock";
import type { Prng } from "../../lib/prng";
import type { EventSink } from "../../bus/bus";
import { Controller, type ControllerConfig } from "../../actors/controller/controller";
import { ControllerStore } from "../../actors/controller/store";
import { defaultNodeTypes } from "../../actors/controller/policy";
import type { NodeLaunchSpec, Orchestrator } from "../../actors/orchestrator";
import { MetadataShard } from "../../actors/metadata/shard";
import { DramStore } from "../../actors/storage/dram-store";
import { StorageNode } from "../../actors/storage/storage-node";
import { PocketClient } from "../../client/pocket";
import type { SimBus, SimNetwork } from "./network";

/** Decisions kept per run (the count of late ones is what the invariants read). */
const eventsKeptMax = 10_000;

export const simSecret = "simulation-secret-0123456789abcdef";

/** Sizes small enough that a few puts fill a node and a put spans several extents. */
export const SimLimits = {
  nodeCapacityBytes: 256 * 1024,
  extentBytesMax: 4096,
  inlineBytesMax: 512,
  heartbeatIntervalMs: 1_000,
  leaseMs: 15_000,
} as const;

/** A DRAM store that can have a stored byte flipped under it (a fault only tests inject: readers must catch it). */
export class SimDramStore extends DramStore {
  readonly #recent: Uint8Array[] = [];

  override async write(jobId: string, extentId: string, bytes: Uint8Array): Promise<void> {
    await super.write(jobId, extentId, bytes);
    // The stored copy itself (read returns a view of it), the last few only.
    this.#recent.push((await this.read(jobId, extentId, 0, undefined)).bytes);
    if (this.#recent.length > 64) this.#recent.shift();
  }

  /** Flips the first byte of the most recently written extent. */
  corruptOne(): void {
    const b = this.#recent[this.#recent.length - 1];
    if (b && b.byteLength > 0) b[0] = b[0]! ^ 0xff;
  }
}

/** One decision as the sim recorded it, with which controller incarnation made it and whether it had been stopped. */
export interface RecordedEvent {
  readonly incarnation: number;
  readonly kind: string;
  readonly afterStop: boolean;
}

interface SimNode { readonly node: StorageNode; readonly bus: SimBus; readonly clock: OffsetClock }
interface SimShard { shard: MetadataShard; bus: SimBus; readonly clock: OffsetClock; crashes: number }

/**
 * A whole cluster in one process on a simulated network and clock: the real
 * controller, shards and storage nodes (their shells and logic, over SimBus
 * instead of NATS) and clients (the real SDK over a bus). Crashes, restarts
 * and clock jumps are methods the run calls as its seed says.
 */
export class SimCluster {
  readonly nodes = new Map<string, SimNode>();
  /** Nodes that died (and when): bytes on them are gone. */
  readonly deadNodes = new Map<string, number>();
  readonly shards = new Map<string, SimShard>();
  readonly events: RecordedEvent[] = [];
  /** The first decision recorded from a stopped controller incarnation, if any. */
  lateEvent: RecordedEvent | undefined;
  controller: Controller | undefined;
  #controllerBus: SimBus | undefined;
  readonly controllerClock: OffsetClock;
  #incarnation = 0;
  #store: ControllerStore | undefined;
  readonly driver: PocketClient;

  constructor(readonly net: SimNetwork, readonly clock: ManualClock, private readonly rng: Prng, readonly shardCount: number, readonly minNodes: number) {
    this.controllerClock = new OffsetClock(clock);
    this.driver = PocketClient.over(net.bus("driver"), { requestTimeoutMs: 3_000 });
  }

  async start(): Promise<void> {
    this.#store = await ControllerStore.open(":memory:");
    for (let i = 0; i < this.shardCount; i++) this.#startShard(`s${i}`, new OffsetClock(this.clock));
    await this.startController();
  }

  /** Starts a controller incarnation over the store the last one left. */
  async startController(): Promise<void> {
    const incarnation = ++this.#incarnation;
    let stopped = false;
    const events: EventSink = {
      event: (kind) => {
        const e = { incarnation, kind, afterStop: stopped };
        if (this.events.length < eventsKeptMax) this.events.push(e);
        if (stopped) this.lateEvent ??= e;
      },
      input: () => undefined,
    };
    const bus = this.net.bus("controller");
    this.#controllerBus = bus;
    const config: ControllerConfig = {
      natsUrl: "", secret: simSecret, jobTokenTtlMs: 3600_000,
      policy: {
        nodeTypes: defaultNodeTypes(SimLimits.nodeCapacityBytes).map((t) => (t.tier === Tier.Dram ? { ...t, minNodes: this.minNodes, maxNodes: 6 } : t)),
        leaseMs: SimLimits.leaseMs, drainDeadlineMs: 10_000, launchTimeoutMs: 10_000, failedRetentionMs: 30_000, startupGraceMs: 1_000,
      },
      heartbeatIntervalMs: SimLimits.heartbeatIntervalMs,
    };
    const c = await Controller.over(config, {
      bus, clock: this.controllerClock, entropy: this.rng, events, store: this.#store!, orchestrator: this.#orchestrator(), ownsStore: false,
    });
    const stop = c.stop.bind(c);
    c.stop = async () => { await stop(); stopped = true; };
    this.controller = c;
  }

  /**
   * The controller process dies and comes back `afterMs` later from its
   * store. One controller at a time: a restart while one is pending replaces
   * it (two live incarnations would be two leaders, which needs the leader
   * lease this cluster does not have yet).
   */
  async restartController(afterMs: number): Promise<void> {
    const generation = ++this.#restarts;
    await this.crashController();
    this.clock.after(afterMs, () => {
      if (generation !== this.#restarts) return;
      void this.startController().catch((e: unknown) => { this.startError ??= e; });
    });
  }

  #restarts = 0;
  /** A controller that failed to start (the run reports it). */
  startError: unknown;

  /** The controller process dies: no graceful stop, its bus goes at once. */
  async crashController(): Promise<void> {
    const c = this.controller;
    if (!c) return;
    this.controller = undefined;
    this.net.kill(this.#controllerBus!);
    await c.stop();
  }

  #orchestrator(): Orchestrator {
    return {
      kind: "local",
      launch: async (spec: NodeLaunchSpec) => {
        // A node comes up a little later, as a process would.
        this.clock.after(200 + this.rng.below(800), () => this.startNode(spec.nodeId, spec.capacityBytes));
      },
      remove: async (nodeId: string) => { await this.stopNode(nodeId, "removed"); },
      close: async () => undefined,
    };
  }

  startNode(nodeId: string, capacityBytes: number = SimLimits.nodeCapacityBytes): void {
    if (this.nodes.has(nodeId) || this.deadNodes.has(nodeId)) return;
    const bus = this.net.bus(nodeId);
    const clock = new OffsetClock(this.clock);
    const node = StorageNode.over(
      { nodeId, tier: Tier.Dram, capacityBytes, natsUrl: "", secret: simSecret, extentBytesMax: SimLimits.extentBytesMax, heartbeatIntervalMs: SimLimits.heartbeatIntervalMs },
      { bus, clock }, new SimDramStore(capacityBytes),
    );
    this.nodes.set(nodeId, { node, bus, clock });
  }

  /** A node stops: crashed (its bytes are gone) or removed by the controller. */
  async stopNode(nodeId: string, why: "crashed" | "removed"): Promise<void> {
    const n = this.nodes.get(nodeId);
    if (!n) return;
    this.nodes.delete(nodeId);
    if (why === "crashed") this.deadNodes.set(nodeId, this.clock.now());
    this.net.kill(n.bus);
    await n.node.stop();
  }

  #startShard(shardId: string, clock: OffsetClock, crashes = 0): void {
    const bus = this.net.bus(shardId);
    const shard = MetadataShard.over(
      { shardId, natsUrl: "", secret: simSecret, inlineBytesMax: SimLimits.inlineBytesMax, extentBytesMax: SimLimits.extentBytesMax, heartbeatIntervalMs: SimLimits.heartbeatIntervalMs, pendingWriteTtlMs: 20_000 },
      { bus, clock, entropy: this.rng },
    );
    this.shards.set(shardId, { shard, bus, clock, crashes });
  }

  /** A shard dies and comes back empty (namespaces are in memory): its jobs' objects are gone. */
  async restartShard(shardId: string): Promise<void> {
    const s = this.shards.get(shardId);
    if (!s) return;
    this.net.kill(s.bus);
    await s.shard.stop();
    this.#startShard(shardId, s.clock, s.crashes + 1);
  }

  /** Every actor's own clock, by host. */
  clockOf(host: string): OffsetClock | undefined {
    if (host === "controller") return this.controllerClock;
    return this.nodes.get(host)?.clock ?? this.shards.get(host)?.clock;
  }

  async stop(): Promise<void> {
    await this.crashController();
    for (const id of [...this.nodes.keys()]) await this.stopNode(id, "removed");
    for (const s of this.shards.values()) { this.net.kill(s.bus); await s.shard.stop(); }
    await this.#store?.close();
  }
}
