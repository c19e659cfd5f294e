import { Kind, OptionalKind, type TSchema } from "@sinclair/typebox";
import type { Prng } from "../../lib/prng";

/**
 * JSON values for fuzz cases, driven by the operations' TypeBox schemas:
 * values that satisfy a schema (with meaningful tokens, paths and ids from a
 * `FieldSource`), ways to break them, and raw JSON text that is not JSON.
 * Whether a value still satisfies its schema is decided by the schema's own
 * checker, never assumed here.
 */

/** A value for a named field (tokens, paths, ids), or undefined to let the schema decide. */
export type FieldSource = (field: string, rng: Prng) => unknown;

/** Deepest nesting `validValue` builds (schemas here are shallow; this bounds a recursive one). */
const depthMax = 6;
/** Items and characters a generated value has at most, beyond what the schema requires. */
const itemsMax = 4;
const charsMax = 24;

/**
 * A value meant to satisfy `schema`: fields the source knows get its values,
 * optional properties are present about two times in three.
 *
 * @example
 *   const request = validValue(ShardOps.stat.request, rng, "", (f) => (f === "path" ? "a/b" : undefined));
 */
export function validValue(schema: TSchema, rng: Prng, field: string, source: FieldSource, depth = 0): unknown {
  const given = source(field, rng);
  if (given !== undefined) return given;
  switch (schema[Kind]) {
    case "Object": return validObject(schema, rng, source, depth);
    case "String": return validString(schema, rng);
    case "Integer": return validNumber(schema, rng, true);
    case "Number": return validNumber(schema, rng, false);
    case "Boolean": return rng.chance(0.5);
    case "Literal": return schema["const"] as unknown;
    case "Null": return null;
    case "Union": return validValue(rng.pick(schema["anyOf"] as TSchema[]), rng, field, source, depth + 1);
    case "Array": {
      const min = (schema["minItems"] as number | undefined) ?? 0;
      const max = Math.min((schema["maxItems"] as number | undefined) ?? itemsMax, min + itemsMax);
      const n = depth >= depthMax ? min : rng.int(min, max);
      return Array.from({ length: n }, () => validValue(schema["items"] as TSchema, rng, `${field}[]`, source, depth + 1));
    }
    default: return null;
  }
}

function validObject(schema: TSchema, rng: Prng, source: FieldSource, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const properties = (schema["properties"] ?? {}) as Record<string, TSchema>;
  for (const [name, sub] of Object.entries(properties)) {
    if (sub[OptionalKind] === "Optional" && (depth >= depthMax || rng.chance(1 / 3))) continue;
    out[name] = validValue(sub, rng, name, source, depth + 1);
  }
  return out;
}

function validString(schema: TSchema, rng: Prng): string {
  const pattern = schema["pattern"] as string | undefined;
  const minLength = (schema["minLength"] as number | undefined) ?? 0;
  const maxLength = (schema["maxLength"] as number | undefined) ?? minLength + charsMax;
  if (pattern !== undefined) {
    const p = parseClassPattern(pattern);
    if (p) return rng.string(rng.int(Math.max(p.min, minLength, 1), Math.min(p.max, maxLength, Math.max(p.min, minLength) + charsMax)), p.alphabet);
  }
  return rng.string(rng.int(minLength, Math.min(maxLength, minLength + charsMax)), "abcdefghijklmnopqrstuvwxyz0123456789-_.");
}

function validNumber(schema: TSchema, rng: Prng, integer: boolean): number {
  const exclusive = schema["exclusiveMinimum"] as number | undefined;
  const min = (schema["minimum"] as number | undefined) ?? (exclusive !== undefined ? exclusive + (integer ? 1 : 1e-9) : 0);
  const max = (schema["maximum"] as number | undefined) ?? Math.max(min, 2 ** 31);
  const n = rng.weighted<number>([[2, min], [2, max], [6, integer ? min + rng.below(Math.min(max - min, 2 ** 20) + 1) : min + rng.float() * Math.min(max - min, 1e6)]]);
  return integer ? Math.floor(n) : n;
}

