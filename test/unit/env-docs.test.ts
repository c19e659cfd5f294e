import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { EnvVars } from "../../cli/env-vars";

/*
 * Every environment variable the code reads is documented: in the README's
 * "Environment" section, and, when the product reads it (anything outside
 * the tests and scripts/), in `pocket help env` (cli/env-vars.ts). Documented
 * names that nothing reads any more fail too.
 */

const root = projectRoot();
const scanned = ["lib", "schemas", "bus", "native", "actors", "client", "clients", "cli", "deploy", "bench", "examples", "scripts", "test"];
const extensions = [".ts", ".js", ".sh", ".py", ".cc", ".h"];

/** How each kind of source reads a variable; the name is the first group that matched. */
const readPatterns: ReadonlyArray<{ readonly ext: readonly string[]; readonly pattern: RegExp }> = [
  // process.env.NAME, process.env["NAME"], env["NAME"] (an env object handed in), env.NAME
  { ext: [".ts", ".js"], pattern: /\benv(?:\.([A-Z][A-Z0-9_]*)\b|\[\s*["'`]([A-Z][A-Z0-9_]*)["'`]\s*\])/g },
  // $POCKET_NAME, ${POCKET_NAME:-default} (the shell's own variables are not ours to document)
  { ext: [".sh"], pattern: /\$\{?(POCKET_[A-Z0-9_]+)/g },
  // os.environ["NAME"], os.environ.get("NAME"), os.getenv("NAME")
  { ext: [".py"], pattern: /\b(?:environ(?:\.get\(|\[)|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']/g },
  { ext: [".cc", ".h"], pattern: /\bgetenv\(\s*"([A-Z][A-Z0-9_]*)"/g },
];

function filesUnder(dir: string, out: string[] = []): string[] {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "dist" || e.name === "build" || e.name.startsWith(".") || e.name === "__pycache__") continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) filesUnder(p, out);
    else if (extensions.some((x) => e.name.endsWith(x)) && !e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** Names read in `source` (a file with extension `ext`). */
export function envReads(source: string, ext: string): string[] {
  const names = new Set<string>();
  for (const { ext: exts, pattern } of readPatterns) {
    if (!exts.includes(ext)) continue;
    for (const m of source.matchAll(pattern)) names.add(m.slice(1).find((g) => g !== undefined)!);
  }
  return [...names];
}

/** Every name read, with the files that read it (paths from the project root). */
function readsInCode(): Map<string, string[]> {
  const reads = new Map<string, string[]>();
  const self = path.relative(root, __filename);
  for (const top of scanned) {
    for (const file of filesUnder(path.join(root, top))) {
      const rel = path.relative(root, file);
      if (rel === self) continue;
      for (const name of envReads(fs.readFileSync(file, "utf8"), path.extname(file))) reads.set(name, [...(reads.get(name) ?? []), rel]);
    }
  }
  return reads;
}

/** The README's "Environment" section, to the next section of the same level. */
function readmeEnvironment(): string {
  const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
  const start = readme.indexOf("\n## Environment\n");
  if (start < 0) throw new Error("README.md has no \"## Environment\" section");
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** Names in the first column of the section's tables. */
function documentedIn(section: string): Set<string> {
  return new Set([...section.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((m) => m[1]!));
}

/** Code that ships: not the tests (test/, native/test/, clients/python/tests/) nor the scripts that run them. */
const isProduct = (file: string): boolean => !file.split(path.sep).some((part) => part === "test" || part === "tests" || part === "scripts");

test("every environment variable the code reads is in the README's Environment section, and the product's in `pocket help env`", () => {
  const reads = readsInCode();
  expect(reads.size).toBeGreaterThan(10);
  const readme = documentedIn(readmeEnvironment());
  const help = new Set<string>(EnvVars.map((v) => v.name));
  const missing = [...reads].filter(([name]) => !readme.has(name)).map(([name, files]) => `${name} (read in ${files.join(", ")}) is not in README.md's Environment section`);
  const notInHelp = [...reads].filter(([name, files]) => files.some(isProduct) && !help.has(name))
    .map(([name, files]) => `${name} (read in ${files.filter(isProduct).join(", ")}) is not in cli/env-vars.ts (pocket help env)`);
  expect([...missing, ...notInHelp]).toEqual([]);
});

test("the README's table says what `pocket help env` says, row for row", () => {
  const section = readmeEnvironment();
  const rows = EnvVars.map((v) => `| \`${v.name}\` | ${v.readBy} | ${v.meaning} | ${v.default} |`);
  expect(rows.filter((r) => !section.includes(`\n${r}\n`))).toEqual([]);
});

test("nothing documented that the code no longer reads", () => {
  const reads = readsInCode();
  const productReads = new Set([...reads].filter(([, files]) => files.some(isProduct)).map(([name]) => name));
  expect([...documentedIn(readmeEnvironment())].filter((n) => !reads.has(n))).toEqual([]);
  expect(EnvVars.map((v) => v.name).filter((n) => !productReads.has(n))).toEqual([]);
});

test("the scan finds reads in each language's usual forms", () => {
  const p = "POCKET";
  expect(envReads(`const a = process.env["${p}_A"]; const b = process.env.${p}_B; f({ x: env['${p}_C'] }); env.clock;`, ".ts").sort()).toEqual([`${p}_A`, `${p}_B`, `${p}_C`]);
  expect(envReads(`dir="\${${p}_D:-/var/tmp}"; echo $${p}_E $HOME`, ".sh").sort()).toEqual([`${p}_D`, `${p}_E`]);
  expect(envReads(`t = os.environ["${p}_F"]; u = os.environ.get('${p}_G'); v = os.getenv("${p}_H")`, ".py").sort()).toEqual([`${p}_F`, `${p}_G`, `${p}_H`]);
  expect(envReads(`const char* s = getenv("${p}_I");`, ".cc")).toEqual([`${p}_I`]);
});
