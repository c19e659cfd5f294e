/**
 * The whole wire contract as one JSON document: every operation's request
 * and reply as JSON Schema (with a description of every field), where each
 * is served, its errors, the heartbeats, the binary meta layouts and the
 * protocol's sections (cli/contract.ts). `npm run schemas:export` writes it
 * to schemas/json/pocket-operations.json and renders it as docs/contract.md.
 */
import type { TSchema } from "@sinclair/typebox";
import { ControllerOps, NodeHeartbeatSchema, NodeOps, ShardHeartbeatSchema, ShardOps } from "../schemas/operations";
import { ErrorCode } from "../schemas/errors";
import type { Operation } from "../schemas/operation";
import { DriverOperations, ErrorHeaders, Subjects } from "../bus/subjects";
import { BinaryLayouts, BinaryMeta, ExtentRefLayout } from "../schemas/codec";
import { protocol, type Section } from "./contract";

/** Operations served on a shard's or node's control subjects (only cluster components may send them). */
const controlOperations = new Set<string>([
  ShardOps.attachJob.name, ShardOps.detachJob.name, ShardOps.setWeights.name, ShardOps.migrate.name,
  NodeOps.extentFree.name, NodeOps.extentCopy.name, NodeOps.jobDrop.name, NodeOps.jobQos.name, NodeOps.retire.name, NodeOps.stats.name,
]);

export interface OperationEntry {
  readonly summary: string;
  /** The NATS subject it is served on (`<...>` marks a part to fill in). */
  readonly subject: string;
  /** Where raw bytes travel besides the meta: "none", "request" or "reply". */
  readonly payload: string;
  /** Cluster-only: served on control subjects (and never on the direct transport), not callable by lambdas or drivers. */
  readonly clusterOnly: boolean;
  readonly request: TSchema;
  readonly reply: TSchema;
  readonly errors: readonly ErrorCode[];
}

export interface ContractDocument {
  readonly $comment: string;
  readonly errorCodes: readonly ErrorCode[];
  readonly controller: Readonly<Record<string, OperationEntry>>;
  readonly shard: Readonly<Record<string, OperationEntry>>;
  readonly node: Readonly<Record<string, OperationEntry>>;
  readonly heartbeats: { readonly node: TSchema; readonly shard: TSchema };
  readonly binaryMeta: Readonly<Record<string, unknown>>;
  readonly protocol: Readonly<Record<string, Section>>;
}

function describe(ops: Record<string, Operation>, subjectOf: (op: Operation) => string, clusterOnly: (op: Operation) => boolean): Record<string, OperationEntry> {
  return Object.fromEntries(Object.values(ops).map((op) => [op.name, {
    summary: op.summary,
    subject: `${subjectOf(op)}.${op.name}`,
    payload: op.payload,
    clusterOnly: clusterOnly(op),
    request: op.request,
    reply: op.reply,
    errors: op.errors,
  }]));
}

const isControl = (op: Operation): boolean => controlOperations.has(op.name);

/** The contract, built from the declarations. */
export function contractDocument(): ContractDocument {
  return {
    $comment: "Pocket on NATS wire contract: operations (JSON Schema, every field described), the binary meta layouts, and `protocol`, " +
      "the rules a client follows (bodies and frames, the handshake, chunking, writes, ranges, paths, checksums, errors). Bodies are " +
      `\`u32 metaLength | meta | payload\`; errors come in the ${ErrorHeaders.code} / ${ErrorHeaders.message} reply headers on NATS and as error frames on the direct transport.`,
    errorCodes: Object.values(ErrorCode),
    controller: describe(ControllerOps, (op) => (DriverOperations.has(op.name) ? Subjects.controllerDriver : Subjects.controllerAdmin), () => false),
    shard: describe(ShardOps, (op) => (isControl(op) ? Subjects.shardControl("<shardId>") : Subjects.shardJob("<shardId>", "<jobId>")), isControl),
    node: describe(NodeOps, (op) => (isControl(op) ? Subjects.nodeControl("<nodeId>") : Subjects.nodeJob("<nodeId>", "<jobId>")), isControl),
    heartbeats: { node: NodeHeartbeatSchema, shard: ShardHeartbeatSchema },
    binaryMeta: {
      $comment: "Optional, for the operations listed: their meta may travel in these layouts instead of JSON (a server answers in the form it was asked in). " +
        "A binary meta starts with the marker byte (JSON never does), then the version, a u16 presence mask (bit i for field i of the layout), then each present field in order. See protocol.binaryMeta.",
      marker: BinaryMeta.marker,
      version: BinaryMeta.version,
      byteOrder: "little-endian",
      presenceMask: "u16, little-endian: bit i (value 1 << i) set when field i of the layout is present; bits past the layout's fields must be 0",
      fieldTypes: {
        str: "u16 byte length, then UTF-8 bytes",
        u32: "unsigned 32-bit integer",
        u53: "IEEE 754 double holding an integer 0 ..= 2^53 − 1",
        bool: "u8, 0 or 1",
        refs: "u16 count, then each extent reference in the extentRef layout (its own presence mask, then its fields)",
      },
      extentRef: ExtentRefLayout,
      operations: BinaryLayouts,
    },
    protocol,
  };
}

/** The document as its JSON file holds it. */
export function contractJson(doc: ContractDocument = contractDocument()): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}
