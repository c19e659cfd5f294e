import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "../lib/ports";

export interface NatsServerOptions {
  /** Where the config, ports file, JetStream store and log go (a temp dir by default; removed on stop if temp). */
  readonly dir?: string;
  readonly host?: string;
  /** Client port; -1 (default) picks a free one. */
  readonly port?: number;
  readonly jetstream?: boolean;
  /**
   * Largest message (`max_payload`); nats-server's own default (1 MiB) when
   * absent. Bodies longer than a message carries travel in chunks
   * (bus/nats-chunks.ts), so any value of 5 KiB or more works.
   */
  readonly maxPayloadBytes?: number;
  readonly serverName?: string;
  readonly cluster?: { readonly name: string; readonly port: number; readonly routes: readonly number[] };
  /** How long to wait for the server to listen. */
  readonly readyTimeoutMs?: number;
  /**
   * A config file to include: the cluster's bus identities (`ClusterAuth`'s
   * nats-auth.conf). Without it the server lets anyone connect.
   */
  readonly include?: string;
  /** Serve clients over TLS only, with this certificate and key (`ClusterTls`); clients then need the CA. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /**
   * Port of nats-server's HTTP monitoring (`/varz`, `/connz`, `/subsz`,
   * `/jsz`, `/healthz`), on `monitorHost`: -1 (default) picks a free one, 0 turns it off.
   */
  readonly monitorPort?: number;
  /**
   * Interface the monitoring port listens on: 127.0.0.1 (default) whatever
   * `host` is. Monitoring has no authentication, and `/connz?subs=1` lists
   * every connection's name, address and subscriptions: open it wider only
   * where a scraper needs it and nothing else can reach it.
   */
  readonly monitorHost?: string;
}

/** Seconds a client has to complete the TLS handshake. */
const tlsHandshakeTimeoutS = 5;

const candidates = ["/usr/bin/nats-server", "/usr/local/bin/nats-server", "/usr/sbin/nats-server"];

/** Path of the nats-server binary; throws with how to get it when missing. */
export function natsServerBinary(): string {
  const fromEnv = process.env["POCKET_NATS_SERVER"];
  if (fromEnv && fs.existsSync(fromEnv)) return fromEnv;
  for (const c of candidates) if (fs.existsSync(c)) return c;
  const which = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error(
    "nats-server not found. Install it with `npm run provision` (Debian: apt-get install nats-server), " +
      "or point POCKET_NATS_SERVER at the binary.",
  );
}



/**
 * A real nats-server process. Starts on a free port (`-1` plus a ports file),
 * waits for it with a deadline, and can be stopped or restarted on the same port.
 *
 * @example
 *   const ns = await NatsServer.start({ jetstream: true });
 *   // ... connect to ns.url ...
 *   await ns.stop();
 */
export class NatsServer {
  #child: ChildProcess | undefined;
  #url = "";
  #monitorUrl = "";
  #exited: Promise<void> = Promise.resolve();

