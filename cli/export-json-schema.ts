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
import { BinaryLayouts, BinaryMeta, ExtentRefLayout } from "../schemas/codec";

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
  binaryMeta: {
    $comment: "Optional, for the operations listed: their meta may travel in these layouts instead of JSON (a server answers in the form it was asked in). " +
      "A binary meta starts with the marker byte (JSON never does), then the version, a u16 presence mask (bit i for field i of the layout), then each present field in order.",
    marker: BinaryMeta.marker,
    version: BinaryMeta.version,
    byteOrder: "little-endian",
    fieldTypes: {
      str: "u16 byte length, then UTF-8 bytes",
      u32: "unsigned 32-bit integer",
      u53: "IEEE 754 double holding an integer 0 ..= 2^53",
      bool: "u8, 0 or 1",
      refs: "u16 count, then each extent reference in the extentRef layout",
    },
    extentRef: ExtentRefLayout,
    operations: BinaryLayouts,
  },
};
const file = path.join(dir, "pocket-operations.json");
fs.writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
process.stdout.write(`wrote ${file}\n`);
