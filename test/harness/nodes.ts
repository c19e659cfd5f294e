import type { NatsConnection } from "@nats-io/transport-node";
import { ControllerOps, NodeOps } from "../../schemas/operations";
import { ControllerCaller, NatsCaller } from "../../bus/nats-rpc";
import { Subjects } from "../../bus/subjects";
import type { PocketClient } from "../../client/pocket";

/** An operator's client (lists) and a component's connection (node stats are cluster-only). */
export interface Inspector {
  readonly client: PocketClient;
  readonly inspect: NatsConnection;
}

/** Asks every node the controller knows for its stats, now (not from heartbeats). */
export async function nodeStats(t: Inspector): Promise<Array<{ nodeId: string; usedBytes: number; extents: number; jobs: number; latencyCriticalJobs?: number }>> {
  const nodes = (await new ControllerCaller(t.client.nc).call(ControllerOps.nodeList, {})).reply.nodes;
  const out = [];
  for (const n of nodes.filter((x) => x.state === "active")) {
    out.push((await new NatsCaller(t.inspect, Subjects.nodeControl(n.nodeId)).call(NodeOps.stats, {})).reply);
  }
  return out;
}

export async function usedBytes(t: Inspector): Promise<number> {
  return (await nodeStats(t)).reduce((s, n) => s + n.usedBytes, 0);
}