/** `^[class]{n}$`, `^[class]{a,b}$` and `^[class]+$` patterns, as an alphabet and a length range. */
export function parseClassPattern(pattern: string): { alphabet: string; min: number; max: number } | undefined {
  const m = /^\^\[(.+)\](\+|\{(\d+)\}|\{(\d+),(\d+)\})\$$/.exec(pattern);
  if (!m) return undefined;
  const alphabet = expandClass(m[1]!);
  if (alphabet === "") return undefined;
  if (m[2] === "+") return { alphabet, min: 1, max: charsMax };
  if (m[3] !== undefined) return { alphabet, min: Number(m[3]), max: Number(m[3]) };
  return { alphabet, min: Number(m[4]), max: Number(m[5]) };
}

function expandClass(body: string): string {
  const chars: number[] = [];
  let i = 0;
  const next = (): number => {
    if (body[i] === "\\" && body[i + 1] === "x") {
      const c = parseInt(body.slice(i + 2, i + 4), 16);
      i += 4;
      return c;
    }
    if (body[i] === "\\") i++;
    return body.charCodeAt(i++);
  };
  while (i < body.length) {
    const lo = next();
    if (body[i] === "-" && i + 1 < body.length) {
      i++;
      const hi = next();
      for (let c = lo; c <= hi; c++) chars.push(c);
    } else {
      chars.push(lo);
    }
  }
  return String.fromCharCode(...chars);
}

/** Values of every JSON type, for a field that wants another. */
const otherTypes: ReadonlyArray<(rng: Prng) => unknown> = [
  (rng) => rng.string(rng.int(0, 8), "xyz"),
  (rng) => rng.pick([-1, 0, 1, 1.5, -0.5, 2 ** 31, 2 ** 32, 2 ** 53 + 2, -(2 ** 53) - 2, 1e308, -1e308, Number.MIN_VALUE]),
  (rng) => rng.chance(0.5),
  () => null,
  (rng) => (rng.chance(0.5) ? [] : [1, "a", null]),
  (rng) => (rng.chance(0.5) ? {} : { a: 1 }),
];

/** Keys that must not be accepted where no extra property is allowed, nor reach a prototype. */
const extraKeys = ["extra", "__proto__", "constructor", "prototype", "toString", "", "token ", "TOKEN", "hasOwnProperty"];

/**
 * Breaks a value at a random place: a field of the wrong type, a number or a
 * string past its bounds, a required field removed, an extra field. The
 * result may still satisfy the schema (an optional field removed); callers
 * check.
 */
export function violate(value: unknown, schema: TSchema, rng: Prng): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value) || schema[Kind] !== "Object" || rng.chance(0.1)) {
    return rng.pick(otherTypes)(rng);
  }
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const properties = (schema["properties"] ?? {}) as Record<string, TSchema>;
  const names = Object.keys(properties);
  const how = rng.below(names.length === 0 ? 1 : 5);
  const name = names.length > 0 ? rng.pick(names) : "extra";
  const sub = properties[name];
  switch (how) {
    case 0:
      // JSON.parse makes "__proto__" an own property; so does defineProperty here.
      Object.defineProperty(out, rng.pick(extraKeys), { value: rng.pick(otherTypes)(rng), enumerable: true, configurable: true, writable: true });
      break;
    case 1: out[name] = rng.pick(otherTypes)(rng); break;
    case 2: delete out[name]; break;
    case 3: out[name] = sub ? pastBounds(sub, rng) : null; break;
    default: {
      const inner = out[name];
      out[name] = sub && inner !== undefined ? violate(inner, sub, rng) : rng.pick(otherTypes)(rng);
    }
  }
  return out;
}

