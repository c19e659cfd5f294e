import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import type { ControllerConfig } from "../../actors/controller/controller";
import type { ShardConfig } from "../../actors/metadata/shard";
import type { StorageNodeConfig } from "../../actors/storage/storage-node";
import { PodPaths, nodeCredsKey, podDataPort, podHttpPort, renderNodePod } from "../../actors/orchestrator/kubernetes";
import { ClusterAuth } from "../../deploy/cluster-auth";
import { Role as BusRole } from "../../bus/credentials";
import { KubernetesNames, KubernetesSecret, kubernetesSecrets } from "../../deploy/kubernetes-secrets";
import { projectRoot } from "../../lib/process";
import { sourceFiles } from "../harness/sources";
import {
  byKind, expandEnv, keysOf, manifestsDir, named, parseManifests, podsOf, readKustomization, renderKustomization, secretValues, selects,
  type Container, type Manifest, type PodOf,
} from "../harness/manifests";

/*
 * deploy/kubernetes, checked offline as far as it can be without a cluster:
 * every object against the Kubernetes API's schemas, and what must agree
 * across objects for the cluster to come up (names, labels, ports, keys,
 * paths, the actors' configurations, the image).
 */

const root = projectRoot();
const pocketImage = "pocket-on-nats";
const authDir = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-k8s-auth-"));
afterAll(() => fs.rmSync(authDir, { recursive: true, force: true }));

/** The storage-node pods the controller creates, as its orchestrator renders them from the templates in the ConfigMap. */
function nodePods(manifests: readonly Manifest[]): Manifest[] {
  const auth = ClusterAuth.open(authDir);
  const ctx = { natsUrl: "nats://pocket-nats:4222", secret: "unused", heartbeatIntervalMs: 1000, nodeCredentials: (id: string) => auth.credentials(BusRole.Node, id) };
  const templates = named(manifests, "ConfigMap", "pocket-node-templates")["data"] as Record<string, string>;
  const image = controllerConfig(manifests).orchestrator.image;
  return [
    { file: "storage-node-dram.yaml", spec: { nodeId: "dram-auto-1", tier: "dram" as const, capacityBytes: 2 ** 31 } },
    { file: "storage-node-nvme.yaml", spec: { nodeId: "nvme-auto-1", tier: "nvme" as const, capacityBytes: 100 * 2 ** 30 } },
  ].map(({ file, spec }) => {
    const pod = renderNodePod(templates[file]!, spec, ctx, image, ctx.natsUrl) as unknown as Manifest;
    pod.metadata.namespace = readKustomization().namespace!;
    return pod;
  });
}

/** A launched node's credential Secret, as the orchestrator creates it beside its pod. */
function nodeCredsSecret(pod: Manifest): Manifest {
  const name = (pod["spec"] as { volumes: Array<{ name: string; secret?: { secretName: string } }> }).volumes.find((v) => v.name === "secrets")!.secret!.secretName;
  return { apiVersion: "v1", kind: "Secret", metadata: { name, namespace: pod.metadata.namespace! }, stringData: { [nodeCredsKey]: "creds" } };
}

/** Everything that exists in the namespace once the cluster runs: the kustomization, the generated Secrets, launched nodes and theirs. */
function cluster(without: readonly string[] = [], secretOptions: { postgresUrl?: string } = {}): Manifest[] {
  const manifests = renderKustomization(manifestsDir, without);
  const secrets = kubernetesSecrets({ authDir, shards: 4, ...secretOptions }) as unknown as Manifest[];
  const nodes = nodePods(manifests);
  return [...manifests, ...secrets, ...nodes, ...nodes.map(nodeCredsSecret)];
}

interface ControllerManifestConfig { orchestrator: { kind: string; image: string; namespace: string; natsUrl: string; manifests: Record<string, string> }; [k: string]: unknown }

function controllerConfig(manifests: readonly Manifest[]): ControllerManifestConfig {
  const c = podsOf([named(manifests, "StatefulSet", "pocket-controller")])[0]!.spec.containers[0]!;
  return JSON.parse(c.env!.find((e) => e.name === "POCKET_ACTOR_CONFIG")!.value!) as ControllerManifestConfig;
}

