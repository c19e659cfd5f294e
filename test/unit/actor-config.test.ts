import fs from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { projectRoot } from "../../lib/process";
import { Defaults } from "../../actors/runtime/config";
import { ActorKind, ControllerConfigSchema, ScalingPolicySchema, ShardConfigSchema, StorageNodeConfigSchema } from "../../actors/runtime/config-schema";
import { ActorConfigError, checkActorConfig } from "../../actors/runtime/config-check";
import { DefaultPolicy } from "../../actors/controller/policy";
import { renderNodePod } from "../../actors/orchestrator/kubernetes";
import { Tier } from "../../schemas/operations";

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

interface ManifestContainer { args?: string[]; env?: Array<{ name: string; value?: string }> }
interface ManifestDoc { kind?: string; spec?: { template?: { spec?: { containers?: ManifestContainer[] } }; containers?: ManifestContainer[] } }

/** Each container's actor kind (its args) and config, with the pod's `$(VAR)` references filled in as Kubernetes would. */
function actorConfigsIn(docs: readonly ManifestDoc[]): Array<{ kind: string; config: Record<string, unknown> }> {
  const podValues: Record<string, string> = { POD_NAME: "pocket-shard-0", POCKET_ADVERTISE_HOST: "10.0.0.7" };
  return docs.flatMap((d) => d.spec?.template?.spec?.containers ?? d.spec?.containers ?? [])
    .filter((c) => c.env?.some((e) => e.name === "POCKET_ACTOR_CONFIG"))
    .map((c) => {
      const raw = c.env!.find((e) => e.name === "POCKET_ACTOR_CONFIG")!.value!.replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => podValues[name] ?? `$(${name})`);
      return { kind: c.args?.[0] ?? "", config: JSON.parse(raw) as Record<string, unknown> };
    });
}

test("the Kubernetes manifests' configs pass (the secret comes from the pod's environment)", () => {
  const dir = path.join(projectRoot(), "deploy", "kubernetes");
  const parse = (text: string): ManifestDoc[] => parseAllDocuments(text).map((d) => d.toJS() as ManifestDoc);
  const fixed = fs.readdirSync(dir).filter((f) => f.endsWith(".yaml") && !f.startsWith("storage-node-"))
    .flatMap((f) => actorConfigsIn(parse(fs.readFileSync(path.join(dir, f), "utf8"))));
  const launched = [Tier.Dram, Tier.Nvme].flatMap((tier) => {
    const template = fs.readFileSync(path.join(dir, `storage-node-${tier}.yaml`), "utf8");
    const spec = { nodeId: `${tier}-auto-1`, tier, capacityBytes: 2 ** 30 };
    return actorConfigsIn([renderNodePod(template, spec, { natsUrl: "nats://nats:4222", secret, heartbeatIntervalMs: 1000 }, "pocket:1", "nats://nats:4222") as ManifestDoc]);
  });
  // The controller, the shards and a node of each tier.
  expect([...fixed, ...launched].map((c) => c.kind).sort()).toEqual(["controller", "node", "node", "shard"]);
  for (const { kind, config } of [...fixed, ...launched]) {
    expect(() => checkActorConfig(kind as ActorKind, { ...config, secret })).not.toThrow();
  }
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
