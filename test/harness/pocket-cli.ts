import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import readline from "node:readline";
import path from "node:path";
import { projectRoot } from "../../lib/process";

/** The built `pocket` command, as a user runs it. */
export const pocketCli = path.join(projectRoot(), "dist", "cli", "pocket.js");

export interface CliResult {
  readonly status: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs `pocket ARGS` to its end with this environment (and standard input). */
export function runPocket(args: readonly string[], env: NodeJS.ProcessEnv, input?: Buffer): CliResult {
  const r = spawnSync(process.execPath, [pocketCli, ...args], { env, input, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** A `pocket up` running in the background, and the environment a user of it gets. */
export interface PocketUp {
  readonly process: ChildProcess;
  /** This process's environment plus what `pocket up` printed (POCKET_NATS_URL, POCKET_NATS_CREDS, POCKET_ADMIN_CREDS). */
  readonly env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

const printed = ["POCKET_NATS_URL", "POCKET_NATS_CREDS", "POCKET_ADMIN_CREDS"];

/** Starts `pocket up ARGS` and waits for the lines it prints when the cluster is ready. */
export async function pocketUp(args: readonly string[], readyTimeoutMs = 30_000): Promise<PocketUp> {
  const up = spawn(process.execPath, [pocketCli, "up", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  up.stderr!.on("data", (d: Buffer) => { stderr += d.toString(); });
  const stop = async (): Promise<void> => {
    if (up.exitCode !== null || up.signalCode !== null) return;
    const exited = new Promise((r) => up.once("exit", r));
    up.kill("SIGINT");
    await exited;
  };
  try {
    const vars = await new Promise<Record<string, string>>((resolve, reject) => {
      const got: Record<string, string> = {};
      const timer = setTimeout(() => reject(new Error(`pocket up printed ${Object.keys(got).join(", ") || "nothing"} within ${readyTimeoutMs} ms`)), readyTimeoutMs);
      readline.createInterface({ input: up.stdout! }).on("line", (l) => {
        const eq = l.indexOf("=");
        if (eq > 0) got[l.slice(0, eq)] = l.slice(eq + 1);
        if (printed.every((k) => k in got)) {
          clearTimeout(timer);
          resolve(got);
        }
      });
      up.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`pocket up exited with ${code}: ${stderr}`));
      });
    });
    return { process: up, env: { ...process.env, ...vars }, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Registers a job with `pocket job register`; returns its id and the environment its lambdas get (token and credential). */
export function registerJob(env: NodeJS.ProcessEnv, name: string, ...flags: string[]): { jobId: string; env: NodeJS.ProcessEnv } {
  const r = runPocket(["job", "register", name, ...flags], env);
  if (r.status !== 0) throw new Error(`pocket job register exited with ${r.status}: ${r.stderr}`);
  const vars = Object.fromEntries(r.stdout.toString().trim().split("\n").map((l) => {
    const eq = l.indexOf("=");
    return [l.slice(0, eq), l.slice(eq + 1)] as const;
  }));
  return { jobId: vars["POCKET_JOB"]!, env: { ...env, POCKET_TOKEN: vars["POCKET_TOKEN"], POCKET_CREDS: vars["POCKET_CREDS"] } };
}

/** A process as /proc shows it: its pid, command line and environment. */
export interface ProcInfo {
  readonly pid: number;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/** The processes whose parent is `pid` (from /proc; this user's, so their environment is readable). */
export function childProcesses(pid: number): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    let argv: string[];
    let environ: string[];
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      environ = fs.readFileSync(`/proc/${entry}/environ`, "utf8").split("\0");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ESRCH" || code === "EACCES") continue; // gone since the listing, or not ours
      throw e;
    }
    // Fields after the command name (which may hold spaces, in parentheses): state, then the parent's pid.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid !== pid) continue;
    const env = Object.fromEntries(environ.filter((v) => v.includes("=")).map((v) => [v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1)]));
    out.push({ pid: Number(entry), argv, env });
  }
  return out;
}

/** The storage node processes `pocket up` (process `pid`) started, by node id. */
export function storageNodeProcesses(pid: number): Map<string, number> {
  const nodes = new Map<string, number>();
  for (const p of childProcesses(pid)) {
    if (!p.argv[1]?.endsWith(path.join("dist", "actors", "main.js")) || p.argv[2] !== "node") continue;
    const config = JSON.parse(p.env["POCKET_ACTOR_CONFIG"] ?? "{}") as { nodeId?: string };
    if (config.nodeId) nodes.set(config.nodeId, p.pid);
  }
  return nodes;
}
