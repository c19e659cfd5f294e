// After tsc: makes the CLI entry executable, and removes compiled files whose
// source is gone (a moved or deleted module must not linger in dist/ and be
// run by a spawned actor or imported by a stale path).
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const dist = path.join(root, "dist");
fs.chmodSync(path.join(dist, "cli", "pocket.js"), 0o755);

let removed = 0;
function sweep(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      sweep(p);
      if (fs.readdirSync(p).length === 0) fs.rmdirSync(p);
      continue;
    }
    const m = /^(.*)\.js(\.map)?$/.exec(e.name);
    if (!m) continue;
    const source = path.join(root, path.relative(dist, dir), `${m[1]}.ts`);
    if (!fs.existsSync(source)) {
      fs.unlinkSync(p);
      removed++;
    }
  }
}
sweep(dist);
if (removed > 0) process.stdout.write(`post-build: removed ${removed} compiled files whose source is gone\n`);
