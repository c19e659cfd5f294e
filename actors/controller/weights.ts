import { Tier, type JobHints, type Weight } from "../../schemas/operations";

/** What the controller knows of a node when it builds a weight map. */
export interface NodeCapacity {
  readonly nodeId: string;
  readonly tier: Tier;
  readonly capacityBytes: number;
  readonly usedBytes: number;
  readonly live: boolean;
}

/** Latency-sensitive jobs go to DRAM; others to NVMe when the cluster has any, else DRAM. */
export function chooseTier(hints: JobHints, nodes: readonly NodeCapacity[]): Tier {
  if (hints.latencySensitive) return Tier.Dram;
  return nodes.some((n) => n.live && n.tier === Tier.Nvme) ? Tier.Nvme : Tier.Dram;
}

/**
 * A weight map over the live nodes of a tier, in proportion to their free
 * bytes (a node with nothing free gets weight 0). Weights sum to 1, or the
 * map is empty when the tier has no live node with room.
 *
 * @example
 *   freeSpaceWeights([{nodeId:"a", tier:"dram", capacityBytes:100, usedBytes:0, live:true},
 *                     {nodeId:"b", tier:"dram", capacityBytes:100, usedBytes:50, live:true}], "dram")
 *   // → [{nodeId:"a", weight: 2/3}, {nodeId:"b", weight: 1/3}]
 */
export function freeSpaceWeights(nodes: readonly NodeCapacity[], tier: Tier): Weight[] {
  const candidates = nodes
    .filter((n) => n.live && n.tier === tier)
    .map((n) => ({ nodeId: n.nodeId, free: Math.max(0, n.capacityBytes - n.usedBytes) }))
    .filter((n) => n.free > 0)
    .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  const total = candidates.reduce((s, n) => s + n.free, 0);
  if (total <= 0) return [];
  return candidates.map((n) => ({ nodeId: n.nodeId, weight: n.free / total }));
}
