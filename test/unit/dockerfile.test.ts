import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { sourceFiles } from "../harness/sources";

/*
 * The Dockerfile, checked without a Docker daemon: what each stage copies
 * exists (in the build context, or as something an earlier stage builds),
 * the stages it names exist, the entrypoint is in the final image and runs
 * what the build produces, and the build meets the package's own install
 * steps (its preinstall provisioning, node-gyp's headers, the addon's
 * library at run time).
 */

const root = projectRoot();

interface Instruction { readonly op: string; readonly args: string; readonly line: number }
interface Stage { readonly name: string; readonly base: string; readonly instructions: Instruction[] }

/** Instructions of a Dockerfile: comment lines dropped, continuation lines joined. */
function instructionsOf(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current: { text: string; line: number } | undefined;
  text.split("\n").forEach((raw, i) => {
    if (/^\s*#/.test(raw) || (current === undefined && raw.trim() === "")) return;
    const continued = /\\\s*$/.test(raw);
    const part = raw.replace(/\\\s*$/, "");
    current = current ? { text: `${current.text} ${part.trim()}`, line: current.line } : { text: part.trim(), line: i + 1 };
    if (continued) return;
    const m = /^(\w+)\s+(.*)$/.exec(current.text);
    if (!m) throw new Error(`Dockerfile line ${current.line}: cannot read ${JSON.stringify(current.text)}`);
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!, line: current.line });
    current = undefined;
  });
  return out;
}

/** Stages, with ARGs declared before the first FROM substituted in FROM lines. */
function stagesOf(instructions: readonly Instruction[]): Stage[] {
  const globals: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === "ARG" && stages.length === 0) {
      const [k, v] = ins.args.split("=");
      globals[k!] = v ?? "";
      continue;
    }
    if (ins.op === "FROM") {
      const from = ins.args.replace(/\$\{(\w+)\}/g, (_, k: string) => globals[k] ?? "");
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(from)!;
      stages.push({ base: m[1]!, name: m[2] ?? String(stages.length), instructions: [] });
      continue;
    }
    if (stages.length === 0) throw new Error(`Dockerfile line ${ins.line}: ${ins.op} before FROM`);
    stages[stages.length - 1]!.instructions.push(ins);
  }
  return stages;
}

interface Copy { readonly from: string | undefined; readonly sources: string[]; readonly dest: string; readonly line: number }

function copiesOf(stage: Stage): Copy[] {
  return stage.instructions.filter((i) => i.op === "COPY" || i.op === "ADD").map((i) => {
    const words = i.args.trim().startsWith("[") ? JSON.parse(i.args) as string[] : i.args.split(/\s+/);
    const flags = words.filter((w) => w.startsWith("--"));
    const rest = words.filter((w) => !w.startsWith("--"));
    return { from: flags.find((f) => f.startsWith("--from="))?.slice("--from=".length), sources: rest.slice(0, -1), dest: rest[rest.length - 1]!, line: i.line };
  });
}

/** Whether .dockerignore leaves `rel` (a path in the context) out of the build context. */
function ignored(rel: string, patterns: readonly string[]): boolean {
  const parts = rel.split("/");
  return patterns.some((p) => {
    const re = new RegExp(`^${p.replace(/\/$/, "").split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")}$`);
    return parts.some((_, i) => re.test(parts.slice(0, i + 1).join("/")));
  });
}

