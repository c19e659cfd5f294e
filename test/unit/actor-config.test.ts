import fs from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { projectRoot } from "../../lib/process";
import { Defaults } from "../../actors/runtime/config";
import { ActorKind, ControllerConfigSchema, ScalingPolicySchema, ShardConfigSchema, StorageNodeConfigSchema } from "../../actors/runtime/config-schema";
import { ActorConfigError, checkActorConfig } from "../../actors/runtime/config-check";
import { DefaultPolicy } from "../../actors/controller/policy";
import { renderManifest, storageNodeValues } from "../../actors/orchestrator/kubernetes";

const secret = "0123456789abcdef0123456789abcdef";

test("each field's default in the schemas is the embedded one: Defaults, and the controller's policy", () => {
  const checked: string[] = [];
  for (const schema of [ShardConfigSchema, StorageNodeConfigSchema, ControllerConfigSchema]) {
    for (const [name, field] of Object.entries(schema.properties) as Array<[string, { default?: unknown; description?: string }]>) {
      if (!(name in Defaults)) continue;
      expect({ name, default: field.default }).toEqual({ name, default: Defaults[name as keyof typeof Defaults] });
      expect(field.description).toContain(`Default ${String(Defaults[name as keyof typeof Defaults])}.`);
      checked.push(name);
    }
  }
  expect(checked).toEqual(expect.arrayContaining(["inlineBytesMax", "extentBytesMax", "heartbeatIntervalMs", "pendingWriteTtlMs", "jobTokenTtlMs"]));
  for (const [name, field] of Object.entries(ScalingPolicySchema.properties) as Array<[string, { default?: unknown }]>) {
    if (name === "nodeTypes") continue;
    expect({ name, default: field.default }).toEqual({ name, default: DefaultPolicy[name as keyof typeof DefaultPolicy] });
  }
});

test("the Kubernetes manifests' configs pass (the secret comes from the pod's environment)", () => {
  const root = projectRoot();
  const controllerYaml = fs.readFileSync(path.join(root, "deploy", "kubernetes", "controller.yaml"), "utf8");
  const env = parseAllDocuments(controllerYaml).map((d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } } } })
    .filter((d) => d.kind === "Deployment").flatMap((d) => d.spec?.template?.spec?.containers ?? []).flatMap((c) => c.env ?? []);
  const controllerConfig = env.find((e) => e.name === "POCKET_ACTOR_CONFIG")?.value;
  expect(controllerConfig).toBeDefined();
  expect(() => checkActorConfig(ActorKind.Controller, { ...JSON.parse(controllerConfig!), secret })).not.toThrow();

  const template = fs.readFileSync(path.join(root, "deploy", "kubernetes", "storage-node-pod.yaml"), "utf8");
  const values = storageNodeValues({ nodeId: "dram-auto-1", tier: "dram", capacityBytes: 2 ** 30 }, { natsUrl: "nats://nats:4222", secret, heartbeatIntervalMs: 1000 }, "pocket:1", "nats://nats:4222");
  const pod = parseAllDocuments(renderManifest(template, values))[0]!.toJS() as { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } };
  const nodeConfig = pod.spec.containers[0]!.env.find((e) => e.name === "POCKET_ACTOR_CONFIG")!.value!;
  expect(() => checkActorConfig(ActorKind.Node, { ...JSON.parse(nodeConfig), secret, advertiseAddr: "10.0.0.7:7400" })).not.toThrow();
});

test("an error names every field at fault (up to eight, then a count), with the actor kind", () => {
  const config: Record<string, unknown> = { natsUrl: "nats://x:4222", secret, shardId: "s0" };
  for (let i = 0; i < 10; i++) config[`extra${i}`] = i;
  let caught: unknown;
  try {
    checkActorConfig(ActorKind.Shard, config);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ActorConfigError);
  const e = caught as ActorConfigError;
  expect(e.kind).toBe("shard");
  expect(e.violations.map((v) => v.path)).toEqual([...Array(10).keys()].map((i) => `/extra${i}`));
  expect(e.message).toBe(`shard config: ${[...Array(8).keys()].map((i) => `/extra${i} is not a known field`).join("; ")}; and 2 more`);
});

test("a valid config comes back as it was", () => {
  const node = { natsUrl: "nats://x:4222", secret, nodeId: "nvme-0", tier: "nvme", capacityBytes: 2 ** 30, nvme: { path: "/var/tmp/n0", queueDepth: 64 }, httpPort: 9100 };
  expect(checkActorConfig(ActorKind.Node, node)).toEqual(node);
  expect(() => checkActorConfig(ActorKind.Node, { ...node, httpPort: 70_000 })).toThrow("node config: /httpPort must be ≤ 65535");
});
