import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { errorFields, logger } from "../../lib/log";
import { OrchestratorKind, type LaunchContext, type NodeLaunchSpec, type Orchestrator, type OrchestratorConfig } from "./orchestrator";

type KubernetesConfig = Extract<OrchestratorConfig, { kind: "kubernetes" }>;
type K8s = typeof import("@kubernetes/client-node", { with: { "resolution-mode": "import" } });
type CoreV1Api = InstanceType<K8s["CoreV1Api"]>;

/** Port storage-node pods listen on for the direct transport. */
export const podDataPort = 7400;

/** A pod name for a node id (DNS-1123: lower case, digits and '-'). */
export function podNameFor(nodeId: string): string {
  return `pocket-${nodeId.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`.slice(0, 63).replace(/-+$/, "");
}

/**
 * Fills a pod manifest template's `${NAME}` placeholders. Every placeholder
 * must have a value: a template that asks for one we do not know is an error,
 * not a pod with a literal `${...}` in it.
 */
export function renderManifest(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`manifest placeholder \${${name}} has no value`);
    return v;
  });
}

/** The values a storage-node pod manifest is filled with. */
export function storageNodeValues(spec: NodeLaunchSpec, ctx: LaunchContext, image: string, natsUrl: string): Record<string, string> {
  const actorConfig = {
    natsUrl, nodeId: spec.nodeId, tier: spec.tier, capacityBytes: spec.capacityBytes, host: "0.0.0.0", port: podDataPort,
    heartbeatIntervalMs: ctx.heartbeatIntervalMs, extentBytesMax: ctx.extentBytesMax,
  };
  const mib = Math.ceil(spec.capacityBytes / 2 ** 20);
  return {
    NODE_ID: spec.nodeId,
    NODE_NAME: podNameFor(spec.nodeId).slice("pocket-".length),
    TIER: spec.tier,
    IMAGE: image,
    ACTOR_CONFIG: JSON.stringify(actorConfig),
    MEMORY_REQUEST: `${spec.tier === "dram" ? mib + 256 : 512}Mi`,
    MEMORY_LIMIT: `${spec.tier === "dram" ? mib + 512 : 1024}Mi`,
  };
}

/**
 * Storage nodes as pods: `launch` creates a pod from the manifest template,
 * `remove` deletes it. The pod's node registers itself by heartbeat like any
 * other; the controller's lifecycle machine does the rest.
 */
export class KubernetesOrchestrator implements Orchestrator {
  readonly kind = OrchestratorKind.Kubernetes;
  readonly #log = logger("orchestrator");

  private constructor(
    private readonly api: CoreV1Api,
    private readonly namespace: string,
    private readonly template: string,
    private readonly image: string,
    private readonly natsUrl: string,
    private readonly ctx: LaunchContext,
    private readonly k8s: K8s,
  ) {}

  static async create(config: KubernetesConfig, ctx: LaunchContext): Promise<KubernetesOrchestrator> {
    const k8s = await import("@kubernetes/client-node");
    const kc = new k8s.KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
    const manifest = config.manifest ?? path.join(projectRoot(), "deploy", "kubernetes", "storage-node-pod.yaml");
    const namespace = config.namespace ?? (kc.getContextObject(kc.getCurrentContext())?.namespace || "default");
    return new KubernetesOrchestrator(
      kc.makeApiClient(k8s.CoreV1Api), namespace, fs.readFileSync(manifest, "utf8"),
      config.image ?? "pocket-on-nats:latest", config.natsUrl ?? ctx.natsUrl, ctx, k8s,
    );
  }

  async launch(spec: NodeLaunchSpec): Promise<void> {
    const yaml = renderManifest(this.template, storageNodeValues(spec, this.ctx, this.image, this.natsUrl));
    const body = this.k8s.loadYaml<Parameters<CoreV1Api["createNamespacedPod"]>[0]["body"]>(yaml);
    await this.api.createNamespacedPod({ namespace: this.namespace, body });
    this.#log.info("storage-node pod created", { nodeId: spec.nodeId, pod: body.metadata?.name, namespace: this.namespace });
  }

  async remove(nodeId: string): Promise<void> {
    const name = podNameFor(nodeId);
    try {
      await this.api.deleteNamespacedPod({ name, namespace: this.namespace });
    } catch (e) {
      const code = (e as { code?: number }).code;
      if (code === 404) return;
      this.#log.warn("pod not deleted", { nodeId, pod: name, ...errorFields(e) });
      throw e;
    }
  }

  close(): Promise<void> { return Promise.resolve(); }
}
