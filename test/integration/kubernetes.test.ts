import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import {
  PodPaths, actorConfigVariable, defaultPodTemplate, nodeCredsKey, nodePodConfig, podNameFor, renderManifest, renderNodePod, storageNodeValues, type PodManifest,
} from "../../actors/orchestrator/kubernetes";
import { Tier } from "../../schemas/operations";
import { InvalidArgumentError } from "../../schemas/errors";
import { projectRoot } from "../../lib/process";
import { fakeKubernetesApi as fakeApi, writeKubeconfig } from "../harness/kubernetes-api";
import { named, parseManifests } from "../harness/manifests";

const ctx = { natsUrl: "nats://nats:4222", secret: "not-in-the-manifest", heartbeatIntervalMs: 1000 };

/** The configuration a storage-node pod's container carries in POCKET_ACTOR_CONFIG, as the node parses it. */
function actorConfigOf(pod: PodManifest): Record<string, unknown> {
  const slots = pod.spec.containers.flatMap((c) => c.env?.filter((e) => e.name === actorConfigVariable) ?? []);
  expect(slots).toHaveLength(1);
  return JSON.parse(slots[0]!.value!) as Record<string, unknown>;
}

/** A pod with its configuration taken out: what the template made of it. */
function withoutConfig(pod: PodManifest): unknown {
  const copy = JSON.parse(JSON.stringify(pod)) as PodManifest;
  for (const c of copy.spec.containers) for (const e of c.env ?? []) if (e.name === actorConfigVariable) delete e.value;
  return copy;
}

const template = (tier: Tier): string => fs.readFileSync(defaultPodTemplate(tier), "utf8");

