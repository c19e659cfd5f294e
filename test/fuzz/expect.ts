import { ErrorCode } from "../../schemas/errors";
import { PayloadDirection, type Operation } from "../../schemas/operation";
import { ControllerOps, NodeOps, ShardOps } from "../../schemas/operations";
import { DriverOperations } from "../../bus/subjects";
import { checkerFor } from "../../bus/router";

/**
 * What each service serves, and what a request to it must get back, decided
 * from the request's bytes alone: the operation named, whether its meta is
 * JSON matching the operation's schema, whether it carries a payload it may
 * not, and which token it carries.
 */

/** Operations the controller sends a shard on its control subjects; a job never reaches them. */
const shardControlOps: readonly Operation[] = [ShardOps.attachJob, ShardOps.detachJob, ShardOps.setWeights, ShardOps.migrate];
/** Operations a job's lambdas send storage nodes (over TCP, or on the job's NATS subjects). */
const nodeJobOps: readonly Operation[] = [NodeOps.extentWrite, NodeOps.extentRead];

/** The services whose ports and subjects are fuzzed, each with the operations it serves. */
export const Services = {
  /** A shard's direct transport, and its job subjects `pocket.shard.<sid>.job.<jobId>.<op>`. */
  shardJob: Object.values(ShardOps).filter((op) => !shardControlOps.includes(op)),
  /** A node's direct transport, and its job subjects `pocket.node.<nid>.job.<jobId>.<op>`. */
  nodeJob: nodeJobOps,
  /** `pocket.shard.<sid>.ctl.<op>` */
  shardControl: shardControlOps,
  /** `pocket.node.<nid>.ctl.<op>` */
  nodeControl: Object.values(NodeOps).filter((op) => !nodeJobOps.includes(op)),
  /** `pocket.ctl.driver.<op>` */
  driver: Object.values(ControllerOps).filter((op) => DriverOperations.has(op.name)),
  /** `pocket.ctl.admin.<op>` */
  admin: Object.values(ControllerOps).filter((op) => !DriverOperations.has(op.name)),
} as const satisfies Record<string, readonly Operation[]>;
export type Service = keyof typeof Services;

/** Every operation name any service knows. */
export const allOperations: readonly Operation[] = Object.values(Services).flat();

/** What a request must get. */
export type Expect =
  /** A reply matching the operation's reply schema, or a typed error. */
  | { readonly kind: "any" }
  /** A typed error (one of `codes` when given), never a reply. */
  | { readonly kind: "error"; readonly codes?: readonly ErrorCode[]; readonly why: string };

/** How a token a request carries relates to the job it acts for. */
export const TokenClass = {
  /** A live job's token the fuzzer may use (its own job, or the other one). */
  Live: "live",
  /** Signed by the cluster, for a job that does not exist. */
  Ghost: "ghost",
  /** Signed by the cluster, for a job the controller never registered but control cases may attach to the shard. */
  Attachable: "attachable",
  /** Signed by the cluster for the fuzzer's job, but naming another shard. */
  WrongShard: "wrong-shard",
  /** Signed by the cluster, expired. */
  Expired: "expired",
  /** Not signed by the cluster, or not a token at all. */
  Bad: "bad",
} as const;
export type TokenClass = (typeof TokenClass)[keyof typeof TokenClass];

/** Tells what a token string is, and which job it names if it is signed. */
export type TokenOracle = (token: string) => { readonly cls: TokenClass; readonly jobId?: string };

/** Where a request arrived: its service, the job named by its subject (job subjects), and the transport. */
export interface Destination {
  readonly service: Service;
  /** NATS job subjects name a job; a request there with another job's token is refused. */
  readonly subjectJobId?: string;
  readonly transport: "nats" | "tcp";
  /** The token a direct-transport connection authenticated with: a request that names none is that job's (its session). */
  readonly sessionToken?: string;
}

/**
 * What a request must get back. Decoding and schema failures are
 * InvalidArgument whatever else is wrong; a schema-valid request with a
 * token that is not a live one is refused (Unauthorized for bad, expired and
 * other-job tokens, some typed error for a ghost job's).
 */
export function expectRequest(dest: Destination, name: string, meta: Uint8Array, payload: Uint8Array | undefined, tokens: TokenOracle): Expect {
  const op = operationAt(dest.service, name);
  if (!op) return invalid(`${JSON.stringify(name.slice(0, 40))} is not served there`);
  const parsed = parseJson(meta);
  if (!parsed.ok) return invalid("meta is not JSON");
  if (dest.sessionToken !== undefined && takesToken(op) && typeof parsed.value === "object" && parsed.value !== null && !("token" in parsed.value)) {
    (parsed.value as { token?: string }).token = dest.sessionToken;
  }
  if (!checkerFor(op.request).Check(parsed.value)) return invalid("meta does not match the request schema");
  if (payload !== undefined && op.payload !== PayloadDirection.Request) return invalid(`${op.name} takes no payload`);
  if (!takesToken(op)) return { kind: "any" };
  const token = (parsed.value as { token?: string }).token;
  const unauthorized = (why: string): Expect => ({ kind: "error", codes: [ErrorCode.Unauthorized], why });
  if (token === undefined || token === "") return unauthorized("no token");
  const t = tokens(token);
  if (t.cls === TokenClass.Bad || t.cls === TokenClass.Expired) return unauthorized(`a ${t.cls} token`);
  if (dest.subjectJobId !== undefined && t.jobId !== dest.subjectJobId) return unauthorized("a token of another job than the subject's");
  if (t.cls === TokenClass.Ghost) {
    // A node serves any signed job token: a ghost job just has no extents (and no grants).
    return dest.service === "nodeJob" ? { kind: "any" } : { kind: "error", why: "a token of a job that does not exist" };
  }
  if (t.cls === TokenClass.WrongShard && dest.service === "shardJob") return unauthorized("a token for another shard");
  // Live and attachable tokens: whatever the job's state, a reply or a typed error.
  return { kind: "any" };
}

/** The operation `service` serves under `name`, if any. */
export function operationAt(service: Service, name: string): Operation | undefined {
  return Services[service].find((op) => op.name === name);
}

export function takesToken(op: Operation): boolean {
  const properties = (op.request as { properties?: Record<string, unknown> }).properties;
  return properties !== undefined && "token" in properties;
}

/** JSON as the servers decode it: UTF-8 (bad bytes become U+FFFD), then JSON.parse. */
export function parseJson(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")) };
  } catch (e) {
    if (e instanceof SyntaxError) return { ok: false };
    throw e;
  }
}

function invalid(why: string): Expect {
  return { kind: "error", codes: [ErrorCode.InvalidArgument], why };
}
