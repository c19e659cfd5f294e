#!/usr/bin/env node
/**
 * Writes every operation's request and reply as JSON Schema, so that a lambda
 * in another language can talk to the cluster:
 *   node dist/schemas/export-json-schema.js schemas/json
 */
import fs from "node:fs";
import path from "node:path";
import { ControllerOps, NodeHeartbeatSchema, NodeOps, ShardHeartbeatSchema, ShardOps } from "./operations";
import { ErrorCode } from "./errors";
import type { Operation } from "./operation";
import { ErrorHeaders, Subjects } from "../bus/subjects";

function describe(ops: Record<string, Operation>, subject: string): unknown {
  return Object.fromEntries(Object.values(ops).map((op) => [op.name, {
    summary: op.summary,
    subject: `${subject}.${op.name}`,
    payload: op.payload,
    request: op.request,
    reply: op.reply,
    errors: op.errors,
  }]));
}

const dir = process.argv[2] ?? "schemas/json";
fs.mkdirSync(dir, { recursive: true });
const doc = {
  $comment: "Pocket on NATS wire contract. Bodies are `u32 metaLength | meta JSON | payload`; errors come in the " +
    `${ErrorHeaders.code} / ${ErrorHeaders.message} reply headers on NATS and as error frames on the direct transport.`,
  errorCodes: Object.values(ErrorCode),
  controller: describe(ControllerOps, Subjects.controller),
  shard: describe(ShardOps, Subjects.shard("<shardId>")),
  node: describe(NodeOps, Subjects.node("<nodeId>")),
  heartbeats: { node: NodeHeartbeatSchema, shard: ShardHeartbeatSchema },
};
const file = path.join(dir, "pocket-operations.json");
fs.writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
process.stdout.write(`wrote ${file}\n`);
