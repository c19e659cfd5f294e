import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "../../lib/ports";

/** The directory with initdb and postgres (Debian: /usr/lib/postgresql/<major>/bin), or POCKET_PG_BIN. */
export function postgresBinDir(): string {
  const fromEnv = process.env["POCKET_PG_BIN"];
  if (fromEnv && fs.existsSync(path.join(fromEnv, "postgres"))) return fromEnv;
  const root = "/usr/lib/postgresql";
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const m of majors) {
    const bin = path.join(root, m, "bin");
    if (fs.existsSync(path.join(bin, "postgres"))) return bin;
  }
  throw new Error("PostgreSQL server binaries not found. Install them with `bash scripts/provision.sh postgresql`, or point POCKET_PG_BIN at them.");
}

/**
 * A private PostgreSQL instance in a temp directory on a free port, for
 * tests and local runs. As root it runs as the `postgres` user (PostgreSQL
 * refuses to run as root). Trust authentication on loopback only.
 *
 * @example
 *   const pg = await PostgresServer.start();
 *   // ... connect to pg.url ...
 *   await pg.stop();
 */
export class PostgresServer {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  private constructor(readonly dir: string, readonly port: number) {}

  static async start(options: { readyTimeoutMs?: number } = {}): Promise<PostgresServer> {
    const bin = postgresBinDir();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-pg-"));
    const asRoot = process.getuid?.() === 0;
    const user = asRoot ? { uid: idOf("-u"), gid: idOf("-g") } : {};
    if (asRoot) fs.chownSync(dir, user.uid!, user.gid!);
    const data = path.join(dir, "data");
    const init = spawnSync(path.join(bin, "initdb"), ["-D", data, "-A", "trust", "-U", "pocket", "--no-sync", "-E", "UTF8"], { encoding: "utf8", cwd: dir, ...user });
    if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr || init.stdout}`);
    const s = new PostgresServer(dir, await freePort());
    const args = [
      "-D", data, "-p", String(s.port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
      "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=50",
    ];
    const log = fs.openSync(path.join(dir, "postgres.log"), "a");
    if (asRoot) fs.fchownSync(log, user.uid!, user.gid!);
    s.#child = spawn(path.join(bin, "postgres"), args, { stdio: ["ignore", log, log], cwd: dir, ...user });
    fs.closeSync(log);
    s.#exited = new Promise((resolve) => s.#child!.once("exit", () => resolve()));
    await s.#waitReady(bin, options.readyTimeoutMs ?? 20_000);
    return s;
  }

  /** Connection URL of the `postgres` database as the `pocket` superuser. */
  get url(): string { return `postgres://pocket@127.0.0.1:${this.port}/postgres`; }

  /** Creates a database and returns its URL. */
  async createDatabase(name: string): Promise<string> {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`database name ${JSON.stringify(name)} is not a plain identifier`);
    const { Client } = await import("pg");
    const c = new Client({ connectionString: this.url });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE ${name}`);
    } finally {
      await c.end();
    }
    return `postgres://pocket@127.0.0.1:${this.port}/${name}`;
  }

  async #waitReady(bin: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.#child?.exitCode !== null) break;
      const r = spawnSync(path.join(bin, "pg_isready"), ["-h", "127.0.0.1", "-p", String(this.port)], { encoding: "utf8" });
      if (r.status === 0) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    const log = fs.existsSync(path.join(this.dir, "postgres.log")) ? fs.readFileSync(path.join(this.dir, "postgres.log"), "utf8").slice(-2000) : "";
    await this.stop();
    throw new Error(`postgres did not start: ${log}`);
  }

  async stop(): Promise<void> {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill("SIGINT"); // fast shutdown
      const t = setTimeout(() => this.#child?.kill("SIGKILL"), 10_000);
      await this.#exited;
      clearTimeout(t);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The postgres user's uid (`-u`) or gid (`-g`). */
function idOf(flag: "-u" | "-g"): number {
  const r = spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error("running as root needs the `postgres` user (Debian's postgresql package creates it)");
  return Number(r.stdout.trim());
}