/** A value of the right type just outside the schema's bounds (or far outside). */
function pastBounds(schema: TSchema, rng: Prng): unknown {
  switch (schema[Kind]) {
    case "String": {
      const max = (schema["maxLength"] as number | undefined) ?? 64;
      const n = rng.chance(0.7) ? max + 1 : max + rng.int(2, 4096);
      return rng.chance(0.5) ? "a".repeat(n) : rng.pick(["../x", "a b", "\u0000", "é", "\ud800", "*", ">", "a.b.c", ""]);
    }
    case "Integer":
    case "Number": {
      const min = (schema["minimum"] as number | undefined) ?? (schema["exclusiveMinimum"] as number | undefined) ?? 0;
      const max = schema["maximum"] as number | undefined;
      return rng.pick([min - 1, max === undefined ? 2 ** 64 : max + 1, 0.5, -0, 1e308, -1e308, 2 ** 53 + 1]);
    }
    case "Array": {
      const max = (schema["maxItems"] as number | undefined) ?? 8;
      return Array.from({ length: Math.min(max + 1, 5000) }, () => "x");
    }
    case "Literal": return rng.pick([2, "1", 0, true]);
    default: return rng.pick(otherTypes)(rng);
  }
}

/** Text that JSON.parse refuses, often close to `valid`. */
export function invalidJsonText(valid: string, rng: Prng): string {
  switch (rng.below(10)) {
    case 0: return valid.slice(0, rng.below(Math.max(1, valid.length)));
    case 1: return `\ufeff${valid}`;
    case 2: return valid.replace(/}$/, ",}");
    case 3: return `${valid}${rng.pick(["x", "}", "]", ",", "{}"])}`;
    case 4: return rng.pick(["", " ", "\n", "NaN", "Infinity", "-Infinity", "undefined", "{'a':1}", "{a:1}", "/*x*/{}", "[", "{", "\"", "nul", "0x10", "01"]);
    case 5: {
      const at = rng.below(valid.length + 1);
      return `${valid.slice(0, at)}${String.fromCharCode(rng.int(0, 31))}${valid.slice(at)}`;
    }
    case 6: return valid.replace(/"/, "'");
    case 7: return `{"a":${"[".repeat(rng.int(1, 64))}`;
    case 8: return valid.replace(/:/, "");
    default: return rng.string(rng.int(1, 40), "{}[]\":,0123456789abc \\");
  }
}

/** JSON text that parses, to something no request schema allows at its root or in ways a schema must cope with. */
export function oddJsonText(valid: string, rng: Prng, charsMaxHere: number): string {
  const room = Math.max(16, charsMaxHere - 64);
  switch (rng.below(9)) {
    case 0: return rng.pick(["[]", "null", "0", "-0", "\"s\"", "true", "false", "1e999", "-1e999", "[{}]", "{}"]);
    case 1: {
      const d = rng.int(1, Math.min(room >> 1, 40_000));
      return rng.chance(0.5) ? `${"[".repeat(d)}${"]".repeat(d)}` : `{"path":${"[".repeat(d)}${"]".repeat(d)}}`;
    }
    case 2: return valid.replace(/^\{/, `{"${rng.pick(extraKeys)}":{"polluted":true},`).replace(/,}$/, "}");
    case 3: {
      // Duplicate keys: JSON.parse keeps the last one.
      const key = rng.pick(["token", "path", "extentId", "jobId", "nodeId", "v", "nonce"]);
      return valid.replace(/}$/, `${valid === "{}" ? "" : ","}"${key}":${rng.pick(["1", "null", "{}", "\"x\"", "[]"])}}`);
    }
    case 4: return `{"a":"${"x".repeat(rng.int(1, room))}"}`;
    case 5: return `[${Array.from({ length: rng.int(1, Math.min(room >> 2, 20_000)) }, () => "0").join(",")}]`;
    case 6: return valid.replace(/:(\d+)/, `:1${"0".repeat(rng.int(20, 400))}`);
    case 7: return valid.replace(/"([^"]*)"(?=\s*[,}])/, `"\\ud800\\u0000$1"`);
    default: return `{${Array.from({ length: rng.int(1, Math.min(room >> 4, 2000)) }, (_, i) => `"k${i}":${i}`).join(",")}}`;
  }
}
