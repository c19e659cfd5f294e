import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ControllerOps } from "../schemas/operations";
import { NatsCaller } from "../bus/nats-rpc";
import { Subjects } from "../bus/subjects";
import { Controller, type ControllerConfig } from "../actors/controller/controller";
import { MetadataShard, type ShardConfig } from "../actors/metadata/shard";
import { StorageNode, type StorageNodeConfig } from "../actors/storage/storage-node";
import { Defaults } from "../actors/runtime/config";
import { NatsServer } from "./nats-server";

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
  readonly shards?: number;
  readonly dram?: number;
  readonly dramCapacityBytes?: number;
  readonly extentBytesMax?: number;
  readonly heartbeatIntervalMs?: number;
  /** Logs, NATS store and config; a temp dir by default. */
  readonly dataDir?: string;
  readonly mode?: LaunchMode;
  readonly readyTimeoutMs?: number;
}

interface Member {
  readonly name: string;
  readonly role: "controller" | "shard" | "node";
  readonly child?: ChildProcess;
  readonly actor?: { stop(): Promise<void> };
  readonly exited?: Promise<void>;
}

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

  private constructor(readonly dataDir: string, private readonly ownsDir: boolean, readonly options: LocalClusterOptions) {}

  static async start(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const ownsDir = options.dataDir === undefined;
    const dir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "pocket-"));
    fs.mkdirSync(path.join(dir, "logs"), { recursive: true });
    const c = new LocalCluster(dir, ownsDir, options);
    try {
      if (options.natsUrl) {
        c.natsUrl = options.natsUrl;
      } else {
        c.#nats = await NatsServer.start({ dir: path.join(dir, "nats"), jetstream: true });
        c.natsUrl = c.#nats.url;
      }
      c.#nc = await connect({ servers: c.natsUrl, name: "pocket-launcher" });
      await c.#launch("controller", "controller", c.#controllerConfig());
      for (let i = 0; i < (options.shards ?? 2); i++) await c.addShard(`s${i}`);
      for (let i = 0; i < (options.dram ?? 2); i++) await c.addNode(`dram-${i}`);
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

  /** Starts one more metadata shard. */
  async addShard(shardId: string): Promise<void> {
    const config: ShardConfig = {
      natsUrl: this.natsUrl, secret: this.secret, shardId,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs, extentBytesMax: this.options.extentBytesMax,
    };
    await this.#launch(shardId, "shard", config);
  }

  /** Starts one more DRAM storage node. */
  async addNode(nodeId: string, capacityBytes = this.options.dramCapacityBytes ?? Defaults.dramCapacityBytes): Promise<void> {
    const config: StorageNodeConfig = {
      natsUrl: this.natsUrl, secret: this.secret, nodeId, tier: "dram", capacityBytes,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs, extentBytesMax: this.options.extentBytesMax,
    };
    await this.#launch(nodeId, "node", config);
  }

  /** Kills a member at once (SIGKILL in process mode; abrupt stop inline). */
  async kill(name: string): Promise<void> {
    const m = this.#members.get(name);
    if (!m) throw new Error(`no member ${name}`);
    this.#members.delete(name);
    if (m.child) {
      m.child.kill("SIGKILL");
      await m.exited;
    } else {
      await m.actor?.stop();
    }
  }

  /** Waits until the controller sees every shard and node live. */
  async waitReady(): Promise<void> {
    const ctl = new NatsCaller(this.#nc!, Subjects.controller, 2_000);
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

  async #launch(name: string, role: "controller" | "shard" | "node", config: ControllerConfig | ShardConfig | StorageNodeConfig): Promise<void> {
    if (this.mode === LaunchMode.Inline) {
      const actor = role === "controller" ? await Controller.start(config as ControllerConfig)
        : role === "shard" ? await MetadataShard.start(config as ShardConfig)
          : await StorageNode.start(config as StorageNodeConfig);
      this.#members.set(name, { name, role, actor });
      return;
    }
    const main = path.join(projectRoot(), "dist", "actors", "runtime", "main.js");
    if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
    const log = fs.openSync(path.join(this.dataDir, "logs", `${name}.log`), "a");
    // POCKET_ACTOR_NODE_ARGS passes flags to every actor process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
    const nodeArgs = (process.env["POCKET_ACTOR_NODE_ARGS"] ?? "").split(/\s+/).filter((a) => a.length > 0);
    const child = spawn(process.execPath, [...nodeArgs, main, role], {
      env: { ...process.env, POCKET_ACTOR_CONFIG: JSON.stringify(config) },
      stdio: ["ignore", "pipe", log],
    });
    fs.closeSync(log);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    this.#members.set(name, { name, role, child, exited });
    await new Promise<void>((resolve, reject) => {
      const lines = readline.createInterface({ input: child.stdout! });
      const timer = setTimeout(() => reject(new Error(`${name} not ready within 15 s; see ${this.dataDir}/logs/${name}.log`)), 15_000);
      lines.once("line", () => { clearTimeout(timer); resolve(); });
      child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}; see ${this.dataDir}/logs/${name}.log`)); });
    });
  }

  /** Stops every actor (nodes and shards first), then nats-server if it started one. */
  async stop(): Promise<void> {
    const members = [...this.#members.values()].reverse();
    this.#members.clear();
    for (const m of members) {
      if (m.child) {
        if (m.child.exitCode === null && m.child.signalCode === null) {
          m.child.kill("SIGTERM");
          const t = setTimeout(() => m.child!.kill("SIGKILL"), 5_000);
          await m.exited;
          clearTimeout(t);
        }
      } else {
        await m.actor?.stop();
      }
    }
    await this.#nc?.drain().catch(() => undefined);
    await this.#nats?.stop();
    if (this.ownsDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  #controllerConfig(): ControllerConfig {
    return { natsUrl: this.natsUrl, secret: this.secret, heartbeatIntervalMs: this.options.heartbeatIntervalMs };
  }
}
