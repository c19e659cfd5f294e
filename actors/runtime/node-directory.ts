import { NodeHeartbeatSchema, type NodeHeartbeat } from "../../schemas/operations";
import type { Bus, Closable } from "../../bus/bus";
import { Subjects } from "../../bus/subjects";
import type { Clock } from "../../lib/clock";
import { Defaults } from "./config";
import { logger } from "../../lib/log";

export interface NodeRecord {
  readonly heartbeat: NodeHeartbeat;
  readonly lastSeenMs: number;
  /** Bytes placed on the node by this process since its last heartbeat (not yet in `usedBytes`). */
  placedBytes: number;
}

/**
 * What one process knows of the storage nodes, from their heartbeats.
 * A node not heard for `heartbeatsMissedMax` intervals is not live.
 */
export class NodeDirectory {
  readonly #nodes = new Map<string, NodeRecord>();
  readonly #log = logger("node-directory");
  readonly #listeners: Array<(hb: NodeHeartbeat, isNew: boolean) => void> = [];
  #sub: Closable | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly heartbeatIntervalMs: number = Defaults.heartbeatIntervalMs,
    private readonly heartbeatsMissedMax: number = Defaults.heartbeatsMissedMax,
    private readonly nodesMax: number = Defaults.clusterMembersMax,
  ) {}

  /** Follows heartbeats on the bus. */
  follow(bus: Bus): void {
    this.#sub = bus.subscribe(Subjects.nodeHeartbeatAll, NodeHeartbeatSchema, this.#log, (hb) => this.record(hb), {
      subjectOf: (hb) => Subjects.nodeHeartbeat(hb.nodeId),
    });
  }

  onHeartbeat(listener: (hb: NodeHeartbeat, isNew: boolean) => void): void {
    this.#listeners.push(listener);
  }

  /** Records a heartbeat. Past `nodesMax` distinct nodes, new ones are ignored. */
  record(hb: NodeHeartbeat): void {
    const isNew = !this.#nodes.has(hb.nodeId);
    if (isNew && this.#nodes.size >= this.nodesMax) {
      this.#log.warn("too many storage nodes; heartbeat ignored", { nodeId: hb.nodeId, nodesMax: this.nodesMax });
      return;
    }
    this.#nodes.set(hb.nodeId, { heartbeat: hb, lastSeenMs: this.clock.now(), placedBytes: 0 });
    for (const l of this.#listeners) l(hb, isNew);
  }

  get(nodeId: string): NodeRecord | undefined {
    return this.#nodes.get(nodeId);
  }

  all(): NodeRecord[] {
    return [...this.#nodes.values()];
  }

  isLive(nodeId: string): boolean {
    const r = this.#nodes.get(nodeId);
    return r !== undefined && this.clock.now() - r.lastSeenMs <= this.heartbeatIntervalMs * this.heartbeatsMissedMax;
  }

  /** Free bytes as last reported, less what this process placed since. */
  freeBytes(nodeId: string): number {
    const r = this.#nodes.get(nodeId);
    if (!r) return 0;
    return r.heartbeat.capacityBytes - r.heartbeat.usedBytes - r.placedBytes;
  }

  /**
   * Called as a free is sent to `nodeId`: what to call with the bytes it
   * freed. Those count as free at once if no heartbeat came in meanwhile (one
   * that did may already count them), so a node written and freed at a high
   * rate is not taken as full between heartbeats.
   */
  freedSince(nodeId: string): (freedBytes: number) => void {
    const before = this.#nodes.get(nodeId);
    return (freedBytes) => {
      if (before !== undefined && this.#nodes.get(nodeId) === before) before.placedBytes -= freedBytes;
    };
  }

  forget(nodeId: string): void {
    this.#nodes.delete(nodeId);
  }

  stop(): void {
    this.#sub?.close();
  }
}
