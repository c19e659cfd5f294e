#!/usr/bin/env node
/**
 * Runs one actor as its own process:
 *   node dist/actors/main.js controller|shard|node
 * with its JSON config in POCKET_ACTOR_CONFIG. Prints one JSON line
 * `{"ready":true,...}` on stdout when serving (`http`: host:port of its
 * metrics and probes, "" without); stops cleanly on SIGTERM/SIGINT.
 */
import { Controller, type ControllerConfig } from "./controller/controller";
import { MetadataShard, type ShardConfig } from "./metadata/shard";
import { StorageNode, type StorageNodeConfig } from "./storage/storage-node";
import { errorFields, logger } from "../lib/log";

interface Stoppable { stop(): Promise<void> }

async function main(): Promise<void> {
  const role = process.argv[2];
  const raw = process.env["POCKET_ACTOR_CONFIG"];
  if (!raw) throw new Error("POCKET_ACTOR_CONFIG is not set");
  const config = JSON.parse(raw) as Record<string, unknown>;
  // In a pod, the secret comes from a Kubernetes Secret and the address from the downward API.
  if (config["secret"] === undefined && process.env["POCKET_SECRET"]) config["secret"] = process.env["POCKET_SECRET"];
  const advertiseHost = process.env["POCKET_ADVERTISE_HOST"];
  if (advertiseHost && config["advertiseAddr"] === undefined && typeof config["port"] === "number") config["advertiseAddr"] = `${advertiseHost}:${config["port"]}`;
  // In a pod, metrics and probes are scraped from outside the container.
  if (advertiseHost && config["httpHost"] === undefined) config["httpHost"] = "0.0.0.0";
  let actor: Stoppable;
  let info: Record<string, unknown>;
  switch (role) {
    case "controller": {
      const c = await Controller.start(config as unknown as ControllerConfig);
      actor = c;
      info = { role, http: c.httpAddr };
      break;
    }
    case "shard": {
      const s = await MetadataShard.start(config as unknown as ShardConfig);
      actor = s;
      info = { role, shardId: s.shardId, http: s.httpAddr };
      break;
    }
    case "node": {
      const n = await StorageNode.start(config as unknown as StorageNodeConfig);
      actor = n;
      info = { role, nodeId: n.nodeId, addr: n.addr, http: n.httpAddr };
      void n.retired.then(() => process.exit(0));
      break;
    }
    default:
      throw new Error(`unknown role ${JSON.stringify(role)}: use controller, shard or node`);
  }
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    actor.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, ...info })}\n`);
}

main().catch((e: unknown) => {
  logger("main").error("actor failed to start", errorFields(e));
  process.exit(1);
});
