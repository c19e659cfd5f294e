import fs from "node:fs";
import path from "node:path";
import { isActorPid, spawnActor, stopChild, type ActorProcess } from "../actor-process";
import { writePrivateFile } from "../../lib/private-file";
import { StorageNode, type StorageNodeConfig } from "../storage/storage-node";
import { errorFields, logger } from "../../lib/log";
import { OrchestratorKind, type LaunchContext, type NodeLaunchSpec, type Orchestrator } from "./orchestrator";

/**
 * Storage nodes as processes on this machine (what `pocket up` and
 * `npm start` use), or inside the controller's process (`inline`, for tests).
 * Each process's pid goes to `<dataDir>/run/<nodeId>.pid`, so a restarted
 * controller can still stop the nodes an earlier one launched, and the
 * cluster's owner can stop them all.
 */
export class LocalOrchestrator implements Orchestrator {
  readonly kind = OrchestratorKind.Local;
  readonly #log = logger("orchestrator");
  readonly #children = new Map<string, ActorProcess>();
  readonly #inline = new Map<string, StorageNode>();

  constructor(private readonly config: { dataDir: string; inline?: boolean; host?: string }, private readonly ctx: LaunchContext) {}

  static runDir(dataDir: string): string { return path.join(dataDir, "run"); }
  /** Where a local NVMe node keeps its device file. */
  static nvmeFile(dataDir: string, nodeId: string): string { return path.join(dataDir, "nvme", `${nodeId}.img`); }

  /** Where a launched node's NATS credential is written (0600). */
  static credsFile(dataDir: string, nodeId: string): string { return path.join(dataDir, "auth", `node-${nodeId}.creds`); }

  async launch(spec: NodeLaunchSpec): Promise<void> {
    let natsCreds: string | undefined;
    if (this.ctx.nodeCredentials) {
      natsCreds = LocalOrchestrator.credsFile(this.config.dataDir, spec.nodeId);
      writePrivateFile(natsCreds, this.ctx.nodeCredentials(spec.nodeId));
    }
    const nodeConfig: StorageNodeConfig = {
      natsUrl: this.ctx.natsUrl, natsCreds, secret: this.ctx.secret, nodeId: spec.nodeId, tier: spec.tier, capacityBytes: spec.capacityBytes,
      host: this.config.host, heartbeatIntervalMs: this.ctx.heartbeatIntervalMs, extentBytesMax: this.ctx.extentBytesMax,
      ...(this.ctx.natsTlsCa !== undefined ? { natsTlsCa: this.ctx.natsTlsCa } : {}),
      ...(this.ctx.tls !== undefined ? { tls: this.ctx.tls } : {}),
      ...(this.ctx.httpPort !== undefined ? { httpPort: this.ctx.httpPort } : {}),
      ...(spec.tier === "nvme" ? { nvme: { path: LocalOrchestrator.nvmeFile(this.config.dataDir, spec.nodeId), sizeBytes: spec.capacityBytes } } : {}),
    };
    if (this.config.inline) {
      const node = await StorageNode.start(nodeConfig);
      this.#inline.set(spec.nodeId, node);
      void node.retired.then(() => this.#inline.delete(spec.nodeId));
      return;
    }
    const p = await spawnActor("node", spec.nodeId, nodeConfig, path.join(this.config.dataDir, "logs"));
    this.#children.set(spec.nodeId, p);
    const run = LocalOrchestrator.runDir(this.config.dataDir);
    fs.mkdirSync(run, { recursive: true });
    fs.writeFileSync(path.join(run, `${spec.nodeId}.pid`), String(p.child.pid));
    void p.exited.then(() => {
      this.#children.delete(spec.nodeId);
      fs.rmSync(path.join(run, `${spec.nodeId}.pid`), { force: true });
    });
  }

  async remove(nodeId: string): Promise<void> {
    await this.#stop(nodeId);
    // A removed node's device file holds nothing anyone can read any more; its credential is no use to anyone.
    fs.rmSync(LocalOrchestrator.nvmeFile(this.config.dataDir, nodeId), { force: true });
    fs.rmSync(LocalOrchestrator.credsFile(this.config.dataDir, nodeId), { force: true });
  }

  async #stop(nodeId: string): Promise<void> {
    const inline = this.#inline.get(nodeId);
    if (inline) {
      this.#inline.delete(nodeId);
      await inline.stop();
      return;
    }
    const child = this.#children.get(nodeId);
    if (child) {
      await stopChild(child);
      return;
    }
    // Launched by an earlier controller process.
    const pidFile = path.join(LocalOrchestrator.runDir(this.config.dataDir), `${nodeId}.pid`);
    if (!fs.existsSync(pidFile)) return;
    const pid = Number(fs.readFileSync(pidFile, "utf8"));
    if (Number.isInteger(pid) && isActorPid(pid)) {
      try {
        process.kill(pid, "SIGTERM");
      } catch (e) {
        this.#log.warn("could not stop node process", { nodeId, pid, ...errorFields(e) });
      }
    }
    fs.rmSync(pidFile, { force: true });
  }

  /** Stops nodes started inline (they live in this process); node processes outlive a controller restart. */
  async close(): Promise<void> {
    await Promise.all([...this.#inline.values()].map((n) => n.stop()));
    this.#inline.clear();
  }

  /** Stops every node process any controller launched under `dataDir` (the cluster's owner, at shutdown). */
  static async stopAll(dataDir: string, graceMs = 5_000): Promise<void> {
    const run = LocalOrchestrator.runDir(dataDir);
    if (!fs.existsSync(run)) return;
    const pids = fs.readdirSync(run).filter((f) => f.endsWith(".pid"))
      .map((f) => Number(fs.readFileSync(path.join(run, f), "utf8")))
      .filter((pid) => Number.isInteger(pid) && isActorPid(pid));
    for (const pid of pids) { try { process.kill(pid, "SIGTERM"); } catch { /* gone */ } }
    const deadline = Date.now() + graceMs;
    while (pids.some(isActorPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids) if (isActorPid(pid)) { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } }
  }
}