test("the pod manifests are filled in completely, per tier, and the secret never appears in them", () => {
  const dramSpec = { nodeId: "dram-auto-7", tier: Tier.Dram, capacityBytes: 2 ** 30 };
  const dramCtx = { ...ctx, nodeCredentials: () => "creds" };
  const dram = renderNodePod(template(Tier.Dram), dramSpec, dramCtx, "pocket:1", ctx.natsUrl);
  expect(JSON.stringify(dram)).not.toMatch(/\$\{/);
  expect(JSON.stringify(dram)).not.toContain(ctx.secret);
  expect((dram["metadata"] as { name: string }).name).toBe("pocket-dram-auto-7");
  const config = actorConfigOf(dram);
  expect(config).toMatchObject({
    nodeId: "dram-auto-7", tier: "dram", capacityBytes: 2 ** 30, port: 7400, host: "0.0.0.0", natsUrl: "nats://nats:4222",
    natsCreds: `${PodPaths.privateDir}/${nodeCredsKey}`,
  });
  expect(config["nvme"]).toBeUndefined();
  expect(storageNodeValues(dramSpec, dramCtx, "pocket:1")["MEMORY_REQUEST"]).toBe("1280Mi");
  expect(() => renderManifest("x: ${NOPE}", storageNodeValues(dramSpec, dramCtx, "pocket:1"))).toThrow(/NOPE/);
  expect(podNameFor("Dram_Auto.9")).toBe("pocket-dram-auto-9");

  const nvme = renderNodePod(template(Tier.Nvme), { nodeId: "nvme-auto-1", tier: Tier.Nvme, capacityBytes: 10 * 2 ** 30 }, ctx, "pocket:1", ctx.natsUrl);
  const nvmeConfig = actorConfigOf(nvme) as { nvme: { path: string; sizeBytes: number }; natsCreds?: string };
  expect(nvmeConfig.nvme).toEqual({ path: `${PodPaths.nvmeDir}/extents.img`, sizeBytes: 10 * 2 ** 30 });
  expect(nvmeConfig.natsCreds).toBeUndefined();
  const volume = (nvme.spec as { volumes?: Array<{ name: string; ephemeral?: { volumeClaimTemplate: { spec: { resources: { requests: { storage: string } } } } } }> }).volumes!.find((v) => v.name === "nvme")!;
  expect(volume.ephemeral!.volumeClaimTemplate.spec.resources.requests.storage).toBe("11Gi");
});

test("quotes and line breaks in the node's configuration reach it whole and change nothing else in its pod; a placeholder takes only plain values", () => {
  // A NATS URL and paths from the controller's configuration, with what would end a quoted YAML scalar and start new keys.
  const natsUrl = "nats://it's-\"quoted\":4222\n          injected: 'yes'\n";
  const strange = {
    ...ctx, nodeCredentials: () => "creds", natsTlsCa: "/etc/pocket/o'brien\"s\nca.pem",
    tls: { certFile: "/etc/pocket/cert'.pem", keyFile: "/etc/pocket/key.pem'\n        - name: POCKET_SECRET\n          value: stolen" },
  };
  for (const tier of [Tier.Dram, Tier.Nvme]) {
    const spec = { nodeId: `${tier}-auto-2`, tier, capacityBytes: 2 ** 30 };
    const pod = renderNodePod(template(tier), spec, strange, "pocket:1", natsUrl);
    expect(actorConfigOf(pod)).toEqual(JSON.parse(JSON.stringify(nodePodConfig(spec, strange, natsUrl))));
    expect(actorConfigOf(pod)["natsUrl"]).toBe(natsUrl);
    expect(withoutConfig(pod)).toEqual(withoutConfig(renderNodePod(template(tier), spec, { ...ctx, nodeCredentials: () => "creds" }, "pocket:1", ctx.natsUrl)));
  }
  const spec = { nodeId: "dram-auto-3", tier: Tier.Dram, capacityBytes: 2 ** 30 };
  for (const image of ["pocket:1\n    injected: true", "pocket:1 # more", "'pocket:1'", "{pocket}"]) {
    expect(() => renderNodePod(template(Tier.Dram), spec, ctx, image, ctx.natsUrl)).toThrow(InvalidArgumentError);
  }
  expect(() => renderNodePod(template(Tier.Dram), { ...spec, nodeId: "dram-'3" }, ctx, "pocket:1", ctx.natsUrl)).toThrow(InvalidArgumentError);
  // A template that still pastes the configuration into its YAML is refused, saying what to write instead.
  const pasted = template(Tier.Dram).replace(`- name: ${actorConfigVariable}\n`, `- name: ${actorConfigVariable}\n          value: '\${ACTOR_CONFIG}'\n`);
  expect(pasted).toContain("${ACTOR_CONFIG}");
  expect(() => renderNodePod(pasted, spec, ctx, "pocket:1", ctx.natsUrl)).toThrow(/without a value/);
  const valued = template(Tier.Dram).replace(`- name: ${actorConfigVariable}\n`, `- name: ${actorConfigVariable}\n          value: "{}"\n`);
  expect(() => renderNodePod(valued, spec, ctx, "pocket:1", ctx.natsUrl)).toThrow(/leave it out/);
  const none = template(Tier.Dram).replace(new RegExp(`^ *- name: ${actorConfigVariable}\n`, "m"), "");
  expect(() => renderNodePod(none, spec, ctx, "pocket:1", ctx.natsUrl)).toThrow(/declares no/);
  expect(() => renderNodePod(`${template(Tier.Dram)}\n  - broken`, spec, ctx, "pocket:1", ctx.natsUrl)).toThrow(/dram pod template is not YAML/);
});

/** Runs `body` against the orchestrator built from dist/ in its own process (the client library is an ES module); returns its stdout. */
async function withOrchestrator(apiUrl: string, body: string, options: { credentials: boolean; natsUrl?: string } = { credentials: true }): Promise<string> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-k8s-"));
  const kubeconfig = writeKubeconfig(path.join(tmp, "kubeconfig"), apiUrl, "pocket-test");
  const script = `
    const { KubernetesOrchestrator } = require(${JSON.stringify(path.join(projectRoot(), "dist", "actors", "orchestrator", "kubernetes.js"))});
    (async () => {
      const ctx = { ...${JSON.stringify(ctx)}, ${options.credentials ? `nodeCredentials: (id) => "creds of " + id` : ""} };
      const o = await KubernetesOrchestrator.create({ kind: "kubernetes", kubeconfig: ${JSON.stringify(kubeconfig)}, image: "pocket:test"${options.natsUrl !== undefined ? `, natsUrl: ${JSON.stringify(options.natsUrl)}` : ""} }, ctx);
      ${body}
    })().catch((e) => { console.error(e); process.exit(1); });`;
  try {
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, POCKET_LOG: "error" } });
    let out = "", err = "";
    child.stdout.on("data", (c: Buffer) => { out += c.toString(); });
    child.stderr.on("data", (c: Buffer) => { err += c.toString(); });
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(err).toBe("");
    expect(code).toBe(0);
    return out.trim();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

