import type { NatsConnection } from "@nats-io/transport-node";
import { ControllerOps, NodeOps } from "../../schemas/operations";
import { NatsCaller } from "../../bus/nats-rpc";
import { Subjects } from "../../bus/subjects";

/** Asks every node the controller knows for its stats, now (not from heartbeats). */
export async function nodeStats(nc: NatsConnection): Promise<Array<{ nodeId: string; usedBytes: number; extents: number; jobs: number; latencyCriticalJobs?: number }>> {
  const nodes = (await new NatsCaller(nc, Subjects.controller).call(ControllerOps.nodeList, {})).reply.nodes;
  const out = [];
  for (const n of nodes.filter((x) => x.state === "active")) {
    out.push((await new NatsCaller(nc, Subjects.node(n.nodeId)).call(NodeOps.stats, {})).reply);
  }
  return out;
}

export async function usedBytes(nc: NatsConnection): Promise<number> {
  return (await nodeStats(nc)).reduce((s, n) => s + n.usedBytes, 0);
}
