import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { ControllerOps } from "../schemas/operations";
import { ControllerCaller } from "../bus/nats-rpc";
import { connectAs } from "../bus/nats-connect";
import type { ServerTlsFiles } from "../bus/tls";
import { Role } from "../bus/credentials";
import { ClusterAuth } from "./cluster-auth";
import { ClusterTls } from "./tls";
import { Controller, type ControllerConfig } from "../actors/controller/controller";
import { MetadataShard, type ShardConfig } from "../actors/metadata/shard";
import { StorageNode, type StorageNodeConfig } from "../actors/storage/storage-node";
import { Defaults } from "../actors/runtime/config";
import { LocalOrchestrator } from "../actors/orchestrator/local";
import type { ScalingPolicy } from "../actors/controller/policy";
import type { DeviceModel } from "../native";
import { errorFields, logger } from "../lib/log";
import { closeInTurn } from "../lib/shutdown";
import { NatsServer } from "./nats-server";
import { spawnActor, stopChild, type ActorProcess } from "../actors/actor-process";


export const LaunchMode = {
  /** Each actor in its own Node process (what `pocket up` and `npm start` run). */
  Process: "process",
  /** All actors in this process (fast tests). */
  Inline: "inline",
} as const;
export type LaunchMode = (typeof LaunchMode)[keyof typeof LaunchMode];

export interface LocalClusterOptions {
  /** Use this NATS server instead of starting one. */
  readonly natsUrl?: string;
  /**
   * The cluster's bus identities (a `ClusterAuth` directory). Default: created
   * under `<dataDir>/auth` when the cluster starts its own nats-server. With
   * `natsUrl`, the server must include that directory's `nats-auth.conf`;
   * without one, components connect anonymously (a bus without authentication).
   */
  readonly authDir?: string;
  /**
   * TLS on every connection: nats-server, and every shard's and node's direct
   * transport, serve the certificate of a `ClusterTls` in the auth directory's
   * `tls/` folder (made the first time); every component and client verifies
   * them with its CA (`tlsCaFile`). With `natsUrl`, the server must already
   * serve that folder's `server.pem` and `server.key`.
   */
  readonly tls?: boolean;
  /** More host names or addresses the servers' certificate must name (besides 127.0.0.1 and localhost). */
  readonly tlsHosts?: readonly string[];
  readonly shards?: number;
  readonly dram?: number;
  readonly dramCapacityBytes?: number;
  /** NVMe storage nodes on the native engine, each on a file under `<dataDir>/nvme/` (or on `nvmeDevice`). */
  readonly nvme?: number;
  /** Size of each NVMe node's file (default 1 GiB). */
  readonly nvmeCapacityBytes?: number;
  /** A block device (or file) for the first NVMe node instead of a file under the data directory. */
  readonly nvmeDevice?: string;
  /** The device model NVMe nodes schedule by (`pocket calibrate`); the engine's default otherwise. */
  readonly nvmeModel?: DeviceModel;
  readonly extentBytesMax?: number;
  readonly heartbeatIntervalMs?: number;
  /** Logs, NATS store and config; a temp dir by default. */
  readonly dataDir?: string;
  readonly mode?: LaunchMode;
  readonly readyTimeoutMs?: number;
  /**
   * Who launches and removes storage nodes as the controller scales: "local"
   * (processes, or in this process in inline mode; the default) or
   * "events-only" (decisions are published, nothing is started).
   */
  readonly orchestrator?: "local" | "events-only";
  /** Fewest and most DRAM nodes the controller keeps (default: the nodes started here, and 8). */
  readonly minNodes?: number;
  readonly maxNodes?: number;
  /** Controller state: a SQLite file (default `<dataDir>/controller.sqlite`) or a `postgres://` URL. */
  readonly store?: string;
  /** Other scaling settings for the controller. */
  readonly policy?: Partial<ScalingPolicy>;
  /**
   * Every actor (and every node the controller launches) serves `/metrics`,
   * `/healthz` and `/readyz` over HTTP on a free port of 127.0.0.1 (default
   * true); `endpoints()` says where.
   */
  readonly http?: boolean;
}

/** A process a local cluster started: its name, what it is, its pid. */
export interface ClusterProcess { readonly name: string; readonly role: "nats-server" | Member["role"]; readonly pid: number }

interface Member {
  readonly name: string;
  readonly role: "controller" | "shard" | "node";
  readonly process?: ActorProcess;
  readonly actor?: { stop(): Promise<void> };
  readonly config?: object;
  /** host:port of its metrics and probes ("" without). */
  readonly http: string;
}

/** What an actor process's ready line says (actors/main.ts): a JSON object; undefined for anything else. */
function readyInfo(line: string): { readonly http?: unknown; readonly listen?: unknown } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value : undefined;
}

