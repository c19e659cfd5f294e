import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { ValueErrorType, type ValueError, type ValueErrorIterator } from "@sinclair/typebox/errors";
import { ActorConfigSchemas, ScalingPolicySchema, type ActorConfigOf, type ActorKind } from "./config-schema";

/** One thing wrong with a config: the field's JSON pointer and what it must be. */
export interface ConfigViolation {
  readonly path: string;
  readonly message: string;
}

/** Violations named in one error at most (the rest are counted). */
const violationsShownMax = 8;

/**
 * An actor's config does not match its schema. The message names the actor
 * kind and each field's path: `shard config: /inlineBytesMax must be ≤ 1048576`.
 */
export class ActorConfigError extends Error {
  override readonly name = "ActorConfigError";

  constructor(readonly kind: ActorKind, readonly violations: readonly ConfigViolation[]) {
    const shown = violations.slice(0, violationsShownMax).map((v) => `${v.path || "/"} ${v.message}`);
    const more = violations.length > violationsShownMax ? `; and ${violations.length - violationsShownMax} more` : "";
    super(`${kind} config: ${shown.join("; ")}${more}`);
  }
}

export function isActorConfigError(e: unknown): e is ActorConfigError {
  return e instanceof ActorConfigError;
}

const checks = new Map<ActorKind, TypeCheck<TSchema>>();

function checkerOf(kind: ActorKind): TypeCheck<TSchema> {
  let check = checks.get(kind);
  if (!check) {
    check = TypeCompiler.Compile(ActorConfigSchemas[kind]);
    checks.set(kind, check);
  }
  return check;
}

/**
 * Checks an actor's config against its kind's schema (types, ranges,
 * required fields, no unknown keys) and the rules between fields; returns
 * it typed, or throws ActorConfigError naming every field at fault.
 */
export function checkActorConfig<K extends ActorKind>(kind: K, value: unknown): ActorConfigOf[K] {
  const check = checkerOf(kind);
  const violations = check.Check(value) ? crossFieldViolations(kind, value as ActorConfigOf[K]) : violationsOf(check.Errors(value));
  if (violations.length > 0) throw new ActorConfigError(kind, violations);
  return value as ActorConfigOf[K];
}

/** One violation per path (a missing field also fails its type), in the order found. */
function violationsOf(errors: Iterable<ValueError>): ConfigViolation[] {
  const byPath = new Map<string, ConfigViolation>();
  for (const e of errors) {
    for (const v of describe(e)) if (!byPath.has(v.path)) byPath.set(v.path, v);
  }
  return [...byPath.values()];
}

function describe(e: ValueError): ConfigViolation[] {
  if (e.type === ValueErrorType.Union) return describeUnion(e);
  return [{ path: e.path, message: messageOf(e) }];
}

/** What a schema error means, in the words of the field's constraint. */
function messageOf(e: ValueError): string {
  const s = e.schema as Record<string, unknown>;
  switch (e.type) {
    case ValueErrorType.ObjectAdditionalProperties: return "is not a known field";
    case ValueErrorType.ObjectRequiredProperty: return "is required";
    case ValueErrorType.IntegerMaximum: case ValueErrorType.NumberMaximum: return `must be ≤ ${String(s["maximum"])}`;
    case ValueErrorType.IntegerMinimum: case ValueErrorType.NumberMinimum: return `must be ≥ ${String(s["minimum"])}`;
    case ValueErrorType.IntegerExclusiveMinimum: case ValueErrorType.NumberExclusiveMinimum: return `must be > ${String(s["exclusiveMinimum"])}`;
    case ValueErrorType.IntegerExclusiveMaximum: case ValueErrorType.NumberExclusiveMaximum: return `must be < ${String(s["exclusiveMaximum"])}`;
    case ValueErrorType.Integer: return "must be an integer";
    case ValueErrorType.Number: return "must be a number";
    case ValueErrorType.String: return "must be a string";
    case ValueErrorType.Boolean: return "must be true or false";
    case ValueErrorType.Object: return "must be an object";
    case ValueErrorType.Array: return "must be an array";
    case ValueErrorType.ArrayMaxItems: return `may hold at most ${String(s["maxItems"])} items`;
    case ValueErrorType.StringMinLength: return `must be at least ${String(s["minLength"])} characters`;
    case ValueErrorType.StringMaxLength: return `must be at most ${String(s["maxLength"])} characters`;
    case ValueErrorType.StringPattern: return `must match ${String(s["pattern"])}`;
    case ValueErrorType.Literal: return `must be ${JSON.stringify(s["const"])}`;
    default: return e.message;
  }
}

/**
 * A union of literals: "must be one of …". A union of objects told apart by
 * their `kind`: the errors of the variant the value names, or "kind must be
 * one of …" when it names none.
 */
function describeUnion(e: ValueError): ConfigViolation[] {
  const variants = (e.schema as { anyOf?: ReadonlyArray<Record<string, unknown>> }).anyOf ?? [];
  const consts = variants.map((v) => v["const"]);
  if (consts.length > 0 && consts.every((c) => c !== undefined)) return [{ path: e.path, message: `must be one of ${consts.join(", ")}` }];
  const kinds = variants.map((v) => (v["properties"] as Record<string, { const?: unknown }> | undefined)?.["kind"]?.const);
  if (kinds.length === 0 || !kinds.every((k): k is string => typeof k === "string")) return [{ path: e.path, message: e.message }];
  if (typeof e.value !== "object" || e.value === null || Array.isArray(e.value)) return [{ path: e.path, message: "must be an object" }];
  const i = kinds.indexOf(String((e.value as { kind?: unknown }).kind));
  if (i < 0) return [{ path: `${e.path}/kind`, message: `must be one of ${kinds.join(", ")}` }];
  return violationsOf(e.errors[i] as ValueErrorIterator);
}

/** Rules between fields that a schema does not say. */
function crossFieldViolations<K extends ActorKind>(kind: K, config: ActorConfigOf[K]): ConfigViolation[] {
  if (kind === "node") {
    const node = config as ActorConfigOf["node"];
    if (node.tier === "nvme" && node.nvme === undefined) return [{ path: "/nvme", message: "is required for tier nvme (the device)" }];
    if (node.tier !== "nvme" && node.nvme !== undefined) return [{ path: "/nvme", message: `is only for tier nvme, not ${node.tier}` }];
    return [];
  }
  if (kind === "controller") return policyViolations((config as ActorConfigOf["controller"]).policy);
  return [];
}

function policyViolations(policy: ActorConfigOf["controller"]["policy"]): ConfigViolation[] {
  if (policy === undefined) return [];
  const out: ConfigViolation[] = [];
  const low = policy.bandLow ?? (ScalingPolicySchema.properties.bandLow.default as number);
  const high = policy.bandHigh ?? (ScalingPolicySchema.properties.bandHigh.default as number);
  if (!(low < high)) out.push({ path: "/policy/bandLow", message: `must be < bandHigh (${high})` });
  (policy.nodeTypes ?? []).forEach((t, i) => {
    if (t.minNodes > t.maxNodes) out.push({ path: `/policy/nodeTypes/${i}/minNodes`, message: `must be ≤ maxNodes (${t.maxNodes})` });
  });
  return out;
}
