// After tsc: makes the CLI entry executable, and removes compiled files whose
// source is gone (a moved or deleted module must not linger in dist/ and be
// run by a spawned actor or imported by a stale path).
const fs = require("node:fs");
const path = require("node:path");

const { spawnSync } = require("node:child_process");

const root = path.join(__dirname, "..");
const dist = path.join(root, "dist");

// tsc's incremental build does not write an output it believes current, even when it was deleted from dist/:
// if any source has no compiled file, build again in full.
const include = JSON.parse(fs.readFileSync(path.join(root, "tsconfig.json"), "utf8")).include;
function missingOutputs(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) missingOutputs(p, out);
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") && !fs.existsSync(path.join(dist, path.relative(root, p)).replace(/\.ts$/, ".js"))) out.push(p);
  }
  return out;
}
const missing = include.flatMap((d) => (fs.existsSync(path.join(root, d)) ? missingOutputs(path.join(root, d)) : []));
if (missing.length > 0) {
  process.stdout.write(`post-build: ${missing.length} source(s) had no compiled file (${path.relative(root, missing[0])}, ...); building in full\n`);
  fs.rmSync(path.join(dist, ".tsbuildinfo"), { force: true });
  const r = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

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
