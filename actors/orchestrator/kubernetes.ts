import fs from "node:fs";
import path from "node:path";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { projectRoot } from "../../lib/process";
import { errorFields, logger } from "../../lib/log";
import { InvalidArgumentError } from "../../schemas/errors";
import { Tier } from "../../schemas/operations";
import type { StorageNodeConfig } from "../storage/storage-node";
import { OrchestratorKind, type LaunchContext, type NodeLaunchSpec, type Orchestrator, type OrchestratorConfig } from "./orchestrator";

type KubernetesConfig = Extract<OrchestratorConfig, { kind: "kubernetes" }>;
type K8s = typeof import("@kubernetes/client-node", { with: { "resolution-mode": "import" } });
type CoreV1Api = InstanceType<K8s["CoreV1Api"]>;
type PodBody = Parameters<CoreV1Api["createNamespacedPod"]>[0]["body"];

/** Port storage-node pods listen on for the direct transport. */
export const podDataPort = 7400;
/** Port every actor's pod serves GET /metrics, /healthz and /readyz on. */
export const podHttpPort = 9464;

/**
 * Where things are inside an actor's pod; the manifests mount them there.
 * Kubernetes mounts Secrets readable by the pod's group, and the actors
 * refuse a secret file others can read, so the image's entrypoint copies
 * every file of `secretsDir` into `privateDir` (an in-memory emptyDir), 0600,
 * before the actor starts: configurations name the copies.
 */
export const PodPaths = {
  secretsDir: "/etc/pocket/secrets",
  privateDir: "/run/pocket/private",
  /** An NVMe node's volume (from a StorageClass on the host's NVMe drives); its device file lives there. */
  nvmeDir: "/var/lib/pocket/nvme",
} as const;

/** The key of a launched node's NATS credential in its Secret. */
export const nodeCredsKey = "node.creds";

/** What a storage-node pod's POCKET_ACTOR_CONFIG holds: a node's configuration without the cluster secret (POCKET_SECRET carries it). */
export type NodePodConfig = Omit<StorageNodeConfig, "secret"> & { readonly httpHost: string; readonly httpPort: number };

/** A pod name for a node id (DNS-1123: lower case, digits and '-'). */
export function podNameFor(nodeId: string): string {
  return `pocket-${nodeId.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`.slice(0, 63).replace(/-+$/, "");
}

/** The Secret holding a launched node's NATS credential (deleted with its pod, which owns it). */
export function credsSecretFor(nodeId: string): string {
  return `${podNameFor(nodeId)}-nats`;
}

/** The pod template of a tier shipped in the project (`deploy/kubernetes/storage-node-<tier>.yaml`). */
export function defaultPodTemplate(tier: Tier): string {
  return path.join(projectRoot(), "deploy", "kubernetes", `storage-node-${tier}.yaml`);
}

/**
 * What a placeholder's value may be: a name, an image reference or a
 * quantity, which YAML reads as the same plain text wherever it stands.
 * Anything else (quotes, spaces, line breaks, `#`, `{`) could end the value
 * and write more YAML; such values go onto the parsed pod instead (`renderNodePod`).
 */
const plainValue = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/;

/**
 * Fills a pod manifest template's `${NAME}` placeholders. Every placeholder
 * must have a value: a template that asks for one we do not know is an error,
 * not a pod with a literal `${...}` in it. Values must be plain (`plainValue`):
 * text that YAML would read as more than one scalar is refused, not pasted in.
 */
export function renderManifest(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new InvalidArgumentError(`manifest placeholder \${${name}} has no value`);
    if (!plainValue.test(v)) throw new InvalidArgumentError(`manifest placeholder \${${name}}: ${JSON.stringify(v)} is not a plain name or quantity`);
    return v;
  });
}

/** The variable of a storage-node pod's container that carries the node's JSON configuration. */
export const actorConfigVariable = "POCKET_ACTOR_CONFIG";

/** A container's environment variable in a pod manifest. */
export interface PodEnvVar {
  readonly name: string;
  value?: string;
  readonly valueFrom?: unknown;
}

/** A pod manifest, as far as the orchestrator looks into it. */
export interface PodManifest {
  readonly kind: "Pod";
  readonly spec: { readonly containers: Array<{ readonly name: string; readonly env?: PodEnvVar[] }> };
  readonly [field: string]: unknown;
}

