// Builds the SDK package into client/dist: tsc compiles client/index.ts and
// what it imports (bus/, schemas/, lib/) to CommonJS with declarations; then
// the ESM entry is written as a thin wrapper over that build, so `import`
// and `require` share one copy of the SDK (one PocketError class for
// instanceof). Fails if anything outside those folders was pulled in.
const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const pkg = path.join(__dirname, "..");
const dist = path.join(pkg, "dist");
/** The folders of the repository the SDK may ship: anything else (actors/, native/, deploy/) is not a lambda's. */
const shipped = new Set(["client", "bus", "schemas", "lib"]);

fs.rmSync(dist, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(pkg, "tsconfig.json")], { cwd: pkg, stdio: "inherit" });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const extra = fs.readdirSync(dist).filter((d) => !shipped.has(d));
if (extra.length > 0) {
  process.stderr.write(`build: the SDK imports ${extra.map((d) => `${d}/`).join(", ")}, which it must not ship; only ${[...shipped].join(", ")} may be imported\n`);
  process.exit(1);
}

const names = Object.keys(require(path.join(dist, "client", "index.js"))).filter((n) => n !== "__esModule").sort();
for (const n of names) {
  if (!/^[A-Za-z_$][\w$]*$/.test(n)) throw new Error(`build: export ${JSON.stringify(n)} is not an identifier`);
}
fs.mkdirSync(path.join(dist, "esm"));
fs.writeFileSync(path.join(dist, "esm", "index.mjs"), [
  "// The ESM entry: the CommonJS build's exports, one copy of the SDK for import and require alike.",
  'import sdk from "../client/index.js";',
  "",
  `export const {\n${names.map((n) => `  ${n},`).join("\n")}\n} = sdk;`,
  "",
].join("\n"));
fs.writeFileSync(path.join(dist, "esm", "index.d.mts"), 'export * from "../client/index.js";\n');
process.stdout.write(`build: ${names.length} exports, CommonJS and ESM, in ${path.relative(process.cwd(), dist) || "."}\n`);
