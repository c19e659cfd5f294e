import fs from "node:fs";
import http from "node:http";

/** One request the fake API received. */
export interface Seen { readonly method: string; readonly url: string; readonly body: Record<string, unknown> | undefined }

/**
 * An HTTP endpoint speaking the Kubernetes API's pods and secrets (no cluster
 * is available here), recording what the real client library sends: it
 * creates pods (giving each a uid) and secrets, refuses the Secret of node
 * `dram-auto-8` (403), and deletes pods it created (404 for others).
 */
export async function fakeKubernetesApi(): Promise<{ url: string; seen: Seen[]; close(): void }> {
  const seen: Seen[] = [];
  const pods = new Set<string>();
  const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => { data += c.toString(); });
    req.on("end", () => {
      const body = data ? JSON.parse(data) as Record<string, unknown> : undefined;
      const url = req.url!.split("?")[0]!;
      seen.push({ method: req.method!, url, body });
      res.setHeader("content-type", "application/json");
      const name = (body?.["metadata"] as { name?: string } | undefined)?.name ?? "";
      const reply = (code: number, json: object): void => { res.statusCode = code; res.end(JSON.stringify(json)); };
      if (req.method === "POST" && url.endsWith("/pods")) {
        pods.add(name);
        return reply(201, { ...body, metadata: { ...(body!["metadata"] as object), uid: `uid-${name}` } });
      }
      if (req.method === "POST" && url.endsWith("/secrets")) {
        if (name.startsWith("pocket-dram-auto-8")) return reply(403, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "Forbidden", code: 403 });
        return reply(201, body!);
      }
      const pod = url.split("/").pop()!;
      if (req.method === "DELETE" && pods.delete(pod)) return reply(200, { kind: "Pod", metadata: { name: pod } });
      reply(404, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", code: 404 });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen, close: () => server.close() };
}

/** A kubeconfig that points the client library at `server`, in `namespace`; returns its path. */
export function writeKubeconfig(file: string, server: string, namespace: string): string {
  fs.writeFileSync(file, [
    "apiVersion: v1", "kind: Config", "current-context: t",
    "clusters:", "- name: t", `  cluster: { server: "${server}", insecure-skip-tls-verify: true }`,
    "users:", "- name: u", "  user: { token: test-token }",
    "contexts:", "- name: t", `  context: { cluster: t, user: u, namespace: ${namespace} }`,
  ].join("\n"));
  return file;
}
