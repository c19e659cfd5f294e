import type { TSchema } from "@sinclair/typebox";
import { PayloadDirection, type Operation } from "../../schemas/operation";
import { checkerFor } from "../../bus/router";
import { crc32 } from "../../lib/checksum";
import { extentIds, ghostJobIds, oddPaths, paths, tokenOracle, type FuzzJob, type GenContext } from "./context";
import { allOperations, expectRequest, operationAt, parseJson, Services, TokenClass, type Expect, type Service } from "./expect";
import { invalidJsonText, oddJsonText, validValue, violate, type FieldSource } from "./json";
import type { Prng } from "../../lib/prng";

/**
 * Requests for either transport: an operation the service serves (or a name
 * it does not), its meta (valid-looking with a token of some kind, or broken
 * in one of many ways), a payload, and what the request must get back.
 */

/** One request and what it must get back. */
export interface RequestSpec {
  readonly name: string;
  readonly meta: Buffer;
  readonly payload: Buffer | undefined;
  readonly expect: Expect;
  readonly note: string;
}

/** A request to `service` (with operation `op`, or under another name), its meta and payload, and what it must get. */
export function requestSpec(rng: Prng, ctx: GenContext, service: Service, target: RequestTarget, metaRoom: number): RequestSpec {
  const { name, op } = operationName(rng, service, target.transport, target.only);
  const schemaOp = op ?? rng.pick(allOperations);
  const payload = payloadFor(rng, ctx, schemaOp, op !== undefined, metaRoom);
  const source = fieldSource(ctx, target, payload);
  const base = validValue(schemaOp.request, rng, "", source);
  const { text, how } = metaText(rng, base, schemaOp.request, Math.max(64, metaRoom - (payload?.byteLength ?? 0)));
  let meta = Buffer.from(text, "utf8");
  if (rng.chance(0.01)) meta = Buffer.concat([meta.subarray(0, meta.byteLength >> 1), Buffer.from([0xff, 0xfe]), meta.subarray(meta.byteLength >> 1)]);
  const guarded = guard(service, op, meta, payload, ctx);
  const expect = expectRequest({ service, transport: target.transport, ...(target.jobId ? { subjectJobId: target.jobId } : {}) }, name, guarded.meta, guarded.payload, tokenOracle(ctx));
  return { name, meta: guarded.meta, payload: guarded.payload, expect, note: `${name} ${how}${guarded.payload ? ` +${guarded.payload.byteLength}B` : ""}` };
}

/** Where a request goes: the transport, the job its subject names, the node it is for. */
export interface RequestTarget {
  readonly transport: "nats" | "tcp";
  readonly jobId?: string;
  readonly nodeId?: string;
  /** The only operations the sender's credential may publish there, if it is limited to some. */
  readonly only?: readonly Operation[];
}

function operationName(rng: Prng, service: Service, transport: "nats" | "tcp", only: readonly Operation[] | undefined): { name: string; op: Operation | undefined } {
  if (only) {
    const op = rng.pick(only);
    return { name: op.name, op: operationAt(service, op.name) };
  }
  const served = Services[service];
  let name = rng.weighted<() => string>([
    [80, () => rng.pick(served).name],
    [8, () => rng.pick(allOperations).name],
    [6, () => rng.pick(["transport.hello", "object", "object.get.x", "OBJECT.GET", "object-get", "job", "node", "x", "a.b.c.d.e.f", "_", "object.gets"])],
    [6, () => rng.string(rng.int(1, 40), "abcdefghijklmnopqrstuvwxyz.-_0123456789")],
  ])();
  // A NATS subject has no empty tokens.
  if (transport === "nats") name = name.replace(/\.+/g, ".").replace(/^\.|\.$/g, "") || "x";
  return { name, op: operationAt(service, name) };
}

/** Meta text: the valid-looking value, or broken in one of several ways. */
function metaText(rng: Prng, base: unknown, schema: TSchema, room: number): { text: string; how: string } {
  const valid = JSON.stringify(base);
  return rng.weighted<() => { text: string; how: string }>([
    [62, () => ({ text: valid, how: "valid-looking" })],
    [22, () => ({ text: JSON.stringify(violate(base, schema, rng)) ?? "null", how: "schema-violating" })],
    [6, () => ({ text: invalidJsonText(valid, rng), how: "invalid JSON" })],
    [7, () => ({ text: oddJsonText(valid, rng, room), how: "odd JSON" })],
    [3, () => ({ text: JSON.stringify({ ...(base as object), pad: "p".repeat(rng.size(room)) }), how: "padded" })],
  ])();
}

/** A payload for ops that take one (sometimes none), and now and then for ops that do not. */
function payloadFor(rng: Prng, ctx: GenContext, op: Operation, served: boolean, room: number): Buffer | undefined {
  const takes = served && op.payload === PayloadDirection.Request;
  if (!(takes ? rng.chance(0.9) : rng.chance(0.08))) return undefined;
  const limit = op.name === "object.put" ? ctx.inlineBytesMax : ctx.extentBytesMax;
  const n = Math.min(room, rng.weighted<number>([
    [4, 0], [3, 1], [30, rng.size(Math.min(limit, 4096))], [4, limit - 1], [4, limit], [3, limit + 1], [4, rng.size(limit)],
  ]));
  return n > 0 ? rng.bytes(n) : undefined;
}

/**
 * Values of meaningful fields: tokens of every kind, the fuzz job's paths
 * and extents, and grants and crcs that mostly fit the request they are in
 * (the token's job, the extent id, the payload), so that requests get past
 * the checks to the handlers' own logic.
 */
