import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../lib/process";

test("the checked-in JSON Schema export matches the operation declarations", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-schema-"));
  const r = spawnSync(process.execPath, [path.join(projectRoot(), "dist", "cli", "export-json-schema.js"), out], { encoding: "utf8" });
  expect(r.status).toBe(0);
  const fresh = fs.readFileSync(path.join(out, "pocket-operations.json"), "utf8");
  const checkedIn = fs.readFileSync(path.join(projectRoot(), "schemas", "json", "pocket-operations.json"), "utf8");
  fs.rmSync(out, { recursive: true, force: true });
  // On a difference: `npm run build && npm run schemas:export`, and review the diff.
  expect(fresh).toBe(checkedIn);
});
