#!/usr/bin/env node
/**
 * Writes every operation's request and reply as JSON Schema, so that a lambda
 * in another language can talk to the cluster:
 *   node dist/cli/export-json-schema.js schemas/json
 */
import fs from "node:fs";
import path from "node:path";
import { ControllerOps, NodeHeartbeatSchema, NodeOps, ShardHeartbeatSchema, ShardOps } from "../schemas/operations";
import { ErrorCode } from "../schemas/errors";
import type { Operation } from "../schemas/operation";
import { DriverOperations, ErrorHeaders, Subjects } from "../bus/subjects";

/** Operations served on a shard's or node's control subjects (only cluster components may send them). */
const controlOperations = new Set<string>([
  ShardOps.attachJob.name, ShardOps.detachJob.name, ShardOps.setWeights.name, ShardOps.migrate.name,
  NodeOps.extentFree.name, NodeOps.jobDrop.name, NodeOps.jobQos.name, NodeOps.retire.name, NodeOps.stats.name,
]);

function describe(ops: Record<string, Operation>, subjectOf: (op: Operation) => string): unknown {
  return Object.fromEntries(Object.values(ops).map((op) => [op.name, {
    summary: op.summary,
    subject: `${subjectOf(op)}.${op.name}`,
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
  controller: describe(ControllerOps, (op) => (DriverOperations.has(op.name) ? Subjects.controllerDriver : Subjects.controllerAdmin)),
  shard: describe(ShardOps, (op) => (controlOperations.has(op.name) ? Subjects.shardControl("<shardId>") : Subjects.shardJob("<shardId>", "<jobId>"))),
  node: describe(NodeOps, (op) => (controlOperations.has(op.name) ? Subjects.nodeControl("<nodeId>") : Subjects.nodeJob("<nodeId>", "<jobId>"))),
  heartbeats: { node: NodeHeartbeatSchema, shard: ShardHeartbeatSchema },
};
const file = path.join(dir, "pocket-operations.json");
fs.writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
process.stdout.write(`wrote ${file}\n`);
