import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";

export type ActorRole = "controller" | "shard" | "node";

/** The project's root (where package.json is), from this file's place in src or dist. */
export function projectRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find the project root");
    dir = up;
  }
  return dir;
}

export interface ActorProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

/**
 * Starts one actor as its own Node process (`dist/actors/runtime/main.js`),
 * stderr to `<logsDir>/<name>.log`, and waits for its ready line.
 * POCKET_ACTOR_NODE_ARGS passes flags to every actor process, e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/prof".
 */
export async function spawnActor(role: ActorRole, name: string, config: object, logsDir: string, readyTimeoutMs = 15_000): Promise<ActorProcess> {
  const main = path.join(projectRoot(), "dist", "actors", "runtime", "main.js");
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  fs.mkdirSync(logsDir, { recursive: true });
  const logPath = path.join(logsDir, `${name}.log`);
  const log = fs.openSync(logPath, "a");
  const nodeArgs = (process.env["POCKET_ACTOR_NODE_ARGS"] ?? "").split(/\s+/).filter((a) => a.length > 0);
  const child = spawn(process.execPath, [...nodeArgs, main, role], {
    env: { ...process.env, POCKET_ACTOR_CONFIG: JSON.stringify(config) },
    stdio: ["ignore", "pipe", log],
  });
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`${name} not ready within ${readyTimeoutMs} ms; see ${logPath}`)), readyTimeoutMs);
    lines.once("line", () => { clearTimeout(timer); lines.close(); resolve(); });
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}; see ${logPath}`)); });
  }).catch((e: unknown) => {
    child.kill("SIGKILL");
    throw e;
  });
  // Nothing more is read from stdout; do not let a full pipe block the child.
  child.stdout!.resume();
  return { child, exited };
}

/** Stops a child: SIGTERM, SIGKILL after `graceMs`. */
export async function stopChild(p: ActorProcess, graceMs = 5_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGTERM");
  const t = setTimeout(() => p.child.kill("SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(t);
}

/** True when `pid` is a live process running our actor entry point (a pid file may outlive its process). */
export function isActorPid(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(path.join("actors", "runtime", "main.js"));
  } catch {
    return false;
  }
}