/** What a started storage node says of itself. */
export interface LaunchedNode {
  /** host:port its direct transport listens on (it may advertise another, `advertiseAddr`). */
  readonly listen: string;
}

/** Where an operator scrapes and probes one actor. */
export interface ActorEndpoint {
  readonly name: string;
  readonly role: "controller" | "shard" | "node";
  /** host:port of its HTTP server: `/metrics`, `/healthz`, `/readyz`. */
  readonly http: string;
}

/**
 * A whole cluster on this machine: nats-server (unless given), controller,
 * metadata shards and DRAM storage nodes.
 *
 * @example
 *   const cluster = await LocalCluster.start({ shards: 2, dram: 2 });
 *   console.log(cluster.natsUrl);
 *   await cluster.stop();
 */
export class LocalCluster {
  readonly #members = new Map<string, Member>();
  #nats: NatsServer | undefined;
  #nc: NatsConnection | undefined;
  readonly secret = randomBytes(32).toString("base64url");
  natsUrl = "";
  /** The cluster's bus identities; undefined on a bus without authentication. */
  auth: ClusterAuth | undefined;
  /** The cluster's TLS material; undefined without `tls`. */
  tls: ClusterTls | undefined;

  private constructor(readonly dataDir: string, private readonly ownsDir: boolean, readonly options: LocalClusterOptions) {}