/**
 * A storage node's pod: the tier's template with its placeholders filled
 * (`storageNodeValues`), parsed as kubectl reads YAML (1.1), then the node's
 * configuration set as the value of the container variable
 * POCKET_ACTOR_CONFIG, which the template declares without a value. The
 * configuration holds paths and URLs from the controller's own configuration;
 * set on the parsed object, no character in them can change the pod's YAML.
 */
export function renderNodePod(template: string, spec: NodeLaunchSpec, ctx: LaunchContext, image: string, natsUrl: string): PodManifest {
  const what = `the ${spec.tier} pod template`;
  if (template.includes("${ACTOR_CONFIG}")) {
    throw new InvalidArgumentError(`${what} has an \${ACTOR_CONFIG} placeholder: declare \`- name: ${actorConfigVariable}\` without a value instead (the orchestrator sets it)`);
  }
  const pod = parseTemplate(renderManifest(template, storageNodeValues(spec, ctx, image)), what);
  if (pod?.kind !== "Pod" || !Array.isArray(pod.spec?.containers)) throw new InvalidArgumentError(`${what} is not a Pod with containers`);
  const slots = pod.spec.containers.flatMap((c) => c.env?.filter((e) => e.name === actorConfigVariable) ?? []);
  if (slots.length === 0) throw new InvalidArgumentError(`${what} declares no container variable ${actorConfigVariable} for the node's configuration`);
  for (const slot of slots) {
    if (slot.value !== undefined || slot.valueFrom !== undefined) throw new InvalidArgumentError(`${what} gives ${actorConfigVariable} a value: leave it out (the orchestrator sets it)`);
    slot.value = JSON.stringify(nodePodConfig(spec, ctx, natsUrl));
  }
  return pod;
}

/** A filled-in template, parsed as kubectl reads YAML (1.1); a template that is not YAML is an InvalidArgumentError naming it. */
function parseTemplate(yaml: string, what: string): PodManifest | null {
  try {
    return parseYaml(yaml, { version: "1.1" }) as PodManifest | null;
  } catch (e) {
    if (e instanceof YAMLParseError) throw new InvalidArgumentError(`${what} is not YAML: ${e.message}`, { cause: e });
    throw e;
  }
}

/** A launched node's configuration, as its pod sees it (paths are inside the pod). */
export function nodePodConfig(spec: NodeLaunchSpec, ctx: LaunchContext, natsUrl: string): NodePodConfig {
  return {
    natsUrl, nodeId: spec.nodeId, tier: spec.tier, capacityBytes: spec.capacityBytes, host: "0.0.0.0", port: podDataPort,
    httpHost: "0.0.0.0", httpPort: podHttpPort,
    heartbeatIntervalMs: ctx.heartbeatIntervalMs, extentBytesMax: ctx.extentBytesMax,
    ...(ctx.nodeCredentials ? { natsCreds: `${PodPaths.privateDir}/${nodeCredsKey}` } : {}),
    // The cluster's TLS files: the pod template mounts them where the controller's pod has them.
    ...(ctx.natsTlsCa !== undefined ? { natsTlsCa: ctx.natsTlsCa } : {}),
    ...(ctx.tls !== undefined ? { tls: ctx.tls } : {}),
    ...(spec.tier === Tier.Nvme ? { nvme: { path: `${PodPaths.nvmeDir}/extents.img`, sizeBytes: spec.capacityBytes } } : {}),
  };
}

/** The values a storage-node pod manifest's placeholders are filled with (its configuration goes onto the parsed pod: `renderNodePod`). */
export function storageNodeValues(spec: NodeLaunchSpec, ctx: LaunchContext, image: string): Record<string, string> {
  const mib = Math.ceil(spec.capacityBytes / 2 ** 20);
  const dram = spec.tier === Tier.Dram;
  return {
    NODE_ID: spec.nodeId,
    NODE_NAME: podNameFor(spec.nodeId).slice("pocket-".length),
    TIER: spec.tier,
    IMAGE: image,
    CREDS_SECRET: credsSecretFor(spec.nodeId),
    MEMORY_REQUEST: `${dram ? mib + 256 : 512}Mi`,
    MEMORY_LIMIT: `${dram ? mib + 512 : 1024}Mi`,
    // The device file plus room for the filesystem's own metadata.
    NVME_VOLUME_SIZE: `${Math.ceil(spec.capacityBytes / 2 ** 30) + 1}Gi`,
  };
}

