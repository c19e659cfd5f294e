import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { podNameFor, renderManifest, storageNodeValues } from "../../actors/orchestrator/kubernetes";
import { projectRoot } from "../../lib/process";

const template = fs.readFileSync(path.join(projectRoot(), "deploy", "kubernetes", "storage-node-pod.yaml"), "utf8");
const ctx = { natsUrl: "nats://nats:4222", secret: "not-in-the-manifest", heartbeatIntervalMs: 1000 };

test("the pod manifest is filled in completely, and the secret never appears in it", () => {
  const values = storageNodeValues({ nodeId: "dram-auto-7", tier: "dram", capacityBytes: 2 ** 30 }, ctx, "pocket:1", ctx.natsUrl);
  const yaml = renderManifest(template, values);
  expect(yaml).not.toMatch(/\$\{/);
  expect(yaml).not.toContain(ctx.secret);
  expect(yaml).toContain("name: pocket-dram-auto-7");
  const config = JSON.parse(/value: '(\{.*\})'/.exec(yaml)![1]!) as Record<string, unknown>;
  expect(config).toMatchObject({ nodeId: "dram-auto-7", tier: "dram", capacityBytes: 2 ** 30, port: 7400, host: "0.0.0.0", natsUrl: "nats://nats:4222" });
  expect(values["MEMORY_REQUEST"]).toBe("1280Mi");
  expect(() => renderManifest("x: ${NOPE}", values)).toThrow(/NOPE/);
  expect(podNameFor("Dram_Auto.9")).toBe("pocket-dram-auto-9");
});

/**
 * The orchestrator against an HTTP endpoint speaking the Kubernetes pods API
 * (no cluster is available here): what the real client library sends.
 */
test("launch creates the pod through the Kubernetes API and remove deletes it (a missing pod is not an error)", async () => {
  const seen: Array<{ method: string; url: string; body: unknown }> = [];
  const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => { data += c.toString(); });
    req.on("end", () => {
      const body = data ? JSON.parse(data) as unknown : undefined;
      seen.push({ method: req.method!, url: req.url!, body });
      res.setHeader("content-type", "application/json");
      if (req.method === "POST") { res.statusCode = 201; res.end(JSON.stringify(body)); return; }
      if (req.method === "DELETE" && req.url!.endsWith("/pocket-dram-auto-7")) { res.end(JSON.stringify({ kind: "Pod", metadata: { name: "pocket-dram-auto-7" } })); return; }
      res.statusCode = 404;
      res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", code: 404 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-k8s-"));
  const kubeconfig = path.join(tmp, "kubeconfig");
  fs.writeFileSync(kubeconfig, [
    "apiVersion: v1", "kind: Config", "current-context: t",
    "clusters:", `- name: t`, `  cluster: { server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true }`,
    "users:", "- name: u", "  user: { token: test-token }",
    "contexts:", "- name: t", "  context: { cluster: t, user: u, namespace: pocket-test }",
  ].join("\n"));
  try {
    // The client library is an ES module: run the orchestrator from the built code in its own process.
    const script = `
      const { KubernetesOrchestrator } = require(${JSON.stringify(path.join(projectRoot(), "dist", "actors", "orchestrator", "kubernetes.js"))});
      (async () => {
        const o = await KubernetesOrchestrator.create({ kind: "kubernetes", kubeconfig: ${JSON.stringify(kubeconfig)}, image: "pocket:test" }, ${JSON.stringify(ctx)});
        await o.launch({ nodeId: "dram-auto-7", tier: "dram", capacityBytes: 1073741824 });
        await o.remove("dram-auto-7");
        await o.remove("dram-auto-404");
        console.log("done");
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, POCKET_LOG: "error" } });
    let out = "", err = "";
    child.stdout.on("data", (c: Buffer) => { out += c.toString(); });
    child.stderr.on("data", (c: Buffer) => { err += c.toString(); });
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out.trim()).toBe("done");
    expect(seen.map((s) => `${s.method} ${s.url.split("?")[0]}`)).toEqual([
      "POST /api/v1/namespaces/pocket-test/pods",
      "DELETE /api/v1/namespaces/pocket-test/pods/pocket-dram-auto-7",
      "DELETE /api/v1/namespaces/pocket-test/pods/pocket-dram-auto-404",
    ]);
    const pod = seen[0]!.body as { metadata: { name: string; labels: Record<string, string> }; spec: { containers: Array<{ image: string; env: Array<{ name: string; value?: string }> }> } };
    expect(pod.metadata.name).toBe("pocket-dram-auto-7");
    expect(pod.metadata.labels["pocket/node-id"]).toBe("dram-auto-7");
    expect(pod.spec.containers[0]!.image).toBe("pocket:test");
    const cfg = JSON.parse(pod.spec.containers[0]!.env.find((e) => e.name === "POCKET_ACTOR_CONFIG")!.value!) as { nodeId: string };
    expect(cfg.nodeId).toBe("dram-auto-7");
  } finally {
    server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}, 30_000);