const isPocket = (c: Container): boolean => c.image.split(":")[0] === pocketImage || c.image === "${IMAGE}";

/** What a container's env resolves to: literal values expanded in order, and a stand-in for each valueFrom. */
function resolvedEnv(c: Container, overrides: Readonly<Record<string, string>> = {}): { values: Record<string, string>; unresolved: string[] } {
  const values: Record<string, string> = {};
  const seen: string[] = [];
  const unresolved: string[] = [];
  for (const e of c.env ?? []) {
    values[e.name] = overrides[e.name] ?? (e.value !== undefined ? expandEnv(e.value, seen, values, unresolved) : `<${e.name}>`);
    seen.push(e.name);
  }
  return { values, unresolved };
}

const models: Record<string, (m: Manifest) => { validate(): void }> = {
  Namespace: (m) => new Namespace(m as never),
  ServiceAccount: (m) => new ServiceAccount(m as never),
  Service: (m) => new Service(m as never),
  ConfigMap: (m) => new ConfigMap(m as never),
  Secret: (m) => new Secret(m as never),
  Pod: (m) => new Pod(m as never),
  StatefulSet: (m) => new StatefulSet(m as never),
  Deployment: (m) => new Deployment(m as never),
  Role: (m) => new Role(m as never),
  RoleBinding: (m) => new RoleBinding(m as never),
  PodDisruptionBudget: (m) => new PodDisruptionBudget(m as never),
};

describe("every object", () => {
  test("is valid against the Kubernetes API's schema, with kubectl's YAML parser's rules", () => {
    const all = cluster();
    expect(all.length).toBeGreaterThan(15);
    for (const m of all) {
      const model = models[m.kind];
      if (!model) throw new Error(`${m.kind} ${m.metadata.name}: no schema checked for this kind`);
      expect(() => model(m).validate()).not.toThrow();
    }
  });

  test("a schema violation or an unquoted flow scalar kubectl refuses is caught", () => {
    const bad = { ...named(renderKustomization(), "Service", "pocket-nats"), spec: { ports: [{ port: "client" }] } };
    expect(() => new Service(bad as never).validate()).toThrow(/port/);
    expect(() => parseManifests("a:\n  b: { path: /healthz?x=1 }\n", "t.yaml")).toThrow(/quote/);
  });

  test("is in the namespace, and has a name no other object of its kind has", () => {
    const all = cluster();
    const ns = readKustomization().namespace!;
    expect(named(all, "Namespace", ns)).toBeDefined();
    const seen = new Set<string>();
    for (const m of all) {
      if (m.kind !== "Namespace") expect(`${m.kind}/${m.metadata.name}: ${m.metadata.namespace}`).toBe(`${m.kind}/${m.metadata.name}: ${ns}`);
      expect(seen.has(`${m.kind}/${m.metadata.name}`)).toBe(false);
      seen.add(`${m.kind}/${m.metadata.name}`);
    }
  });
});