const dockerfile = fs.readFileSync(path.join(root, "Dockerfile"), "utf8");
const stages = stagesOf(instructionsOf(dockerfile));
const dockerignore = fs.readFileSync(path.join(root, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const final = stages[stages.length - 1]!;
const workdir = (s: Stage): string => s.instructions.filter((i) => i.op === "WORKDIR").pop()?.args ?? "/";
const runs = (s: Stage): string[] => s.instructions.filter((i) => i.op === "RUN").map((i) => i.args);

/** In the context: exists in the repository and is not ignored. */
function inContext(rel: string): string | undefined {
  if (rel === ".") return undefined;
  if (!fs.existsSync(path.join(root, rel))) return `${rel} does not exist`;
  return ignored(rel, dockerignore) ? `${rel} is left out by .dockerignore` : undefined;
}

/**
 * Whether `stage` has `abs` once built: copied from the context, or produced
 * by its RUN steps (npm ci: node_modules and, through the package's install
 * script, the addon binding.gyp names; npm run build: tsc's output in dist/
 * for each folder tsconfig.json includes).
 */
function produces(stage: Stage, abs: string): string | undefined {
  const rel = path.posix.relative(workdir(stage), abs);
  if (rel.startsWith("..")) return `${abs} is outside ${stage.name}'s working directory`;
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const ran = (cmd: string): boolean => runs(stage).some((r) => r.includes(cmd));
  if (rel === "node_modules") return ran("npm ci") ? undefined : "node_modules: no npm ci";
  const gyp = fs.readFileSync(path.join(root, "binding.gyp"), "utf8");
  const target = /"target_name":\s*"([^"]+)"/.exec(gyp)![1]!;
  if (rel === `build/Release/${target}.node`) return ran("npm ci") && pkg.scripts["install"]?.includes("node-gyp rebuild") ? undefined : `${rel}: nothing builds the addon`;
  const tsconfig = JSON.parse(fs.readFileSync(path.join(root, "tsconfig.json"), "utf8")) as { compilerOptions: { outDir: string }; include: string[] };
  const out = tsconfig.compilerOptions.outDir;
  if (rel.startsWith(`${out}/`)) {
    const dir = rel.slice(out.length + 1).split("/")[0]!;
    const built = ran("npm run build") && tsconfig.include.includes(dir) && sourceFiles(path.join(root, dir)).length > 0;
    return built ? undefined : `${rel}: tsc builds no such folder`;
  }
  const fromContext = copiesOf(stage).filter((c) => c.from === undefined).some((c) => c.sources.some((s) =>
    (s === "." && path.posix.resolve(workdir(stage), c.dest) === workdir(stage) && inContext(rel) === undefined)
    || path.posix.resolve(workdir(stage), c.dest, path.basename(s)) === abs || path.posix.resolve(workdir(stage), c.dest) === abs));
  return fromContext ? undefined : `${abs}: ${stage.name} neither copies nor builds it`;
}

test("every COPY from the context names something in it", () => {
  const problems: string[] = [];
  for (const s of stages) for (const c of copiesOf(s).filter((x) => x.from === undefined)) for (const src of c.sources) {
    const p = inContext(src);
    if (p) problems.push(`line ${c.line}: ${p}`);
  }
  expect(problems).toEqual([]);
  expect(inContext("node_modules")).toMatch(/left out/);
  expect(inContext("native/nope")).toMatch(/does not exist/);
});

test("every COPY --from names an earlier stage and something that stage builds or copies", () => {
  const problems: string[] = [];
  stages.forEach((s, i) => {
    for (const c of copiesOf(s).filter((x) => x.from !== undefined)) {
      const from = stages.slice(0, i).find((x) => x.name === c.from);
      if (!from) { problems.push(`line ${c.line}: no stage ${c.from} before ${s.name}`); continue; }
      for (const src of c.sources) {
        const p = produces(from, src);
        if (p) problems.push(`line ${c.line}: ${p}`);
      }
    }
  });
  expect(problems).toEqual([]);
  const build = stages.find((s) => s.name === "build")!;
  expect(produces(build, "/app/dist/nowhere")).toMatch(/no such folder/);
  expect(produces(build, "/app/build/Release/other.node")).toMatch(/neither copies nor builds/);
});