function fieldSource(ctx: GenContext, target: RequestTarget, payload: Buffer | undefined): FieldSource {
  const ownJob = target.jobId === ctx.other.jobId ? ctx.other : ctx.job;
  const chosen: { token?: string; extentId?: string } = {};
  return (field, rng) => {
    switch (field) {
      case "token": return (chosen.token = pickToken(rng, ctx, ownJob));
      case "path": return rng.chance(0.85) ? rng.pick(paths) : rng.pick(oddPaths);
      case "extentId": return (chosen.extentId = rng.chance(0.85) ? rng.pick(extentIds) : rng.string(rng.int(1, 24), idChars));
      case "extentIds[]": return rng.chance(0.85) ? rng.pick(extentIds) : undefined;
      case "jobId": return rng.pick([...ghostJobIds, ctx.job.jobId, ctx.other.jobId]);
      case "nodeId": return rng.pick([ctx.ghostNodeId, "n-none", ...ctx.nodes.map((n) => n.id)]);
      case "crc": return payload && rng.chance(0.85) ? crc32(payload) : undefined;
      case "size": return rng.weighted<number>([[6, rng.size(4 * ctx.extentBytesMax)], [1, 2 ** 40], [1, 2 ** 33]]);
      case "lengths[]": return rng.weighted<number>([[6, 1 + rng.size(ctx.extentBytesMax)], [1, ctx.extentBytesMax + 1], [1, 2 ** 40]]);
      case "offset": case "length": return rng.weighted<number | undefined>([[3, undefined], [4, rng.size(2 * ctx.extentBytesMax)], [1, 2 ** 40]]);
      case "grant": return rng.chance(0.8) ? grantFor(rng, ctx, target, chosen, payload) : undefined;
      // extent.copy's destination: a node of this cluster, or a loopback port nothing listens on; never anywhere else.
      case "addr": return rng.pick([...ctx.nodes.map((n) => n.addr), "127.0.0.1:1"]);
      case "key": return rng.pick(ctx.nodes.map((n) => n.key));
      default: return undefined;
    }
  };
}

const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";

function pickToken(rng: Prng, ctx: GenContext, own: FuzzJob): string | undefined {
  const t = ctx.tokens;
  return rng.weighted<() => string>([
    [62, () => own.token],
    [7, () => (own === ctx.job ? ctx.other.token : ctx.job.token)],
    [5, () => t.ghost],
    [5, () => rng.pick(t.attachable)],
    [5, () => t.wrongShard],
    [6, () => t.expired],
    [9, () => rng.pick(t.forged)],
    [2, () => ""],
    [4, () => `${own.token.slice(0, -2)}${rng.string(2, "AB_-")}`],
  ])();
}

/** A grant for the request's job, node, extent and payload length, mostly; now and then for something else. */
function grantFor(rng: Prng, ctx: GenContext, target: RequestTarget, chosen: { token?: string; extentId?: string }, payload: Buffer | undefined): string {
  const jobId = tokenOracle(ctx)(chosen.token ?? "").jobId ?? ctx.job.jobId;
  const nodeId = target.nodeId !== undefined && rng.chance(0.9) ? target.nodeId : rng.pick(ctx.nodes).id;
  const extentId = chosen.extentId !== undefined && rng.chance(0.9) ? chosen.extentId : rng.pick(extentIds);
  const length = payload !== undefined && rng.chance(0.9) ? payload.byteLength : rng.size(ctx.extentBytesMax);
  return ctx.grant({ jobId, nodeId, extentId, length });
}

/**
 * Keeps the fuzzer from doing, validly, what would stop the cluster it
 * measures: retiring or dropping its nodes, detaching or deregistering its
 * jobs, registering jobs without bound. Such a request is made invalid (an
 * extra field) instead.
 */
/** Where a fuzzed extent.copy may send bytes. */
function copyTargets(ctx: GenContext): Set<string> {
  return new Set([...ctx.nodes.map((n) => n.addr), "127.0.0.1:1"]);
}

export function guard(service: Service, op: Operation | undefined, meta: Buffer, payload: Buffer | undefined, ctx: GenContext): { meta: Buffer; payload: Buffer | undefined } {
  if (!op) return { meta, payload };
  const parsed = parseJson(meta);
  if (!parsed.ok || !checkerFor(op.request).Check(parsed.value)) return { meta, payload };
  if (payload !== undefined && op.payload !== PayloadDirection.Request) return { meta, payload };
  const v = parsed.value as { token?: string; jobId?: string; nodeId?: string };
  const liveJob = v.jobId === ctx.job.jobId || v.jobId === ctx.other.jobId;
  const realNode = ctx.nodes.some((n) => n.id === v.nodeId);
  const cls = typeof v.token === "string" ? tokenOracle(ctx)(v.token).cls : undefined;
  const liveToken = cls === TokenClass.Live || cls === TokenClass.WrongShard;
  const forbidden =
    (service === "driver" && (op.name === "job.register" || (op.name === "job.deregister" && liveToken)))
    || (service === "admin" && op.name === "node.retire" && realNode)
    || (service === "shardControl" && (liveJob || realNode))
    || (service === "nodeControl" && (op.name === "node.retire" || (op.name === "job.drop" && liveJob)))
    // A node sends a copy where it is told: only to this cluster's nodes or a dead loopback port, whatever a mutation made of the address.
    || (service === "nodeControl" && op.name === "extent.copy" && !copyTargets(ctx).has((v as { to?: { addr?: string } }).to?.addr ?? ""));
  if (!forbidden) return { meta, payload };
  return { meta: Buffer.from(JSON.stringify({ ...(parsed.value as object), fuzzGuard: true }), "utf8"), payload };
}
