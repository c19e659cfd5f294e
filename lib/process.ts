import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";

/** The project's root (where package.json is), from this file's place in the sources or in dist. */
export function projectRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find the project root");
    dir = up;
  }
  return dir;
}

export interface ReadyProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  /** The first line it printed (its ready line). */
  readonly readyLine: string;
}

export interface SpawnReadyOptions {
  /** Extra environment for the child (on top of this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Flags for node itself, before the script. */
  readonly nodeArgs?: readonly string[];
  /** stderr is appended here. */
  readonly logPath: string;
  readonly readyTimeoutMs?: number;
}

/**
 * Starts `node <script> <args>` and waits for its first line on stdout (its
 * ready line), with a deadline; kills it on failure. stderr goes to `logPath`.
 */
export async function spawnReady(script: string, args: readonly string[], options: SpawnReadyOptions): Promise<ReadyProcess> {
  const { logPath } = options;
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  fs.mkdirSync(path.dirname(logPath), { recursive: true });
  const log = fs.openSync(logPath, "a");
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", log],
  });
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const name = path.basename(logPath, ".log");
  const readyLine = await new Promise<string>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`${name} not ready within ${readyTimeoutMs} ms; see ${logPath}`)), readyTimeoutMs);
    lines.once("line", (line) => { clearTimeout(timer); lines.close(); resolve(line); });
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}; see ${logPath}`)); });
  }).catch((e: unknown) => {
    child.kill("SIGKILL");
    throw e;
  });
  // Nothing more is read from stdout; do not let a full pipe block the child.
  child.stdout!.resume();
  return { child, exited, readyLine };
}

/** Stops a child: SIGTERM, SIGKILL after `graceMs`. */
export async function stopChild(p: ReadyProcess, graceMs = 5_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGTERM");
  const t = setTimeout(() => p.child.kill("SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(t);
}

/** True when `pid` is a live process whose command line contains `marker` (a pid file may outlive its process). */
export function pidRuns(pid: number, marker: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker);
  } catch {
    return false;
  }
}
