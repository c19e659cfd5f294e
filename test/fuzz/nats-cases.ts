import type { TSchema } from "@sinclair/typebox";
import { ErrorCode } from "../../schemas/errors";
import { NodeHeartbeatSchema, ShardHeartbeatSchema, ShardUsageSchema } from "../../schemas/operations";
import { checkerFor } from "../../bus/router";
import { Subjects } from "../../bus/subjects";
import { Sender, tokenOracle, type GenContext } from "./context";
import { expectRequest, operationAt, parseJson, Services, type Expect, type Service } from "./expect";
import { invalidJsonText, validValue, violate, type FieldSource } from "./json";
import type { Prng } from "../../lib/prng";
import { guard, requestSpec, type RequestTarget } from "./requests";
import { encodeBody as natsBody } from "../../bus/body";
import { mutateBody, splitBody } from "./wire";

/**
 * NATS cases: requests on every subject family the actors serve, each sent
 * with a credential that may publish there, and garbage published on the
 * heartbeat and usage subjects.
 */

export interface NatsRequestCase {
  readonly kind: "nats-request";
  readonly index: number;
  readonly sender: Sender;
  readonly subject: string;
  readonly service: Service;
  readonly name: string;
  readonly body: Buffer;
  readonly expect: Expect;
  readonly note: string;
}

export interface NatsPublishCase {
  readonly kind: "nats-publish";
  readonly index: number;
  readonly sender: Sender;
  readonly subject: string;
  readonly body: Buffer;
  readonly note: string;
}

interface NatsFamily {
  readonly service: Service;
  readonly weight: number;
  route(rng: Prng, ctx: GenContext): { sender: Sender; prefix: string; target: RequestTarget };
}

const natsFamilies: readonly NatsFamily[] = [
  {
    service: "shardJob", weight: 40,
    route: (rng, ctx) => {
      const other = rng.chance(0.15);
      const job = other ? ctx.other : ctx.job;
      return { sender: other ? Sender.OtherLambda : Sender.Lambda, prefix: Subjects.shardJob(ctx.shardId, job.jobId), target: { transport: "nats", jobId: job.jobId } };
    },
  },
  {
    service: "nodeJob", weight: 20,
    route: (rng, ctx) => {
      const node = rng.pick(ctx.nodes).id;
      const job = rng.chance(0.15) ? ctx.other : ctx.job;
      // A shard may send nodes extent reads and writes (to move extents), nothing else.
      const byShard = rng.chance(0.2);
      const sender = byShard ? Sender.Shard : job === ctx.job ? Sender.Lambda : Sender.OtherLambda;
      return {
        sender, prefix: Subjects.nodeJob(node, job.jobId),
        target: { transport: "nats", jobId: job.jobId, nodeId: node, ...(byShard ? { only: Services.nodeJob } : {}) },
      };
    },
  },
  { service: "driver", weight: 10, route: () => ({ sender: Sender.Driver, prefix: Subjects.controllerDriver, target: { transport: "nats" } }) },
  { service: "admin", weight: 10, route: () => ({ sender: Sender.Operator, prefix: Subjects.controllerAdmin, target: { transport: "nats" } }) },
  { service: "shardControl", weight: 10, route: (_, ctx) => ({ sender: Sender.Controller, prefix: Subjects.shardControl(ctx.shardId), target: { transport: "nats" } }) },
  {
    service: "nodeControl", weight: 10,
    route: (rng, ctx) => {
      const node = rng.pick(ctx.nodes).id;
      return { sender: Sender.Controller, prefix: Subjects.nodeControl(node), target: { transport: "nats", nodeId: node } };
    },
  },
];

/** Bytes of meta a NATS request carries at most here (well under the server's message limit). */
const natsMetaRoom = 96 * 1024;

export function natsRequestCase(rng: Prng, ctx: GenContext, index: number): NatsRequestCase {
  const family = rng.weighted(natsFamilies.map((f) => [f.weight, f] as const));
  const { sender, prefix, target } = family.route(rng, ctx);
  const spec = requestSpec(rng, ctx, family.service, target, natsMetaRoom);
  let body = natsBody(spec.meta, spec.payload);
  let note = spec.note;
  let expect = spec.expect;
  if (rng.chance(0.2)) {
    const m = mutateBody(body, rng);
    body = m.bytes;
    note = `${spec.name} body ${m.note}`;
    const split = splitBody(body);
    const destination = { service: family.service, transport: "nats" as const, ...(target.jobId ? { subjectJobId: target.jobId } : {}) };
    expect = split
      ? expectRequest(destination, spec.name, split.meta, split.payload, tokenOracle(ctx))
      : { kind: "error", codes: [ErrorCode.InvalidArgument], why: "not a body" };
    body = guardBody(family.service, spec.name, body, ctx);
  }
  return { kind: "nats-request", index, sender, subject: `${prefix}.${spec.name}`, service: family.service, name: spec.name, body, expect, note };
}