describe("references", () => {
  function check(all: readonly Manifest[]): string[] {
    const problems: string[] = [];
    const has = (kind: string, name: string, key?: string): boolean => {
      const m = all.find((x) => x.kind === kind && x.metadata.name === name);
      return m !== undefined && (key === undefined || keysOf(m).includes(key));
    };
    for (const pod of podsOf(all)) {
      const where = `${pod.owner.kind} ${pod.owner.metadata.name}`;
      if (pod.spec.serviceAccountName && !has("ServiceAccount", pod.spec.serviceAccountName)) problems.push(`${where}: no ServiceAccount ${pod.spec.serviceAccountName}`);
      for (const v of pod.spec.volumes ?? []) {
        if (v.secret && !v.secret.optional) for (const key of v.secret.items?.map((i) => i.key) ?? [undefined]) if (!has("Secret", v.secret.secretName, key)) problems.push(`${where}: no Secret ${v.secret.secretName} ${key ?? ""}`);
        if (v.configMap) for (const key of v.configMap.items?.map((i) => i.key) ?? [undefined]) if (!has("ConfigMap", v.configMap.name, key)) problems.push(`${where}: no ConfigMap ${v.configMap.name} ${key ?? ""}`);
      }
      for (const c of pod.spec.containers) {
        for (const e of c.env ?? []) {
          const s = e.valueFrom?.secretKeyRef;
          if (s && !s.optional && !has("Secret", s.name, s.key)) problems.push(`${where}/${c.name}: env ${e.name} names Secret ${s.name} key ${s.key}, which does not exist`);
          const cm = e.valueFrom?.configMapKeyRef;
          if (cm && !has("ConfigMap", cm.name, cm.key)) problems.push(`${where}/${c.name}: env ${e.name} names ConfigMap ${cm.name} key ${cm.key}`);
        }
      }
    }
    return problems;
  }

  test("every Secret, key, ConfigMap and ServiceAccount a pod names exists, with PostgreSQL in the cluster or outside it", () => {
    expect(check(cluster())).toEqual([]);
    expect(check(cluster(["postgres.yaml"], { postgresUrl: "postgres://pocket:pw@db.example.com:5432/pocket" }))).toEqual([]);
  });

  test("a missing Secret or key is caught", () => {
    const all = cluster().filter((m) => !(m.kind === "Secret" && m.metadata.name === KubernetesSecret.cluster));
    expect(check(all).join("\n")).toMatch(/names Secret pocket-cluster key secret/);
  });

  test("every volume mount names a volume of its pod or a claim template of its workload", () => {
    for (const pod of podsOf(cluster())) {
      const volumes = [...(pod.spec.volumes ?? []).map((v) => v.name), ...pod.claimTemplates];
      for (const c of pod.spec.containers) for (const m of c.volumeMounts ?? []) expect(`${pod.owner.metadata.name}: ${m.name}`).toBe(`${pod.owner.metadata.name}: ${volumes.includes(m.name) ? m.name : "(none)"}`);
    }
  });

  test("the controller's ServiceAccount is bound to its Role", () => {
    const all = cluster();
    const binding = named(all, "RoleBinding", "pocket-controller") as unknown as { roleRef: { kind: string; name: string }; subjects: Array<{ kind: string; name: string }> };
    expect(named(all, binding.roleRef.kind, binding.roleRef.name)).toBeDefined();
    const sa = podsOf([named(all, "StatefulSet", "pocket-controller")])[0]!.spec.serviceAccountName!;
    expect(binding.subjects).toContainEqual(expect.objectContaining({ kind: "ServiceAccount", name: sa }));
  });
});