test("launch creates the pod and its credential's Secret, owned by the pod; remove deletes the pod (a missing one is not an error); the Role allows exactly that", async () => {
  const api = await fakeApi();
  try {
    const out = await withOrchestrator(api.url, `
      await o.launch({ nodeId: "dram-auto-7", tier: "dram", capacityBytes: 1073741824 });
      await o.remove("dram-auto-7");
      await o.remove("dram-auto-404");
      console.log("done");`);
    expect(out).toBe("done");
    expect(api.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "POST /api/v1/namespaces/pocket-test/pods",
      "POST /api/v1/namespaces/pocket-test/secrets",
      "DELETE /api/v1/namespaces/pocket-test/pods/pocket-dram-auto-7",
      "DELETE /api/v1/namespaces/pocket-test/pods/pocket-dram-auto-404",
    ]);
    const pod = api.seen[0]!.body as { metadata: { name: string; labels: Record<string, string> }; spec: { containers: Array<{ image: string; env: Array<{ name: string; value?: string }> }>; volumes: Array<{ name: string; secret?: { secretName: string } }> } };
    expect(pod.metadata.name).toBe("pocket-dram-auto-7");
    expect(pod.metadata.labels["pocket/node-id"]).toBe("dram-auto-7");
    expect(pod.spec.containers[0]!.image).toBe("pocket:test");
    const cfg = JSON.parse(pod.spec.containers[0]!.env.find((e) => e.name === "POCKET_ACTOR_CONFIG")!.value!) as { nodeId: string };
    expect(cfg.nodeId).toBe("dram-auto-7");
    const secret = api.seen[1]!.body as { metadata: { name: string; ownerReferences: Array<Record<string, string>> }; stringData: Record<string, string> };
    expect(pod.spec.volumes.find((v) => v.name === "secrets")!.secret!.secretName).toBe(secret.metadata.name);
    expect(secret.metadata.ownerReferences).toEqual([{ apiVersion: "v1", kind: "Pod", name: "pocket-dram-auto-7", uid: "uid-pocket-dram-auto-7" }]);
    expect(secret.stringData).toEqual({ [nodeCredsKey]: "creds of dram-auto-7" });

    // What the controller's Role grants, against what the orchestrator called.
    const controllerYaml = fs.readFileSync(path.join(projectRoot(), "deploy", "kubernetes", "controller.yaml"), "utf8");
    const role = named(parseManifests(controllerYaml, "controller.yaml"), "Role", "pocket-controller") as unknown as { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> };
    const granted = new Set(role.rules.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups.join(",")}/${res} ${v}`))));
    const verb: Record<string, string> = { POST: "create", DELETE: "delete", GET: "get", PUT: "update", PATCH: "patch" };
    const called = new Set(api.seen.map((s) => `/${/^\/api\/v1\/namespaces\/[^/]+\/(\w+)/.exec(s.url)![1]} ${verb[s.method]}`));
    expect([...granted].sort()).toEqual([...called].sort());
  } finally {
    api.close();
  }
}, 30_000);

test("the pod sent to the API carries the node's configuration whole, whatever characters the controller's NATS URL holds", async () => {
  const api = await fakeApi();
  const natsUrl = "nats://o'brien:\"pw\"@nats:4222\n          injected: 'yes'";
  try {
    const out = await withOrchestrator(api.url, `
      await o.launch({ nodeId: "dram-auto-5", tier: "dram", capacityBytes: 1073741824 });
      console.log("done");`, { credentials: true, natsUrl });
    expect(out).toBe("done");
    const pod = api.seen[0]!.body as PodManifest;
    expect(actorConfigOf(pod)["natsUrl"]).toBe(natsUrl);
    expect(Object.keys(pod.spec.containers[0]!)).not.toContain("injected");
  } finally {
    api.close();
  }
}, 30_000);

test("a node whose credential cannot be stored is not left behind: its pod is deleted and the launch fails", async () => {
  const api = await fakeApi();
  try {
    const out = await withOrchestrator(api.url, `
      const failed = await o.launch({ nodeId: "dram-auto-8", tier: "dram", capacityBytes: 1073741824 }).then(() => "launched", (e) => "failed: " + e.code);
      console.log(failed);`);
    expect(out).toBe("failed: 403");
    expect(api.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "POST /api/v1/namespaces/pocket-test/pods",
      "POST /api/v1/namespaces/pocket-test/secrets",
      "DELETE /api/v1/namespaces/pocket-test/pods/pocket-dram-auto-8",
    ]);
  } finally {
    api.close();
  }
}, 30_000);

test("the shipped templates need the node's credential: without a credential issuer the launch is refused before any call", async () => {
  const api = await fakeApi();
  try {
    const out = await withOrchestrator(api.url, `
      const failed = await o.launch({ nodeId: "dram-auto-9", tier: "dram", capacityBytes: 1073741824 }).then(() => "launched", (e) => "failed: " + e.constructor.name);
      console.log(failed);`, { credentials: false });
    expect(out).toBe("failed: InvalidArgumentError");
    expect(api.seen).toEqual([]);
  } finally {
    api.close();
  }
}, 30_000);

test("the templates the image carries are the ones the kustomization mounts for the controller", () => {
  const k = parseYaml(fs.readFileSync(path.join(projectRoot(), "deploy", "kubernetes", "kustomization.yaml"), "utf8")) as { configMapGenerator: Array<{ name: string; files: string[] }> };
  const files = k.configMapGenerator.find((g) => g.name === "pocket-node-templates")!.files;
  expect(files.map((f) => path.join(projectRoot(), "deploy", "kubernetes", f)).sort()).toEqual([defaultPodTemplate("dram"), defaultPodTemplate("nvme")].sort());
});