  private constructor(readonly dir: string, private readonly ownsDir: boolean, private readonly options: NatsServerOptions) {}

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "pocket-nats-"));
    fs.mkdirSync(dir, { recursive: true });
    const s = new NatsServer(dir, ownsDir, options);
    // A failed start stops the process it started and keeps the directory: its error names the log there.
    await s.#spawn(options.port ?? -1, options.monitorPort ?? -1);
    return s;
  }

  get url(): string { return this.#url; }
  /** Base URL of the HTTP monitoring endpoints, e.g. `${monitorUrl}/varz` ("" when off). */
  get monitorUrl(): string { return this.#monitorUrl; }
  get port(): number { return Number(new URL(this.#url).port); }
  get pid(): number | undefined { return this.#child?.pid; }

  async #spawn(port: number, monitorPort: number): Promise<void> {
    const bin = natsServerBinary();
    const portsDir = path.join(this.dir, "ports");
    fs.rmSync(portsDir, { recursive: true, force: true });
    fs.mkdirSync(portsDir, { recursive: true });
    const conf = path.join(this.dir, "nats.conf");
    fs.writeFileSync(conf, this.#config(port, monitorPort, portsDir));
    const log = fs.openSync(path.join(this.dir, "nats.log"), "a");
    const child = spawn(bin, ["-c", conf], { stdio: ["ignore", log, log] });
    fs.closeSync(log);
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    let exitCode: number | null | undefined;
    child.once("exit", (code) => { exitCode = code; });
    const portsFile = path.join(portsDir, `${path.basename(bin)}_${child.pid}.ports`);
    try {
      const ports = await this.#listening(portsFile, monitorPort, () => exitCode);
      this.#url = ports.nats![0]!;
      this.#monitorUrl = ports.monitoring?.[0] ?? "";
      // Pin the ports it chose: nats-server restarted from its own config comes back where the cluster (and its scraper) looks for it.
      fs.writeFileSync(conf, this.#config(this.port, this.monitorPort, portsDir));
    } catch (e) {
      // Whatever went wrong, the process started here does not outlive the failed start.
      child.kill("SIGKILL");
      throw e;
    }
  }

  /** Waits for nats-server's ports file to name its listeners; throws if it exits or the start deadline passes first. */
  async #listening(portsFile: string, monitorPort: number, exitCode: () => number | null | undefined): Promise<PortsFile> {
    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 10_000);
    for (;;) {
      const code = exitCode();
      if (code !== undefined) throw new Error(`nats-server exited with ${code}; see ${path.join(this.dir, "nats.log")}`);
      const ports = readPortsFile(portsFile);
      if (ports?.nats?.[0] && (monitorPort === 0 || ports.monitoring?.[0])) return ports;
      if (Date.now() >= deadline) {
        throw new Error(`nats-server did not listen within ${this.options.readyTimeoutMs ?? 10_000} ms; see ${path.join(this.dir, "nats.log")}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The monitoring port in use (0: off). */
  get monitorPort(): number {
    return this.#monitorUrl ? Number(new URL(this.#monitorUrl).port) : 0;
  }

  #config(port: number, monitorPort: number, portsDir: string): string {
    const o = this.options;
    const lines = [
      `listen: "${o.host ?? "127.0.0.1"}:${port}"`,
      ...(monitorPort !== 0 ? [`http: "${o.monitorHost ?? "127.0.0.1"}:${monitorPort}"`] : []),
      `ports_file_dir: "${portsDir}"`,
      `max_pending: ${64 * 1024 * 1024}`,
    ];
    if (o.maxPayloadBytes !== undefined) lines.push(`max_payload: ${o.maxPayloadBytes}`);
    if (o.serverName) lines.push(`server_name: "${o.serverName}"`);
    if (o.include) lines.push(`include "${path.relative(this.dir, o.include)}"`);
    if (o.tls) lines.push(`tls { cert_file: "${o.tls.certFile}", key_file: "${o.tls.keyFile}", timeout: ${tlsHandshakeTimeoutS} }`);
    if (o.jetstream ?? true) lines.push(`jetstream { store_dir: "${path.join(this.dir, "jetstream")}" }`);
    if (o.cluster) {
      const routes = o.cluster.routes.map((p) => `"nats-route://127.0.0.1:${p}"`).join(", ");
      lines.push(`cluster { name: "${o.cluster.name}", listen: "127.0.0.1:${o.cluster.port}", routes: [${routes}] }`);
    }
    return `${lines.join("\n")}\n`;
  }

  /** Stops the server (SIGTERM, then SIGKILL past the deadline). */
  async stop(options: { keepDir?: boolean } = {}): Promise<void> {
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await this.#exited;
      clearTimeout(timer);
    }
    if (this.ownsDir && !options.keepDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Stops and starts again on the same port and store. */
  async restart(): Promise<void> {
    const port = this.port;
    const monitorPort = this.monitorPort;
    await this.stop({ keepDir: true });
    await this.#spawn(port, monitorPort);
  }
}

/**
 * Three nats-servers routed into one cluster, each on its own client port.
 * Route ports are picked free up front; another process may take one before
 * its server binds it, so a failed start is tried again with fresh ports.
 */
export async function startNatsCluster(size = 3, options: Omit<NatsServerOptions, "cluster" | "dir" | "serverName"> = {}, attempts = 3): Promise<NatsServer[]> {
  for (let attempt = 1; ; attempt++) {
    const routePorts: number[] = [];
    for (let i = 0; i < size; i++) routePorts.push(await freePort());
    const servers: NatsServer[] = [];
    try {
      for (let i = 0; i < size; i++) {
        servers.push(await NatsServer.start({
          ...options,
          serverName: `n${i}`,
          cluster: { name: "pocket", port: routePorts[i]!, routes: routePorts.filter((_, j) => j !== i) },
        }));
      }
      return servers;
    } catch (e) {
      for (const s of servers) await s.stop();
      if (attempt >= attempts) throw e;
    }
  }
}

/** What nats-server writes to its ports file: where each listener is. */
interface PortsFile {
  readonly nats?: string[];
  readonly monitoring?: string[];
}

/**
 * The ports file, once nats-server has written it whole; undefined before.
 * nats-server writes it again as each listener comes up (the monitoring port
 * after the client port), so a read can catch it empty or half written:
 * that is "not yet", and the caller polls again until its deadline.
 */
function readPortsFile(file: string): PortsFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as PortsFile;
  } catch (e) {
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
}