describe("selectors and ports", () => {
  function servicePods(all: readonly Manifest[], svc: Manifest): PodOf[] {
    const selector = (svc["spec"] as { selector: Record<string, string> }).selector;
    return podsOf(all).filter((p) => p.owner.kind !== "Pod" && selects(selector, p.labels));
  }

  function serviceProblems(all: readonly Manifest[]): string[] {
    const problems: string[] = [];
    for (const svc of byKind(all, "Service")) {
      const pods = servicePods(all, svc);
      if (pods.length === 0) problems.push(`Service ${svc.metadata.name} selects no pods`);
      for (const p of (svc["spec"] as { ports: Array<{ name: string; targetPort: string | number }> }).ports) {
        for (const pod of pods) {
          const ports = pod.spec.containers.flatMap((c) => c.ports ?? []);
          if (!ports.some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort)) problems.push(`Service ${svc.metadata.name} port ${p.name} → ${p.targetPort}: no such port in ${pod.owner.metadata.name}`);
        }
      }
    }
    return problems;
  }

  test("every Service selects a workload's pods, on ports they have", () => {
    expect(serviceProblems(cluster())).toEqual([]);
  });

  test("a Service whose selector matches no pod labels is caught", () => {
    const all = cluster().map((m) => (m.kind === "Service" && m.metadata.name === "pocket-nats"
      ? { ...m, spec: { ...(m["spec"] as object), selector: { "app.kubernetes.io/name": "pocket-natz" } } } : m));
    expect(serviceProblems(all)).toContain("Service pocket-nats selects no pods");
  });

  test("each workload selects its own template, a StatefulSet names a headless Service, and each PodDisruptionBudget covers a workload", () => {
    const all = cluster();
    for (const w of [...byKind(all, "StatefulSet"), ...byKind(all, "Deployment")]) {
      const spec = w["spec"] as { selector: { matchLabels: Record<string, string> }; serviceName?: string };
      expect(selects(spec.selector.matchLabels, podsOf([w])[0]!.labels)).toBe(true);
      if (w.kind === "StatefulSet") expect((named(all, "Service", spec.serviceName!)["spec"] as { clusterIP?: string }).clusterIP).toBe("None");
    }
    for (const pdb of byKind(all, "PodDisruptionBudget")) {
      const selector = (pdb["spec"] as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
      expect(podsOf(all).filter((p) => p.owner.kind !== "Pod" && selects(selector, p.labels)).map((p) => p.owner.metadata.name)).toHaveLength(1);
    }
  });

  test("every HTTP probe and scrape annotation names a port of its container; actors serve them on their configured httpPort", () => {
    for (const pod of podsOf(cluster())) {
      for (const c of pod.spec.containers) {
        const ports = c.ports ?? [];
        for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
          const port = probe?.httpGet?.port;
          if (port === undefined) continue;
          expect(`${c.name}: ${String(port)}`).toBe(`${c.name}: ${ports.some((p) => p.name === port || p.containerPort === port) ? String(port) : "(no such port)"}`);
        }
        if (isPocket(c)) {
          expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "http" });
          expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "http" });
          expect(ports.find((p) => p.name === "http")?.containerPort).toBe(podHttpPort);
          expect(actorConfig(c)["httpPort"]).toBe(podHttpPort);
        }
      }
      const scrape = pod.owner.kind === "Pod" ? pod.owner.metadata.annotations : (pod.owner["spec"] as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations;
      if (scrape?.["prometheus.io/scrape"] === "true") {
        expect(pod.spec.containers.flatMap((c) => c.ports ?? []).map((p) => String(p.containerPort))).toContain(scrape["prometheus.io/port"]);
      }
    }
  });
});

/** A Pocket container's actor configuration, with Kubernetes' `$(NAME)` expansion done (stand-ins for values from Secrets and fields). */
function actorConfig(c: Container, overrides: Readonly<Record<string, string>> = {}): Record<string, unknown> {
  const { values, unresolved } = resolvedEnv(c, overrides);
  expect(unresolved).toEqual([]);
  return JSON.parse(values["POCKET_ACTOR_CONFIG"]!) as Record<string, unknown>;
}

/** Keys a configuration type requires; a type that gains one fails to compile here until it is listed. */
type RequiredKeys<T> = { [K in keyof T & string]-?: Record<never, never> extends Pick<T, K> ? never : K }[keyof T & string];
function requiredKeys<T>() {
  return <const K extends readonly RequiredKeys<T>[]>(...keys: K & ([Exclude<RequiredKeys<T>, K[number]>] extends [never] ? unknown : never)): readonly string[] => keys;
}
const required: Record<string, readonly string[]> = {
  controller: requiredKeys<ControllerConfig>()("natsUrl", "secret"),
  shard: requiredKeys<ShardConfig>()("natsUrl", "secret", "shardId"),
  node: requiredKeys<StorageNodeConfig>()("natsUrl", "secret", "nodeId", "tier", "capacityBytes"),
};

