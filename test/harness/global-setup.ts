import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { sourceFiles } from "./sources";

/**
 * Tests run from TypeScript sources, but the actor processes they spawn run
 * the compiled JS in dist/: a run against a stale dist/ tests old code.
 * Before any test file runs, this rebuilds dist/ (incremental `tsc`, then
 * `scripts/post-build.js`) when a source compiled by tsconfig.json is newer
 * than its .js, or the .js is missing. Nothing changed costs one `stat` per
 * source; tsc does not run then.
 */

const root = path.join(__dirname, "..", "..");
const dist = path.join(root, "dist");
const tsconfig = path.join(root, "tsconfig.json");
const buildInfo = path.join(dist, ".tsbuildinfo");
/**
 * One rebuild at a time across jest runs in this tree (outside dist/, whose empty folders post-build removes);
 * a lock older than `lockStaleMs` is left over from a killed run.
 */
const lockDir = path.join(os.tmpdir(), `pocket-rebuild-${createHash("sha256").update(root).digest("hex").slice(0, 12)}.lock`);
const lockStaleMs = 10 * 60_000;
const lockWaitMs = 5 * 60_000;
const lockPollMs = 200;
const tscTimeoutMs = 5 * 60_000;
/** tsc's exit status when it reported errors but wrote its output anyway. */
const tscEmittedWithErrors = 2;

/** The .ts sources tsconfig.json compiles (its `include` folders, without declaration files). */
function sources(): string[] {
  const include = (JSON.parse(fs.readFileSync(tsconfig, "utf8")) as { include: string[] }).include;
  const out: string[] = [];
  for (const dir of include) if (fs.existsSync(path.join(root, dir))) sourceFiles(path.join(root, dir), out);
  return out;
}

function compiledOf(source: string): string {
  return path.join(dist, path.relative(root, source)).replace(/\.ts$/, ".js");
}

function mtimeMs(file: string): number | undefined {
  return fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs;
}

/** Sources whose compiled .js is missing or older than they are (and tsconfig.json, when newer than the last build). */
function stale(): string[] {
  const out = sources().filter((s) => {
    const js = mtimeMs(compiledOf(s));
    return js === undefined || mtimeMs(s)! > js;
  });
  const info = mtimeMs(buildInfo);
  if (info === undefined || mtimeMs(tsconfig)! > info) out.push(tsconfig);
  return out;
}

function run(command: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(command, args, { cwd: root, encoding: "utf8", timeout: tscTimeoutMs });
  if (r.error) throw new Error(`${command} ${args.join(" ")}: ${r.error.message}`, { cause: r.error });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

function tsc(): void {
  const r = run("npx", ["tsc", "-p", "tsconfig.json"]);
  if (r.status === 0) return;
  if (r.status !== tscEmittedWithErrors) throw new Error(`global setup: tsc wrote nothing (status ${r.status}):\n${r.output}`);
  // Type errors (an edit in progress) do not stop the emit: the tests still run against what the sources say.
  const errors = r.output.split("\n").filter((l) => /error TS\d+/.test(l));
  process.stdout.write(`global setup: tsc reported ${errors.length} type error(s); dist/ was written anyway:\n${errors.slice(0, 10).join("\n")}\n`);
}

function rebuild(before: readonly string[]): void {
  const t0 = Date.now();
  tsc();
  // tsc's incremental build does not write outputs it believes current (deleted from dist/ by hand): build in full then.
  if (sources().some((s) => mtimeMs(compiledOf(s)) === undefined)) {
    fs.rmSync(buildInfo, { force: true });
    tsc();
  }
  // A source saved without a change in content is not emitted again: mark its .js as checked against it
  // (only if saved before this build began, so that tsc read what it holds now).
  const now = new Date();
  for (const s of before) {
    if (s === tsconfig) continue;
    const js = compiledOf(s);
    const [sm, jm] = [mtimeMs(s), mtimeMs(js)];
    if (sm !== undefined && jm !== undefined && sm > jm && sm < t0) fs.utimesSync(js, now, now);
  }
  const info = mtimeMs(buildInfo);
  if (info !== undefined && mtimeMs(tsconfig)! > info) fs.utimesSync(buildInfo, now, now);
  const post = run(process.execPath, [path.join("scripts", "post-build.js")]);
  if (post.status !== 0) throw new Error(`global setup: scripts/post-build.js failed (status ${post.status}):\n${post.output}`);
  if (post.output) process.stdout.write(`${post.output}\n`);
  const missing = sources().filter((s) => mtimeMs(compiledOf(s)) === undefined).map((s) => path.relative(root, s));
  if (missing.length > 0) throw new Error(`global setup: tsc wrote no .js for ${missing.join(", ")}`);
  const named = before.slice(0, 3).map((s) => path.relative(root, s)).join(", ");
  process.stdout.write(`global setup: rebuilt dist/ in ${((Date.now() - t0) / 1000).toFixed(1)} s (${before.length} source(s) newer than their build: ${named}${before.length > 3 ? ", ..." : ""})\n`);
}

/** Takes the rebuild lock, waiting for another run's rebuild to finish; false if it is still held at the deadline. */
async function lock(): Promise<boolean> {
  const deadline = Date.now() + lockWaitMs;
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const held = mtimeMs(lockDir);
    if (held !== undefined && Date.now() - held > lockStaleMs) {
      fs.rmSync(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, lockPollMs));
  }
}

/** Jest's `globalSetup` hook (jest takes the module's default export). */
export default async function globalSetup(): Promise<void> {
  if (stale().length === 0) return;
  if (!(await lock())) throw new Error(`global setup: ${lockDir} held for over ${lockWaitMs / 1000} s; remove it if no build is running`);
  try {
    // Another run may have rebuilt while this one waited.
    const before = stale();
    if (before.length > 0) rebuild(before);
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}
