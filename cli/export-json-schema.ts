#!/usr/bin/env node
/**
 * Writes the wire contract, so that a lambda in another language can talk to
 * the cluster: every operation's request and reply as JSON Schema with the
 * protocol's rules (`<jsonDir>/pocket-operations.json`), and the same as
 * Markdown (`<docsDir>/contract.md`):
 *   node dist/cli/export-json-schema.js [jsonDir = schemas/json] [docsDir = docs]
 */
import fs from "node:fs";
import path from "node:path";
import { contractDocument, contractJson } from "./contract-document";
import { renderContractMarkdown } from "./contract-markdown";

const jsonDir = process.argv[2] ?? "schemas/json";
const docsDir = process.argv[3] ?? "docs";
const doc = contractDocument();
for (const [dir, name, text] of [[jsonDir, "pocket-operations.json", contractJson(doc)], [docsDir, "contract.md", renderContractMarkdown(doc)]] as const) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  process.stdout.write(`wrote ${file}\n`);
}