describe("the actors' configurations", () => {
  /** Every Pocket container with its role (its first argument) and configuration. */
  function actors(all: readonly Manifest[]): Array<{ pod: PodOf; c: Container; role: string; config: Record<string, unknown> }> {
    return podsOf(all).flatMap((pod) => pod.spec.containers.filter(isPocket).map((c) => ({ pod, c, role: c.args![0]!, config: actorConfig(c) })));
  }

  /** The file a path in the pod resolves to: a key of the Secret or ConfigMap mounted over it (Secrets reach privateDir through the entrypoint's copy). */
  function fileProblems(all: readonly Manifest[], pod: PodOf, c: Container, file: string): string | undefined {
    const dir = path.dirname(file) === PodPaths.privateDir ? PodPaths.secretsDir : path.dirname(file);
    const mount = c.volumeMounts?.find((m) => m.mountPath === dir);
    const volume = pod.spec.volumes?.find((v) => v.name === mount?.name);
    const source = volume?.secret ? named(all, "Secret", volume.secret.secretName) : volume?.configMap ? named(all, "ConfigMap", volume.configMap.name) : undefined;
    const items = volume?.secret?.items ?? volume?.configMap?.items;
    const present = items ? items.some((i) => i.path === path.basename(file) && keysOf(source!).includes(i.key)) : source !== undefined && keysOf(source).includes(path.basename(file));
    return present ? undefined : `${pod.owner.metadata.name}: ${file} is not provided by any mount`;
  }

  test("each has every key its actor requires (the secret from POCKET_SECRET), and the role is one actors/main.ts runs", () => {
    const all = actors(cluster());
    expect(new Set(all.map((a) => a.role))).toEqual(new Set(["controller", "shard", "node"]));
    for (const { c, role, config } of all) {
      const env = (c.env ?? []).map((e) => e.name);
      for (const key of required[role]!) {
        const given = config[key] !== undefined || (key === "secret" && env.includes("POCKET_SECRET"));
        expect(`${role}: ${key} ${given ? "given" : "missing"}`).toBe(`${role}: ${key} given`);
      }
    }
  });

  test("every file a configuration names is in a Secret or ConfigMap mounted where the configuration looks", () => {
    const all = cluster();
    for (const { pod, c, role, config } of actors(all)) {
      expect(typeof config["natsCreds"]).toBe("string");
      const files = [config["natsCreds"], (config["credentialIssuer"] as { signingSeedFile?: string } | undefined)?.signingSeedFile,
        ...Object.values((config["orchestrator"] as { manifests?: Record<string, string> } | undefined)?.manifests ?? {})].filter((f) => f !== undefined);
      if (role === "shard") {
        // One configuration for every replica: the pod name picks the credential.
        const replicas = (pod.owner["spec"] as { replicas: number }).replicas;
        for (let i = 0; i < replicas; i++) {
          const own = actorConfig(c, { POD_NAME: `${KubernetesNames.shardStatefulSet}-${i}` });
          expect(fileProblems(all, pod, c, own["natsCreds"] as string)).toBeUndefined();
          expect(own["shardId"]).toBe(`${pod.owner.metadata.name}-${i}`);
        }
        continue;
      }
      for (const f of files) expect(fileProblems(all, pod, c, f as string)).toBeUndefined();
    }
  });

  test("a configuration naming a file no mount provides is caught", () => {
    const all = cluster();
    const { pod, c } = actors(all).find((a) => a.role === "controller")!;
    expect(fileProblems(all, pod, c, `${PodPaths.privateDir}/nowhere.creds`)).toMatch(/not provided/);
  });

  test("addresses: NATS and PostgreSQL at their Services, the direct transport on a container port, NVMe data on a volume", () => {
    const all = cluster();
    const servicePort = (name: string): number[] => (named(all, "Service", name)["spec"] as { ports: Array<{ port: number }> }).ports.map((p) => p.port);
    for (const { pod, c, role, config } of actors(all)) {
      for (const url of [config["natsUrl"], (config["orchestrator"] as { natsUrl?: string } | undefined)?.natsUrl].filter((u) => u !== undefined)) {
        const u = new URL(url as string);
        expect(servicePort(u.hostname)).toContain(Number(u.port));
      }
      if (role === "shard") expect(c.ports!.find((p) => p.name === "direct")?.containerPort).toBe(config["port"]);
      if (role === "node") expect(c.ports!.find((p) => p.name === "data")?.containerPort).toBe(podDataPort);
      const nvme = config["nvme"] as { path: string } | undefined;
      if (nvme) expect(pod.spec.volumes?.find((v) => v.name === c.volumeMounts?.find((m) => m.mountPath === path.dirname(nvme.path))?.name)?.ephemeral).toBeDefined();
    }
    const store = new URL(secretValues(named(all, "Secret", KubernetesSecret.postgres))["url"]!);
    expect(servicePort(store.hostname)).toContain(Number(store.port));
  });

  test("the controller launches nodes from the templates it mounts, in its own namespace, on the bus its shards use", () => {
    const all = cluster();
    const config = controllerConfig(all);
    expect(config.orchestrator.kind).toBe("kubernetes");
    expect(config.orchestrator.namespace).toBe("$(POD_NAMESPACE)");
    const controller = podsOf([named(all, "StatefulSet", "pocket-controller")])[0]!.spec.containers[0]!;
    expect(controller.env!.find((e) => e.name === "POD_NAMESPACE")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.namespace");
    expect(Object.keys(config.orchestrator.manifests).sort()).toEqual(["dram", "nvme"]);
  });

  test("the shards' StatefulSet scales no further than the shard credentials made", () => {
    const all = cluster();
    const replicas = (named(all, "StatefulSet", KubernetesNames.shardStatefulSet)["spec"] as { replicas: number }).replicas;
    const creds = keysOf(named(all, "Secret", KubernetesSecret.shards));
    expect(creds.length).toBeGreaterThanOrEqual(replicas);
  });
});

describe("environment", () => {
  /** Every environment variable the project's code reads, and those the image's entrypoint reads. */
  function readByCode(): Set<string> {
    const names = new Set<string>();
    const pattern = /process\.env\.([A-Z][A-Z0-9_]*)|env\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]/g;
    for (const dir of ["lib", "schemas", "bus", "native", "actors", "client", "deploy"]) {
      for (const f of sourceFiles(path.join(root, dir))) for (const m of fs.readFileSync(f, "utf8").matchAll(pattern)) names.add((m[1] ?? m[2])!);
    }
    for (const m of fs.readFileSync(path.join(root, "deploy", "docker-entrypoint.sh"), "utf8").matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)) names.add(m[1]!);
    return names;
  }
  /** What the postgres image reads (its documented interface). */
  const postgresImageReads = ["POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD", "PGDATA"];

  test("every variable is read by the code, by nats.conf, by the postgres image, or expanded into a later variable of its container", () => {
    const code = readByCode();
    const natsConf = fs.readFileSync(path.join(manifestsDir, "nats.conf"), "utf8");
    for (const pod of podsOf(cluster())) {
      for (const c of pod.spec.containers) {
        const env = c.env ?? [];
        env.forEach((e, i) => {
          const expanded = env.slice(i + 1).some((later) => later.value?.includes(`$(${e.name})`));
          const read = isPocket(c) ? code.has(e.name) : c.name === "nats" ? new RegExp(`\\$${e.name}\\b`).test(natsConf) : postgresImageReads.includes(e.name);
          expect(`${c.name}: ${e.name} ${read || expanded ? "used" : "unused"}`).toBe(`${c.name}: ${e.name} used`);
        });
        expect(resolvedEnv(c).unresolved).toEqual([]);
      }
    }
    expect(code.has("POCKET_ACTOR_CONFIG") && code.has("POCKET_SECRET") && code.has("POCKET_ADVERTISE_HOST")).toBe(true);
  });

  test("a $(NAME) that names no earlier variable of its container is caught (Kubernetes would leave it as written)", () => {
    const { unresolved } = resolvedEnv({ name: "x", image: "i", env: [{ name: "A", value: "$(B)" }, { name: "B", value: "b" }] });
    expect(unresolved).toEqual(["B"]);
  });

  test("every variable in nats.conf is in the NATS container's environment", () => {
    const nats = podsOf([named(cluster(), "StatefulSet", "pocket-nats")])[0]!.spec.containers.find((c) => c.name === "nats")!;
    const conf = fs.readFileSync(path.join(manifestsDir, "nats.conf"), "utf8").replace(/^\s*#.*$/gm, "");
    const vars = [...conf.matchAll(/\$([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!);
    expect(vars.length).toBeGreaterThan(0);
    for (const v of vars) expect((nats.env ?? []).map((e) => e.name)).toContain(v);
  });
});

describe("the NATS cluster", () => {
  test("has a route to every replica through the headless Service, and includes the generated auth from its mounted Secret", () => {
    const all = cluster();
    const sts = named(all, "StatefulSet", "pocket-nats");
    const spec = sts["spec"] as { replicas: number; serviceName: string };
    const nats = podsOf([sts])[0]!.spec.containers.find((c) => c.name === "nats")!;
    const routes = (nats.env ?? []).filter((e) => e.name.startsWith("NATS_ROUTE_") && e.value !== undefined).map((e) => new URL(e.value!.replace("$(NATS_ROUTE_PASSWORD)", "pw")));
    expect(routes.map((u) => u.hostname).sort()).toEqual(Array.from({ length: spec.replicas }, (_, i) => `${sts.metadata.name}-${i}.${spec.serviceName}`));
    expect(new Set(routes.map((u) => `${u.username}:${u.port}`))).toEqual(new Set(["pocket-route:6222"]));
    const conf = fs.readFileSync(path.join(manifestsDir, "nats.conf"), "utf8");
    const include = /^include "([^"]+)"/m.exec(conf)![1]!;
    const configMount = nats.volumeMounts!.find((m) => m.name === "config")!.mountPath;
    const authMount = nats.volumeMounts!.find((m) => path.join(configMount, include).startsWith(`${m.mountPath}/`) && m.name !== "config")!;
    const volume = podsOf([sts])[0]!.spec.volumes!.find((v) => v.name === authMount.name)!;
    expect(keysOf(named(all, "Secret", volume.secret!.secretName))).toContain(path.basename(include));
    expect(/user: "([^"]+)"/.exec(conf)![1]).toBe("pocket-route");
  });
});

