import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { decodeJwtClaims } from "../../bus/nats-jwt";
import { InvalidArgumentError } from "../../schemas/errors";
import { spawnSync } from "node:child_process";
import { driverSecretName, KubernetesSecret, kubernetesSecrets, natsBareWord, natsHosts, renderKubernetesSecrets } from "../../deploy/kubernetes-secrets";
import { natsServerBinary } from "../../deploy/nats-server";
import { named, parseManifests, secretValues, type Manifest } from "../harness/manifests";

const dirs: string[] = [];
function authDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-k8s-secrets-"));
  dirs.push(d);
  return path.join(d, "auth");
}
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

const values = (all: readonly Manifest[], name: string): Record<string, string> => secretValues(named(all, "Secret", name));
/** The name in a creds file's user JWT. */
const userOf = (creds: string): string => decodeJwtClaims(/-----BEGIN NATS USER JWT-----\n(.*)\n/.exec(creds)![1]!)["name"] as string;

test("the YAML stream holds every Secret, in the namespace, each identity minted for its role and id", () => {
  const all = parseManifests(renderKubernetesSecrets({ authDir: authDir(), namespace: "pocket-a", shards: 3, drivers: ["etl", "ml"], operator: "ops" }), "secrets");
  expect(all.map((m) => m.metadata.name).sort()).toEqual([
    KubernetesSecret.cluster, KubernetesSecret.controller, driverSecretName("etl"), driverSecretName("ml"),
    KubernetesSecret.nats, KubernetesSecret.operator, KubernetesSecret.postgres, KubernetesSecret.shards,
  ].sort());
  for (const m of all) expect(`${m.kind} ${m.metadata.namespace}`).toBe("Secret pocket-a");
  const shards = values(all, KubernetesSecret.shards);
  expect(Object.keys(shards).sort()).toEqual(["shard-pocket-shard-0.creds", "shard-pocket-shard-1.creds", "shard-pocket-shard-2.creds"]);
  expect(userOf(shards["shard-pocket-shard-2.creds"]!)).toBe("shard-pocket-shard-2");
  expect(userOf(values(all, KubernetesSecret.controller)["controller.creds"]!)).toBe("controller");
  expect(userOf(values(all, KubernetesSecret.operator)["creds"]!)).toBe("operator-ops");
  expect(userOf(values(all, driverSecretName("ml"))["creds"]!)).toBe("driver-ml");
  expect(values(all, KubernetesSecret.nats)["nats-auth.conf"]).toContain(values(all, KubernetesSecret.controller)["account"]);
});

test("rendering again from the same directory gives the same cluster; another directory, another", () => {
  const dir = authDir();
  const a = kubernetesSecrets({ authDir: dir }) as unknown as Manifest[];
  const b = kubernetesSecrets({ authDir: dir }) as unknown as Manifest[];
  const other = kubernetesSecrets({ authDir: authDir() }) as unknown as Manifest[];
  for (const [name, key] of [[KubernetesSecret.cluster, "secret"], [KubernetesSecret.nats, "nats-auth.conf"], [KubernetesSecret.nats, "route-password"], [KubernetesSecret.postgres, "url"], [KubernetesSecret.controller, "signing.nk"]] as const) {
    expect(values(b, name)[key]).toBe(values(a, name)[key]);
    expect(values(other, name)[key]).not.toBe(values(a, name)[key]);
  }
  expect(values(a, KubernetesSecret.cluster)["secret"]).toMatch(/^[0-9a-f]{64}$/);
  const pg = values(a, KubernetesSecret.postgres);
  expect(pg["url"]).toBe(`postgres://pocket:${pg["password"]}@pocket-postgres:5432/pocket`);
  for (const f of ["cluster-secret", "postgres-password", "nats-route-password"]) expect(fs.statSync(path.join(dir, "kubernetes", f)).mode & 0o777).toBe(0o600);
});

test("a route password nats-server would read as a number is rendered so that it parses, the same every time", () => {
  const dir = authDir();
  fs.mkdirSync(path.join(dir, "kubernetes"), { recursive: true });
  // Hex with a digit first: "8e5f…" is a number with an exponent to nats-server's configuration parser.
  const kept = `8e5f${"0a".repeat(30)}`;
  fs.writeFileSync(path.join(dir, "kubernetes", "nats-route-password"), `${kept}\n`, { mode: 0o600 });
  const rendered = values(kubernetesSecrets({ authDir: dir }) as unknown as Manifest[], KubernetesSecret.nats)["route-password"]!;
  expect(rendered).toBe(`r${kept}`);
  expect(values(kubernetesSecrets({ authDir: dir }) as unknown as Manifest[], KubernetesSecret.nats)["route-password"]).toBe(rendered);
  // The real server checks a cluster block that takes the password from the environment, as deploy/kubernetes/nats.conf does.
  const conf = path.join(path.dirname(dir), "route.conf");
  fs.writeFileSync(conf, 'cluster {\n  name: "pocket"\n  listen: "127.0.0.1:-1"\n  authorization {\n    user: "pocket-route"\n    password: $NATS_ROUTE_PASSWORD\n  }\n}\n');
  const check = (password: string): string => {
    const r = spawnSync(natsServerBinary(), ["-c", conf, "-t"], { env: { ...process.env, NATS_ROUTE_PASSWORD: password }, encoding: "utf8", timeout: 10_000 });
    return `${r.stdout}${r.stderr}`;
  };
  expect(check(kept)).toMatch(/could not be parsed/);
  expect(check(rendered)).toMatch(/is valid/);
  for (const p of ["12345", "0123abcd", "abc"]) expect(check(natsBareWord(p))).toMatch(/is valid/);
});

test("an external PostgreSQL: its URL only, and one that could not sit in the controller's JSON is refused", () => {
  const url = "postgres://pocket:p%22w@db.example.com:5432/pocket?sslmode=require";
  expect(values(kubernetesSecrets({ authDir: authDir(), postgresUrl: url }) as unknown as Manifest[], KubernetesSecret.postgres)).toEqual({ url });
  for (const bad of ["mysql://x", "postgres://a\"b@h/db", "postgres://a b@h/db", "postgres://a\\b@h/db"]) {
    expect(() => kubernetesSecrets({ authDir: authDir(), postgresUrl: bad })).toThrow(InvalidArgumentError);
  }
  expect(() => kubernetesSecrets({ authDir: authDir(), shards: 0 })).toThrow(InvalidArgumentError);
  expect(() => kubernetesSecrets({ authDir: authDir(), drivers: ["a.b"] })).toThrow(/driver id/);
});

test("with TLS, a CA and a server certificate it signed that names the NATS Services", () => {
  const tls = values(kubernetesSecrets({ authDir: authDir(), namespace: "pocket-b", tls: true }) as unknown as Manifest[], KubernetesSecret.tls);
  const ca = new X509Certificate(tls["ca.pem"]!);
  const cert = new X509Certificate(tls["server.pem"]!);
  expect(cert.verify(ca.publicKey)).toBe(true);
  for (const host of natsHosts("pocket-b")) expect(cert.checkHost(host)).toBe(host);
  expect(natsHosts("pocket-b")).toContain("pocket-nats.pocket-b.svc.cluster.local");
  expect(tls["server.key"]).toMatch(/PRIVATE KEY/);
});
