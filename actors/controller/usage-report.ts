import type { NodeInfo } from "../../schemas/operations";
import { demandInNodes } from "./allocation";
import type { ControllerCore, JobBook } from "./core";
import { NodeState, type JobState } from "./machines";
import { nodeTypeOf, type ScalingPolicy } from "./policy";

/**
 * What a job used and what it costs: reserved node-hours (the binding
 * dimension of its reservation over time) at the tier's node-hour price —
 * the pay-what-you-use model — and, for comparison, node-hours of bytes
 * actually stored.
 */
export function usageReport(j: JobBook, state: JobState, policy: ScalingPolicy) {
  const type = nodeTypeOf(policy, j.tier);
  const u = j.usage;
  const capacity = type?.capacityBytes ?? 1;
  const throughput = type?.throughputBps ?? 1;
  const reservedNodeHours = Math.max(u.reservedByteSeconds / capacity, u.reservedBpsSeconds / throughput) / 3600;
  const usedNodeHours = u.byteSeconds / capacity / 3600;
  const price = type?.pricePerHour ?? 0;
  return {
    jobId: j.jobId, name: j.name, tier: j.tier, state, registeredAtMs: j.registeredAtMs, endedAtMs: j.endedAtMs,
    demand: { ...j.demand, nodes: type ? demandInNodes(j.demand, type) : 0 },
    bytes: u.bytes, byteSeconds: u.byteSeconds, reservedBpsSeconds: u.reservedBpsSeconds, reservedByteSeconds: u.reservedByteSeconds, requests: u.requests,
    reservedNodeHours, usedNodeHours, pricePerNodeHour: price, cost: reservedNodeHours * price,
  };
}

/** Every node not removed, as operators see it: state, use, utilisation against the band, reservations and the jobs weighting it. */
export function nodeInfos(core: ControllerCore): NodeInfo[] {
  const weights = new Map<string, Array<{ jobId: string; weight: number }>>();
  for (const j of core.liveJobs()) {
    for (const w of j.weights) {
      let list = weights.get(w.nodeId);
      if (!list) weights.set(w.nodeId, (list = []));
      list.push({ jobId: j.jobId, weight: w.weight });
    }
  }
  return core.nodes().filter((n) => core.nodeState(n) !== NodeState.Removed).map((n) => {
    const last = n.samples[n.samples.length - 1];
    const u = core.nodeUtilisation(n);
    const r = core.reservedOn(n.nodeId);
    return {
      nodeId: n.nodeId, tier: n.tier, addr: n.addr, state: core.nodeState(n), launched: n.launched,
      capacityBytes: n.capacityBytes, usedBytes: n.usedBytes, extents: n.extents,
      cpu: last?.cpu ?? 0, bytesInPerSec: last?.netBps ?? 0, bytesOutPerSec: 0,
      lastSeenMs: n.life.context.lastSeenMs,
      utilisation: { cpu: round4(u.cpu), network: round4(u.network), capacity: round4(u.capacity) },
      reservedBytes: Math.round(r.bytes), reservedBps: Math.round(r.bps),
      jobWeights: weights.get(n.nodeId) ?? [],
    };
  });
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