/**
 * Storage nodes as pods: `launch` creates a pod from its tier's manifest
 * template and, on an authenticated bus, a Secret with the node's own NATS
 * credential, owned by the pod (Kubernetes deletes it with the pod);
 * `remove` deletes the pod. The pod's node registers itself by heartbeat
 * like any other; the controller's lifecycle machine does the rest.
 */
export class KubernetesOrchestrator implements Orchestrator {
  readonly kind = OrchestratorKind.Kubernetes;
  readonly #log = logger("orchestrator");

  private constructor(
    private readonly api: CoreV1Api,
    private readonly namespace: string,
    private readonly templates: ReadonlyMap<Tier, string>,
    private readonly image: string,
    private readonly natsUrl: string,
    private readonly ctx: LaunchContext,
  ) {}

  static async create(config: KubernetesConfig, ctx: LaunchContext): Promise<KubernetesOrchestrator> {
    const k8s = await import("@kubernetes/client-node");
    const kc = new k8s.KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
    const namespace = config.namespace ?? (kc.getContextObject(kc.getCurrentContext())?.namespace || "default");
    return new KubernetesOrchestrator(
      kc.makeApiClient(k8s.CoreV1Api), namespace, readTemplates(config),
      config.image ?? "pocket-on-nats:latest", config.natsUrl ?? ctx.natsUrl, ctx,
    );
  }

  async launch(spec: NodeLaunchSpec): Promise<void> {
    const template = this.templates.get(spec.tier);
    if (template === undefined) throw new InvalidArgumentError(`no pod template for ${spec.tier} nodes: set the orchestrator's manifests.${spec.tier}`);
    if (!this.ctx.nodeCredentials && template.includes("${CREDS_SECRET}")) {
      // The pod would wait for a Secret no one makes.
      throw new InvalidArgumentError(`the ${spec.tier} pod template mounts the node's NATS credential, but the controller mints none: give it a credentialIssuer`);
    }
    const body = renderNodePod(template, spec, this.ctx, this.image, this.natsUrl) as unknown as PodBody;
    const pod = await this.api.createNamespacedPod({ namespace: this.namespace, body });
    if (this.ctx.nodeCredentials) {
      try {
        await this.#createCredentials(spec.nodeId, pod);
      } catch (e) {
        // A pod without its credential would wait for it forever.
        await this.remove(spec.nodeId);
        throw e;
      }
    }
    this.#log.info("storage-node pod created", { nodeId: spec.nodeId, pod: pod.metadata?.name, namespace: this.namespace });
  }

  /** The node's NATS credential as a Secret its pod mounts; owned by the pod, so it goes when the pod does. */
  async #createCredentials(nodeId: string, pod: PodBody): Promise<void> {
    const uid = pod.metadata?.uid;
    const name = pod.metadata?.name;
    if (!uid || !name) throw new Error(`the Kubernetes API answered the creation of pod ${podNameFor(nodeId)} without its name and uid`);
    await this.api.createNamespacedSecret({
      namespace: this.namespace,
      body: {
        apiVersion: "v1", kind: "Secret", type: "Opaque",
        metadata: {
          name: credsSecretFor(nodeId),
          labels: { "app.kubernetes.io/name": "pocket-storage-node", "app.kubernetes.io/part-of": "pocket", "pocket/node-id": nodeId },
          ownerReferences: [{ apiVersion: "v1", kind: "Pod", name, uid }],
        },
        stringData: { [nodeCredsKey]: this.ctx.nodeCredentials!(nodeId) },
      },
    });
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

/** Each tier's pod template: the configured file (which must exist), else the project's own when it has one. */
function readTemplates(config: KubernetesConfig): Map<Tier, string> {
  const templates = new Map<Tier, string>();
  for (const tier of Object.values(Tier)) {
    const configured = config.manifests?.[tier];
    if (configured !== undefined) templates.set(tier, fs.readFileSync(configured, "utf8"));
    else if (fs.existsSync(defaultPodTemplate(tier))) templates.set(tier, fs.readFileSync(defaultPodTemplate(tier), "utf8"));
  }
  return templates;
}