test("the entrypoint is in the final image, executable, and runs the actor entry point the build compiles into it", () => {
  const entry = JSON.parse(final.instructions.filter((i) => i.op === "ENTRYPOINT").pop()!.args) as string[];
  const copy = copiesOf(final).find((c) => path.posix.resolve(workdir(final), c.dest) === entry[0]);
  expect(copy).toBeDefined();
  const rel = path.posix.relative(workdir(final), copy!.sources[0]!.replace(/^\/app\//, `${workdir(final)}/`));
  expect(fs.statSync(path.join(root, rel)).mode & 0o111).not.toBe(0);
  const script = fs.readFileSync(path.join(root, rel), "utf8");
  // The script finds the app one folder above its own.
  expect(script).toContain(`app="$(cd "$(dirname "$0")/.." && pwd)"`);
  expect(path.posix.dirname(path.posix.dirname(entry[0]!))).toBe(workdir(final));
  const target = /exec node "\$app\/([^"]+)"/.exec(script)![1]!;
  expect(target).toBe("dist/actors/main.js");
  expect(fs.existsSync(path.join(root, "actors", "main.ts"))).toBe(true);
  const copiedDist = copiesOf(final).filter((c) => c.from !== undefined).flatMap((c) => c.sources.map((s) => path.posix.relative(workdir(final), s)));
  expect(copiedDist).toContain(path.posix.dirname(target));
  expect(final.instructions.filter((i) => i.op === "USER").pop()?.args).toMatch(/^(?!0\b|root\b)\S+/);
});

test("the build installs what the package's preinstall provisions, before npm ci, and builds against its own Node's headers", () => {
  const build = stages.find((s) => s.name === "build")!;
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const pre = /scripts\/provision\.sh\s+(.*)$/.exec(pkg.scripts["preinstall"]!)![1]!.split(/\s+/);
  const always = [...fs.readFileSync(path.join(root, "scripts", "provision.sh"), "utf8").matchAll(/\|\| need\+=\(([\w-]+)\)/g)].map((m) => m[1]!);
  expect(always).toContain("nats-server");
  const order = build.instructions.map((i) => i.args);
  const ci = order.findIndex((a) => a.includes("npm ci"));
  const installed = build.instructions.slice(0, ci).filter((i) => i.op === "RUN").flatMap((i) => /apt-get install (.*?)(&&|$)/.exec(i.args)?.[1]?.split(/\s+/) ?? []);
  for (const p of [...pre, ...always]) expect(installed).toContain(p);
  if (/^nodedir=/m.test(fs.readFileSync(path.join(root, ".npmrc"), "utf8"))) {
    const env = build.instructions.slice(0, ci).find((i) => i.op === "ENV" && i.args.includes("npm_config_nodedir="));
    expect(env?.args).toMatch(/npm_config_nodedir=\/usr\/local\b/);
  }
});

test("the runtime image has the shared library of each library the addon links, and the Node the package needs", () => {
  const gyp = fs.readFileSync(path.join(root, "binding.gyp"), "utf8");
  // Debian's runtime package of each library the addon links (bookworm).
  const runtimePackage: Record<string, string> = { uring: "liburing2" };
  const libs = [...gyp.matchAll(/"-l(\w+)"/g)].map((m) => m[1]!);
  expect(libs.length).toBeGreaterThan(0);
  const installed = runs(final).flatMap((r) => /apt-get install (.*?)(&&|$)/.exec(r)?.[1]?.split(/\s+/) ?? []);
  for (const l of libs) expect(installed).toContain(runtimePackage[l]);
  const engines = (JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { engines: { node: string } }).engines.node;
  for (const s of stages) expect(Number(/^node:(\d+)/.exec(s.base)![1])).toBeGreaterThanOrEqual(Number(/\d+/.exec(engines)![0]));
});

test("the parser reads continuations, stages and ignore patterns as Docker does", () => {
  const ins = instructionsOf("ARG V=20\nFROM node:${V} AS a\nRUN a \\\n  # note\n  b\nFROM a\nCOPY --from=a /x /y\n");
  expect(ins.map((i) => i.op)).toEqual(["ARG", "FROM", "RUN", "FROM", "COPY"]);
  expect(ins[2]!.args).toBe("a b");
  expect(stagesOf(ins).map((s) => `${s.name}:${s.base}`)).toEqual(["a:node:20", "1:a"]);
  expect(ignored("dist/actors/main.js", ["dist"])).toBe(true);
  expect(ignored("pocket-sort-timeline.svg", ["pocket-sort-timeline.*"])).toBe(true);
  expect(ignored("deploy/kubernetes/nats.conf", ["dist", "*.log"])).toBe(false);
});
