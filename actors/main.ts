#!/usr/bin/env node
/**
 * Runs one actor as its own process:
 *   node dist/actors/main.js controller|shard|node
 * with its JSON config in POCKET_ACTOR_CONFIG, checked against the kind's
 * schema (actors/runtime/config-schema.ts) before anything starts. Prints
 * one JSON line `{"ready":true,...}` on stdout when serving (`http`: host:port
 * of its metrics and probes, "" without); stops cleanly on SIGTERM/SIGINT.
 *
 * Exit codes: 0 stopped; 1 failed to start; 2 no such kind, or a config that
 * is missing, not JSON or not valid (the last line on stderr says which
 * field: `shard config: /inlineBytesMax must be ≤ 1048576`).
 */
import { Controller, type ControllerConfig } from "./controller/controller";
import { MetadataShard, type ShardConfig } from "./metadata/shard";
import { StorageNode, type StorageNodeConfig } from "./storage/storage-node";
import { ActorKind, type ActorConfigOf } from "./runtime/config-schema";
import { checkActorConfig, isActorConfigError } from "./runtime/config-check";
import { errorFields, logger } from "../lib/log";
import { accelerateCrc32 } from "../lib/checksum";
import { nativeCrc32 } from "../native";

interface Stoppable { stop(): Promise<void> }

/** Every field of each actor's config interface has a place in its schema (a field added to one and not the other fails to compile). */
type Covered<Schema, Config> = Exclude<keyof Config, keyof Schema> extends never ? true : never;
const schemasCoverConfigs: [Covered<ActorConfigOf["controller"], ControllerConfig>, Covered<ActorConfigOf["shard"], ShardConfig>, Covered<ActorConfigOf["node"], StorageNodeConfig>] = [true, true, true];
void schemasCoverConfigs;

/** A config that is missing, unreadable or invalid: the process exits 2. */
class ConfigError extends Error {
  override readonly name = "ConfigError";
}

function isActorKind(v: string | undefined): v is ActorKind {
  return v === ActorKind.Controller || v === ActorKind.Shard || v === ActorKind.Node;
}

/**
 * The actor's config from the environment: POCKET_ACTOR_CONFIG (JSON), with
 * the secret from POCKET_SECRET and a node's advertised address from
 * POCKET_ADVERTISE_HOST when the JSON has none (in a pod they come from a
 * Kubernetes Secret and the downward API), checked against the kind's schema.
 */
function configFromEnv<K extends ActorKind>(kind: K, env: NodeJS.ProcessEnv): ActorConfigOf[K] {
  const raw = env["POCKET_ACTOR_CONFIG"];
  if (!raw) throw new ConfigError(`${kind} config: POCKET_ACTOR_CONFIG is not set (the actor's JSON config)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new ConfigError(`${kind} config: POCKET_ACTOR_CONFIG is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new ConfigError(`${kind} config: / must be an object`);
  const config = { ...(parsed as Record<string, unknown>) };
  const secret = env["POCKET_SECRET"];
  if (config["secret"] === undefined && secret) config["secret"] = secret;
  const advertiseHost = env["POCKET_ADVERTISE_HOST"];
  if (kind === ActorKind.Node && advertiseHost && config["advertiseAddr"] === undefined && typeof config["port"] === "number") {
    config["advertiseAddr"] = `${advertiseHost}:${config["port"]}`;
  }
  // In a pod, metrics and probes are scraped from outside the container.
  if (advertiseHost && config["httpHost"] === undefined) config["httpHost"] = "0.0.0.0";
  return checkActorConfig(kind, config);
}

/** Starts the actor of `kind`; returns it with what its ready line says of it. */
async function startActor(kind: ActorKind, env: NodeJS.ProcessEnv): Promise<{ actor: Stoppable; info: Record<string, unknown> }> {
  switch (kind) {
    case ActorKind.Controller: {
      const c = await Controller.start(configFromEnv(kind, env));
      return { actor: c, info: { role: kind, http: c.httpAddr } };
    }
    case ActorKind.Shard: {
      const s = await MetadataShard.start(configFromEnv(kind, env));
      return { actor: s, info: { role: kind, shardId: s.shardId, http: s.httpAddr } };
    }
    case ActorKind.Node: {
      const n = await StorageNode.start(configFromEnv(kind, env));
      void n.retired.then(() => process.exit(0));
      return { actor: n, info: { role: kind, nodeId: n.nodeId, addr: n.addr, listen: n.listenAddr, http: n.httpAddr } };
    }
  }
}

async function main(): Promise<void> {
  const kind = process.argv[2];
  if (!isActorKind(kind)) throw new ConfigError(`unknown actor ${JSON.stringify(kind)}: use controller, shard or node`);
  // Nodes check the crc of every extent written, shards of every inline object: the native one where it is built.
  accelerateCrc32(nativeCrc32((why) => logger("main").warn("crc32 checks use zlib: the native one is unavailable", { why })));
  const { actor, info } = await startActor(kind, process.env);
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
  const invalid = e instanceof ConfigError || isActorConfigError(e);
  logger("main").error("actor failed to start", errorFields(e));
  // Whatever the log level, the last line says why (`spawnActor` hands it on to whoever launched the actor).
  const why = invalid ? (e as Error).message : `${process.argv[2] ?? "actor"} failed to start: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  process.stderr.write(`${why}\n`);
  process.exit(invalid ? 2 : 1);
});
