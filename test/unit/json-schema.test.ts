import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { ErrorCode } from "../../schemas/errors";
import { contractDocument, contractJson } from "../../cli/contract-document";
import { renderContractMarkdown } from "../../cli/contract-markdown";
import type { Section } from "../../cli/contract";

type Schema = Record<string, unknown>;

/** Every property of a schema, at any depth (objects, array items, unions), with where it is. */
function properties(s: Schema, where: string): Array<{ where: string; schema: Schema }> {
  const out: Array<{ where: string; schema: Schema }> = [];
  for (const [name, p] of Object.entries((s["properties"] ?? {}) as Record<string, Schema>)) {
    out.push({ where: `${where}.${name}`, schema: p }, ...properties(p, `${where}.${name}`));
  }
  if (s["items"] !== undefined) out.push(...properties(s["items"] as Schema, `${where}[]`));
  for (const [i, alt] of ((s["anyOf"] ?? []) as Schema[]).entries()) out.push(...properties(alt, `${where}|${i}`));
  return out;
}

const plain = JSON.parse(contractJson()) as {
  controller: Record<string, { request: Schema; reply: Schema }>;
  shard: Record<string, { request: Schema; reply: Schema }>;
  node: Record<string, { request: Schema; reply: Schema }>;
  heartbeats: Record<string, Schema>;
  protocol: Record<string, Section>;
};

test("the checked-in export and docs/contract.md are what the exporter writes", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-schema-"));
  const r = spawnSync(process.execPath, [path.join(projectRoot(), "dist", "cli", "export-json-schema.js"), path.join(out, "json"), path.join(out, "docs")], { encoding: "utf8" });
  expect(r.status).toBe(0);
  const fresh = { json: fs.readFileSync(path.join(out, "json", "pocket-operations.json"), "utf8"), md: fs.readFileSync(path.join(out, "docs", "contract.md"), "utf8") };
  fs.rmSync(out, { recursive: true, force: true });
  // On a difference: `npm run build && npm run schemas:export`, and review the diff.
  expect(fresh.json).toBe(fs.readFileSync(path.join(projectRoot(), "schemas", "json", "pocket-operations.json"), "utf8"));
  expect(fresh.md).toBe(fs.readFileSync(path.join(projectRoot(), "docs", "contract.md"), "utf8"));
});

test("the committed files match the declarations as they are now (not only the last build)", () => {
  const doc = contractDocument();
  expect(fs.readFileSync(path.join(projectRoot(), "schemas", "json", "pocket-operations.json"), "utf8")).toBe(contractJson(doc));
  expect(fs.readFileSync(path.join(projectRoot(), "docs", "contract.md"), "utf8")).toBe(renderContractMarkdown(doc));
});

test("every field of every operation and heartbeat has a description", () => {
  const fields: Array<{ where: string; schema: Schema }> = [];
  for (const service of ["controller", "shard", "node"] as const) {
    for (const [name, op] of Object.entries(plain[service])) fields.push(...properties(op.request, `${name} request`), ...properties(op.reply, `${name} reply`));
  }
  for (const [name, hb] of Object.entries(plain.heartbeats)) fields.push(...properties(hb, `${name} heartbeat`));
  expect(fields.length).toBeGreaterThan(250);
  const missing = fields.filter((f) => typeof f.schema["description"] !== "string" || (f.schema["description"] as string).length < 8).map((f) => f.where);
  expect(missing).toEqual([]);
});

test("the export holds every protocol section a client is written from", () => {
  const expected = ["overview", "lambda", "natsBody", "chunking", "directTransport", "binaryMeta", "writes", "ranges", "paths", "checksums", "errors"];
  expect(Object.keys(plain.protocol)).toEqual(expected);
  for (const key of expected) {
    const s = plain.protocol[key]!;
    expect(s.title.length).toBeGreaterThan(0);
    expect(s.text.length).toBeGreaterThan(0);
  }
  expect(Object.keys(plain.protocol["directTransport"]!.sections ?? {})).toEqual(["frame", "handshake", "limits"]);
  // Byte layouts where bytes are laid out; the order of steps where order matters.
  for (const s of [plain.protocol["natsBody"]!, plain.protocol["directTransport"]!.sections!["frame"]!, plain.protocol["binaryMeta"]!]) expect(s.layout?.length).toBeGreaterThan(2);
  for (const s of [plain.protocol["chunking"]!, plain.protocol["writes"]!, plain.protocol["ranges"]!, plain.protocol["directTransport"]!.sections!["handshake"]!]) expect(s.steps?.length).toBeGreaterThan(2);
  expect(plain.protocol["errors"]!.table?.map((row) => row["code"])).toEqual(Object.values(ErrorCode));
  for (const row of plain.protocol["errors"]!.table ?? []) expect(["no", "backoff", "reread"]).toContain(row["retry"]);
});

test("docs/contract.md has a heading for every section and every operation", () => {
  const md = renderContractMarkdown(contractDocument());
  for (const s of Object.values(plain.protocol)) expect(md).toContain(`## ${s.title}\n`);
  for (const service of ["controller", "shard", "node"] as const) {
    for (const name of Object.keys(plain[service])) expect(md).toContain(`### \`${name}\`\n`);
  }
});