describe("pods running the Pocket image", () => {
  test("run as non-root without service links, and get their secrets as private copies in memory", () => {
    const dockerfile = fs.readFileSync(path.join(root, "Dockerfile"), "utf8");
    expect(dockerfile).toContain(`POCKET_SECRETS_DIR=${PodPaths.secretsDir}`);
    expect(dockerfile).toContain(`POCKET_PRIVATE_DIR=${PodPaths.privateDir}`);
    for (const pod of podsOf(cluster())) {
      const pocket = pod.spec.containers.filter(isPocket);
      if (pocket.length === 0) continue;
      expect(pod.spec.securityContext?.runAsNonRoot).toBe(true);
      expect(pod.spec.enableServiceLinks).toBe(false);
      for (const c of pocket) {
        const mountAt = (p: string): string | undefined => c.volumeMounts?.find((m) => m.mountPath === p)?.name;
        expect(mountAt(PodPaths.secretsDir)).toBeDefined();
        expect(pod.spec.volumes?.find((v) => v.name === mountAt(PodPaths.privateDir))?.emptyDir?.medium).toBe("Memory");
        expect(c.resources?.requests?.["memory"] && c.resources.limits?.["memory"]).toBeTruthy();
      }
    }
  });

  test("all name one image: the one docs/deploy.md builds, tagged with the package's version", () => {
    const all = cluster();
    const version = (JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version;
    const images = new Set(podsOf(all).flatMap((p) => p.spec.containers.filter(isPocket).map((c) => c.image)));
    images.add(controllerConfig(all).orchestrator.image);
    const docs = fs.readFileSync(path.join(root, "docs", "deploy.md"), "utf8");
    for (const m of docs.matchAll(/docker build -t (\S+) /g)) images.add(m[1]!);
    expect([...images]).toEqual([`${pocketImage}:${version}`]);
    expect(fs.readFileSync(path.join(root, "Dockerfile"), "utf8")).toContain(`docker build -t ${pocketImage}:${version} .`);
  });
});
