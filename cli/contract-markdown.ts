/**
 * Renders the wire contract (cli/contract-document.ts) as Markdown:
 * docs/contract.md, the same content as the JSON export, for people.
 */
import type { ContractDocument } from "./contract-document";
import type { LayoutField, Section } from "./contract";

/** A JSON Schema as the export holds it (plain JSON, TypeBox's symbols gone). */
type Schema = Readonly<Record<string, unknown>>;

interface FieldRow {
  readonly name: string;
  readonly type: string;
  readonly required: boolean;
  readonly description: string;
}

/** Escapes a table cell. */
function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string[] {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`)];
}

/** A schema's type in a few words: `string ≤ 64, ^[A-Za-z0-9._-]+$`, `integer 0..4294967295`, `"a" \| "b"`. */
export function typeOf(s: Schema): string {
  if ("const" in s) return JSON.stringify(s["const"]);
  if (Array.isArray(s["anyOf"])) return (s["anyOf"] as Schema[]).map(typeOf).join(" \\| ");
  const type = String(s["type"] ?? "any");
  const limits: string[] = [];
  if (type === "string") {
    if (s["minLength"] !== undefined || s["maxLength"] !== undefined) limits.push(`length ${String(s["minLength"] ?? 0)}..${String(s["maxLength"] ?? "")}`);
    if (s["pattern"] !== undefined) limits.push(`\`${String(s["pattern"])}\``);
  }
  if (type === "integer" || type === "number") {
    const min = s["minimum"] ?? (s["exclusiveMinimum"] !== undefined ? `>${String(s["exclusiveMinimum"])}` : undefined);
    if (min !== undefined || s["maximum"] !== undefined) limits.push(`${String(min ?? "")}..${String(s["maximum"] ?? "")}`);
  }
  if (type === "array") {
    const items = (s["items"] ?? {}) as Schema;
    const n = s["maxItems"] !== undefined ? `, at most ${String(s["maxItems"])}` : "";
    return `array of ${items["type"] === "object" ? "objects" : typeOf(items)}${n}`;
  }
  return limits.length > 0 ? `${type} ${limits.join(", ")}` : type;
}

/** Every field of an object schema, nested ones as `a.b` and `a[].b`. */
export function fieldRows(s: Schema, prefix = ""): FieldRow[] {
  const props = (s["properties"] ?? {}) as Readonly<Record<string, Schema>>;
  const required = new Set((s["required"] ?? []) as string[]);
  const rows: FieldRow[] = [];
  for (const [name, p] of Object.entries(props)) {
    const full = `${prefix}${name}`;
    rows.push({ name: full, type: typeOf(p), required: required.has(name), description: String(p["description"] ?? "") });
    if (p["type"] === "object") rows.push(...fieldRows(p, `${full}.`));
    const items = p["items"] as Schema | undefined;
    if (p["type"] === "array" && items?.["type"] === "object") rows.push(...fieldRows(items, `${full}[].`));
  }
  return rows;
}

function fieldTable(s: Schema): string[] {
  const rows = fieldRows(s);
  if (rows.length === 0) return ["(no fields: `{}`)"];
  return table(["field", "type", "required", "description"], rows.map((r) => [`\`${r.name}\``, r.type, r.required ? "yes" : "no", r.description]));
}

function layoutTable(layout: readonly LayoutField[]): string[] {
  return table(["offset", "type", "field", "meaning"], layout.map((f) => [f.offset, f.type, `\`${f.field}\``, f.meaning]));
}

/** One section and its subsections, headed at `depth`. */
function renderSection(key: string, s: Section, depth: number): string[] {
  const out = [`${"#".repeat(depth)} ${s.title}`, "", `<a id="${key}"></a>\`protocol.${key}\``, ""];
  for (const p of s.text) out.push(p, "");
  if (s.layout) out.push(...layoutTable(s.layout), "");
  if (s.steps) out.push(...s.steps.map((step, i) => `${i + 1}. ${step}`), "");
  if (s.rules) out.push(...s.rules.map((r) => `- ${r}`), "");
  if (s.values) out.push(...table(["name", "value"], Object.entries(s.values).map(([k, v]) => [`\`${k}\``, `\`${String(v)}\``])), "");
  if (s.table && s.table.length > 0) {
    const header = Object.keys(s.table[0]!);
    out.push(...table(header, s.table.map((row) => header.map((h) => row[h] ?? ""))), "");
  }
  if (s.example) out.push(`Example: ${s.example.caption}`, "", "```", ...s.example.parts.map(([label, bytes]) => `${label.padEnd(16)} ${bytes}`), "```", "");
  for (const [sub, section] of Object.entries(s.sections ?? {})) out.push(...renderSection(`${key}.${sub}`, section, depth + 1));
  return out;
}

function renderOperations(service: string, ops: Readonly<Record<string, ContractDocument["controller"][string]>>): string[] {
  const out = [`## Operations: ${service}`, ""];
  for (const [name, op] of Object.entries(ops)) {
    out.push(`### \`${name}\``, "", op.summary, "");
    out.push(`- subject: \`${op.subject}\``, `- payload: ${op.payload}`, `- cluster only: ${op.clusterOnly ? "yes (not for lambdas or drivers)" : "no"}`);
    out.push(`- errors: ${op.errors.length > 0 ? op.errors.join(", ") : "none of its own"}`, "");
    out.push("Request:", "", ...fieldTable(op.request as unknown as Schema), "", "Reply:", "", ...fieldTable(op.reply as unknown as Schema), "");
  }
  return out;
}

/** The contract as Markdown. */
export function renderContractMarkdown(doc: ContractDocument): string {
  const plain = JSON.parse(JSON.stringify(doc)) as ContractDocument;
  const out = [
    "# Pocket wire contract",
    "",
    "Generated by `npm run schemas:export` (cli/contract.ts, cli/contract-document.ts and the declarations in schemas/): do not edit. " +
      "The same content, machine-readable, is schemas/json/pocket-operations.json: `protocol` holds the sections below, and each operation's request and reply are JSON Schema.",
    "",
    ...Object.entries(plain.protocol).map(([key, s]) => `- [${s.title}](#${key})`),
    "- Operations: [controller](#operations-controller), [shard](#operations-shard), [node](#operations-node)",
    "",
  ];
  for (const [key, s] of Object.entries(plain.protocol)) out.push(...renderSection(key, s, 2));
  out.push(...renderOperations("controller", plain.controller), ...renderOperations("shard", plain.shard), ...renderOperations("node", plain.node));
  return `${out.join("\n").replace(/\n{3,}/g, "\n\n").trimEnd()}\n`;
}
