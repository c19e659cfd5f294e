import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { freePort } from "../lib/ports";

/** Path of redis-server; throws with how to get it when missing. */
export function redisServerBinary(): string {
  for (const c of ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]) if (fs.existsSync(c)) return c;
  const which = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error("redis-server not found: `bash scripts/provision.sh redis-server` (Debian: apt-get install redis-server)");
}

/** A redis-server for benchmarks: loopback, a free port, persistence off. */
export class RedisServer {
  private constructor(readonly port: number, private readonly child: ChildProcess) {}

  get pid(): number | undefined { return this.child.pid; }

  static async start(): Promise<RedisServer> {
    const port = await freePort();
    const child = spawn(redisServerBinary(), [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning",
    ], { stdio: ["ignore", "ignore", "inherit"] });
    const s = new RedisServer(port, child);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
      if (await canConnect(port)) return s;
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error("redis-server did not listen within 10 s");
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    await exited;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.once("connect", () => { s.destroy(); resolve(true); });
    s.once("error", () => resolve(false));
  });
}