  static async start(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const ownsDir = options.dataDir === undefined;
    const dir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "pocket-"));
    fs.mkdirSync(path.join(dir, "logs"), { recursive: true });
    const c = new LocalCluster(dir, ownsDir, options);
    try {
      if (options.tls) c.tls = ClusterTls.open(options.authDir ?? path.join(dir, "auth"), { hosts: options.tlsHosts ?? [] });
      if (options.natsUrl) {
        c.natsUrl = options.natsUrl;
        if (options.authDir) c.auth = ClusterAuth.open(options.authDir);
      } else {
        c.auth = ClusterAuth.open(options.authDir ?? path.join(dir, "auth"));
        c.#nats = await NatsServer.start({ dir: path.join(dir, "nats"), jetstream: true, include: c.auth.serverConfigFile, tls: c.tls?.server });
        c.natsUrl = c.#nats.url;
      }
      c.#nc = await connectAs(
        { natsUrl: c.natsUrl, natsCreds: c.credsFile(Role.Operator, "launcher"), natsTlsCa: c.tlsCaFile }, Role.Operator, "launcher", { name: "pocket-launcher" },
      );
      // Shards and nodes first: the controller then hears every one within a heartbeat of starting,
      // and does not launch nodes for a minimum that is already on its way.
      for (let i = 0; i < (options.shards ?? 2); i++) await c.addShard(`s${i}`);
      for (let i = 0; i < (options.dram ?? 2); i++) await c.addNode(`dram-${i}`);
      for (let i = 0; i < (options.nvme ?? 0); i++) await c.addNvmeNode(`nvme-${i}`, i === 0 ? options.nvmeDevice : undefined);
      await c.startController();
      await c.waitReady();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  get mode(): LaunchMode {
    return this.options.mode ?? LaunchMode.Process;
  }

  /** Base URL of the monitoring endpoints of the nats-server this cluster started (`/varz`, `/connz`, `/jsz`); "" otherwise. */
  get natsMonitorUrl(): string {
    return this.#nats?.monitorUrl ?? "";
  }

  /** Where each actor started here serves its metrics and probes (nodes the controller launches are not listed). */
  endpoints(): ActorEndpoint[] {
    return [...this.#members.values()].filter((m) => m.http !== "").map((m) => ({ name: m.name, role: m.role, http: m.http }));
  }

  /** The processes this cluster started and still runs (the nats-server, and actors in process mode), by name and role. */
  processes(): ClusterProcess[] {
    const out: ClusterProcess[] = [];
    const nats = this.#nats?.pid;
    if (nats !== undefined) out.push({ name: "nats-server", role: "nats-server", pid: nats });
    for (const m of this.#members.values()) {
      const pid = m.process?.child.pid;
      if (pid !== undefined) out.push({ name: m.name, role: m.role, pid });
    }
    return out;
  }

  /** What every actor's config carries for its metrics and probes. */
  #http(): { httpPort?: number } {
    return (this.options.http ?? true) ? { httpPort: 0 } : {};
  }

  /** The CA certificate file clients verify the cluster's servers with; undefined without TLS. */
  get tlsCaFile(): string | undefined {
    return this.tls?.caFile;
  }

  /** What a shard's or node's config carries for TLS: the CA it verifies NATS with, the certificate it serves. */
  #serverTls(): { natsTlsCa?: string; tls?: ServerTlsFiles } {
    return this.tls ? { natsTlsCa: this.tls.caFile, tls: this.tls.server } : {};
  }

  /** Mints (and writes, 0600) an identity's creds file; undefined on a bus without authentication. */
  credsFile(role: Exclude<Role, "lambda">, id: string): string | undefined {
    return this.auth?.credsFile(role, id);
  }

  /**
   * What a job driver needs, as environment variables: the NATS URL, a
   * driver credential (it may register, renew and deregister jobs, nothing
   * else) and, with TLS, the CA file that verifies the cluster's servers.
   */
  driverEnv(name = "default"): Record<string, string> {
    const creds = this.credsFile(Role.Driver, name);
    return {
      POCKET_NATS_URL: this.natsUrl,
      ...(creds ? { POCKET_NATS_CREDS: creds } : {}),
      ...(this.tls ? { POCKET_TLS_CA: this.tls.caFile } : {}),
    };
  }

  /** Starts the controller (again, after `kill("controller")`: it picks up its stored state). */
  async startController(): Promise<void> {
    await this.#launch("controller", "controller", this.controllerConfig());
  }

  /** Starts one more metadata shard. */
  async addShard(shardId: string): Promise<void> {
    const config: ShardConfig = {
      natsUrl: this.natsUrl, natsCreds: this.credsFile(Role.Shard, shardId), secret: this.secret, shardId,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs, extentBytesMax: this.options.extentBytesMax, ...this.#serverTls(), ...this.#http(),
    };
    await this.#launch(shardId, "shard", config);
  }

  /**
   * Starts one more DRAM storage node. `extra.advertiseAddr`: the address
   * clients are told instead of the bound one (a proxy in front of the node).
   */
  async addNode(nodeId: string, capacityBytes = this.options.dramCapacityBytes ?? Defaults.dramCapacityBytes, extra?: { advertiseAddr?: string }): Promise<LaunchedNode> {
    const config: StorageNodeConfig = {
      natsUrl: this.natsUrl, natsCreds: this.credsFile(Role.Node, nodeId), secret: this.secret, nodeId, tier: "dram", capacityBytes,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs, extentBytesMax: this.options.extentBytesMax, ...this.#serverTls(), ...this.#http(),
      ...(extra?.advertiseAddr !== undefined ? { advertiseAddr: extra.advertiseAddr } : {}),
    };
    return this.#launch(nodeId, "node", config);
  }

  /** Starts one more NVMe storage node, on a file under the data directory unless `device` is given. */
  async addNvmeNode(nodeId: string, device?: string): Promise<void> {
    const sizeBytes = this.options.nvmeCapacityBytes ?? Defaults.nvmeCapacityBytes;
    const config: StorageNodeConfig = {
      natsUrl: this.natsUrl, natsCreds: this.credsFile(Role.Node, nodeId), secret: this.secret, nodeId, tier: "nvme", capacityBytes: sizeBytes,
      nvme: { path: device ?? LocalOrchestrator.nvmeFile(this.dataDir, nodeId), sizeBytes: device ? undefined : sizeBytes, model: this.options.nvmeModel },
      heartbeatIntervalMs: this.options.heartbeatIntervalMs, extentBytesMax: this.options.extentBytesMax, ...this.#serverTls(), ...this.#http(),
    };
    await this.#launch(nodeId, "node", config);
  }

  /** Sends a signal to a member's process (process mode), e.g. SIGSTOP and SIGCONT to freeze and thaw it. */
  signal(name: string, signal: NodeJS.Signals): void {
    const m = this.#members.get(name);
    if (!m?.process) throw new Error(`no process for ${name}`);
    m.process.child.kill(signal);
  }

  /** Kills a member at once (SIGKILL in process mode; abrupt stop inline). */
  async kill(name: string): Promise<void> {
    const m = this.#members.get(name);
    if (!m) throw new Error(`no member ${name}`);
    this.#members.delete(name);
    if (m.process) {
      m.process.child.kill("SIGKILL");
      await m.process.exited;
    } else {
      await m.actor?.stop();
    }
  }

  /** Waits until the controller sees every shard and node live. */
  async waitReady(): Promise<void> {
    const ctl = new ControllerCaller(this.#nc!, 2_000);
    const members = [...this.#members.values()];
    const wantShards = members.filter((m) => m.role === "shard").length;
    const wantNodes = members.filter((m) => m.role === "node").length;
    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 20_000);
    let last = "";
    while (Date.now() < deadline) {
      try {
        const shards = (await ctl.call(ControllerOps.shardList, {})).reply.shards.filter((s) => s.state === "active").length;
        const nodes = (await ctl.call(ControllerOps.nodeList, {})).reply.nodes.filter((n) => n.state === "active").length;
        last = `${shards}/${wantShards} shards, ${nodes}/${wantNodes} nodes`;
        if (shards >= wantShards && nodes >= wantNodes) return;
      } catch (e) {
        last = e instanceof Error ? e.message : String(e);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`cluster not ready: ${last}; logs in ${path.join(this.dataDir, "logs")}`);
  }

  async #launch(name: string, role: "controller" | "shard" | "node", config: ControllerConfig | ShardConfig | StorageNodeConfig): Promise<LaunchedNode> {
    if (this.mode === LaunchMode.Inline) {
      const actor = role === "controller" ? await Controller.start(config as ControllerConfig)
        : role === "shard" ? await MetadataShard.start(config as ShardConfig)
          : await StorageNode.start(config as StorageNodeConfig);
      this.#members.set(name, { name, role, actor, http: actor.httpAddr });
      return { listen: actor instanceof StorageNode ? actor.listenAddr : "" };
    }
    const logs = path.join(this.dataDir, "logs");
    const p = await spawnActor(role, name, config, logs, this.options.readyTimeoutMs ?? 15_000);
    const ready = readyInfo(p.readyLine);
    if (ready === undefined) {
      // Not a member until it says it is ready: stopped here, or it would run on with no one to stop it.
      await stopChild(p);
      throw new Error(`${name} printed ${JSON.stringify(p.readyLine.slice(0, 200))} where its ready line (a JSON object) belongs; see ${path.join(logs, `${name}.log`)}`);
    }
    this.#members.set(name, { name, role, process: p, http: typeof ready.http === "string" ? ready.http : "" });
    return { listen: typeof ready.listen === "string" ? ready.listen : "" };
  }

  /**
   * Stops every actor (the controller first, then nodes and shards), then
   * nats-server if it started one: each of them even if one before failed to
   * stop; then throws the first failure.
   */
  async stop(): Promise<void> {
    const members = [...this.#members.values()].reverse();
    this.#members.clear();
    // The controller first, so that it does not replace the nodes as they go.
    members.sort((a, b) => Number(b.role === "controller") - Number(a.role === "controller"));
    await closeInTurn([
      ...members.map((m) => () => (m.process ? stopChild(m.process) : m.actor?.stop())),
      () => LocalOrchestrator.stopAll(this.dataDir),
      // The launcher's own connection, as before: one already closed under it (its server gone) has nothing to drain.
      () => this.#nc?.drain().catch(() => undefined),
      () => this.#nats?.stop(),
      () => { if (this.ownsDir) fs.rmSync(this.dataDir, { recursive: true, force: true }); },
    ], (e) => logger("local-cluster").error("stopping: another step failed too", errorFields(e)));
  }

  controllerConfig(): ControllerConfig {
    const o = this.options;
    const dram = o.dram ?? 2;
    const capacityBytes = o.dramCapacityBytes ?? Defaults.dramCapacityBytes;
    return {
      natsUrl: this.natsUrl, secret: this.secret, heartbeatIntervalMs: o.heartbeatIntervalMs, extentBytesMax: o.extentBytesMax,
      natsCreds: this.credsFile(Role.Controller, "controller"), ...this.#http(),
      ...((o.http ?? true) ? { nodeHttpPort: 0 } : {}),
      ...(this.auth ? { credentialIssuer: { account: this.auth.account, signingSeedFile: this.auth.signingSeedFile } } : {}),
      ...(this.tls ? { natsTlsCa: this.tls.caFile, nodeTls: this.tls.server } : {}),
      store: o.store ?? path.join(this.dataDir, "controller.sqlite"),
      traceFile: path.join(this.dataDir, "controller-trace.ndjson"),
      orchestrator: (o.orchestrator ?? "local") === "local"
        ? { kind: "local", dataDir: this.dataDir, inline: this.mode === LaunchMode.Inline }
        : { kind: "events-only" },
      policy: {
        ...o.policy,
        nodeTypes: [
          {
            tier: "dram", capacityBytes, throughputBps: 1e9, cpuCores: 1, pricePerHour: 0.3,
            minNodes: o.minNodes ?? dram, maxNodes: o.maxNodes ?? Math.max(8, dram),
          },
          {
            tier: "nvme", capacityBytes: o.nvmeCapacityBytes ?? Defaults.nvmeCapacityBytes, throughputBps: 1e9, cpuCores: 1, pricePerHour: 0.16,
            minNodes: o.nvme ?? 0, maxNodes: Math.max(o.nvme ?? 0, o.nvme ? (o.maxNodes ?? 8) : 0),
          },
          ...(o.policy?.nodeTypes ?? []).filter((t) => t.tier !== "dram" && t.tier !== "nvme"),
        ],
      },
    };
  }
}