/** A mutated body can become valid again (a shorter meta length that still parses): guard it like any request. */
function guardBody(service: Service, name: string, body: Buffer, ctx: GenContext): Buffer {
  const split = splitBody(body);
  const op = operationAt(service, name);
  if (!split || !op) return body;
  const g = guard(service, op, split.meta, split.payload, ctx);
  return g.meta === split.meta ? body : natsBody(g.meta, g.payload);
}

/** Heartbeat and usage subjects: what may be published there, by whom, and the schema that decides what is dropped. */
function publishRoute(rng: Prng, ctx: GenContext): { sender: Sender; subject: string; schema: TSchema; subjectOf: (v: Record<string, unknown>) => string; idField: string } {
  const node0 = ctx.nodes[0]!.id;
  return rng.pick([
    { sender: Sender.Node, subject: Subjects.nodeHeartbeat(node0), schema: NodeHeartbeatSchema, subjectOf: (v) => Subjects.nodeHeartbeat(String(v["nodeId"])), idField: "nodeId" },
    { sender: Sender.GhostNode, subject: Subjects.nodeHeartbeat(ctx.ghostNodeId), schema: NodeHeartbeatSchema, subjectOf: (v) => Subjects.nodeHeartbeat(String(v["nodeId"])), idField: "nodeId" },
    { sender: Sender.Shard, subject: Subjects.shardHeartbeat(ctx.shardId), schema: ShardHeartbeatSchema, subjectOf: (v) => Subjects.shardHeartbeat(String(v["shardId"])), idField: "shardId" },
    { sender: Sender.GhostShard, subject: Subjects.shardHeartbeat(ctx.ghostShardId), schema: ShardHeartbeatSchema, subjectOf: (v) => Subjects.shardHeartbeat(String(v["shardId"])), idField: "shardId" },
    { sender: Sender.Shard, subject: Subjects.shardUsage(ctx.shardId), schema: ShardUsageSchema, subjectOf: (v) => Subjects.shardUsage(String(v["shardId"])), idField: "shardId" },
    { sender: Sender.GhostShard, subject: Subjects.shardUsage(ctx.ghostShardId), schema: ShardUsageSchema, subjectOf: (v) => Subjects.shardUsage(String(v["shardId"])), idField: "shardId" },
  ]);
}

/**
 * Garbage published (not requested) on heartbeat and usage subjects, by the
 * identity allowed to publish there: random bytes, broken JSON, reports that
 * break their schema, and well-formed reports that claim another sender than
 * their subject. Never a report that should be believed: that would change
 * the cluster the fuzzer measures.
 */
export function natsPublishCase(rng: Prng, ctx: GenContext, index: number): NatsPublishCase {
  const route = publishRoute(rng, ctx);
  const claimed = rng.pick([ctx.nodes[0]!.id, ctx.shardId, ctx.ghostNodeId, ctx.ghostShardId, "evil"]);
  const source: FieldSource = (field, r) => {
    if (field === route.idField) return claimed;
    if (field === "addr") return "127.0.0.1:1";
    if (field === "key") return r.string(43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    return undefined;
  };
  const base = validValue(route.schema, rng, "", source) as Record<string, unknown>;
  let how = "spoofed";
  let body: Buffer = rng.weighted<() => Buffer>([
    [20, () => { how = "random bytes"; return rng.bytes(rng.size(2048)); }],
    [20, () => { how = "invalid JSON"; return Buffer.from(invalidJsonText(JSON.stringify(base), rng)); }],
    [40, () => { how = "schema-violating"; return Buffer.from(JSON.stringify(violate(base, route.schema, rng)) ?? "null"); }],
    [20, () => Buffer.from(JSON.stringify(base))],
  ])();
  const parsed = parseJson(body);
  if (parsed.ok && checkerFor(route.schema).Check(parsed.value) && route.subjectOf(parsed.value as Record<string, unknown>) === route.subject) {
    // Believable: make it claim someone else.
    body = Buffer.from(JSON.stringify({ ...(parsed.value as object), [route.idField]: "fz-spoof" }));
    how = "spoofed";
  }
  return { kind: "nats-publish", index, sender: route.sender, subject: route.subject, body, note: `${how} on ${route.subject}` };
}
