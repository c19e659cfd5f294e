import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { decodeJson } from "../../bus/body";
import { Role } from "../../bus/credentials";
import { connectWithCreds } from "../../bus/nats-connect";
import { Subjects } from "../../bus/subjects";
import { nodeCredsKey, PodPaths, renderNodePod } from "../../actors/orchestrator/kubernetes";
import { ClusterAuth } from "../../deploy/cluster-auth";
import { KubernetesNames, KubernetesSecret, kubernetesSecrets } from "../../deploy/kubernetes-secrets";
import { natsServerBinary } from "../../deploy/nats-server";
import { freePort } from "../../lib/ports";
import { projectRoot } from "../../lib/process";
import { eventually } from "../harness/cluster";
import { fakeKubernetesApi, writeKubeconfig, type Seen } from "../harness/kubernetes-api";
import { PostgresServer } from "../harness/postgres-server";
import { within } from "../harness/wait";
import { expandEnv, manifestsDir, named, podsOf, renderKustomization, secretValues, type Container, type Manifest } from "../harness/manifests";

/*
 * The deployment's moving parts run for real, on this machine, as close to
 * the manifests as a machine without Kubernetes allows: three nats-servers
 * from nats.conf with the generated auth and the StatefulSet's environment
 * (only addresses and directories changed), and a shard and a storage node
 * started through the image's entrypoint from their manifests' configuration,
 * with their Secrets laid out as Kubernetes mounts them.
 */

const root = projectRoot();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-k8s-deploy-"));
const authDir = path.join(tmp, "auth");
const secrets = kubernetesSecrets({ authDir, shards: 2 }) as unknown as Manifest[];
const secret = (name: string): Record<string, string> => secretValues(named(secrets, "Secret", name));
const manifests = renderKustomization();
const natsPod = podsOf([named(manifests, "StatefulSet", "pocket-nats")])[0]!;
const natsContainer = natsPod.spec.containers.find((c) => c.name === "nats")!;

interface Server { readonly child: ChildProcess; readonly clientPort: number; readonly httpPort: number; readonly routePort: number }
const servers: Server[] = [];
const children: ChildProcess[] = [];
let nc: NatsConnection | undefined;

/** nats.conf for server `i` on this machine: the manifest's, with loopback ports and directories of its own. */
function natsConf(dir: string, ports: { client: number; http: number; route: number }): string {
  return fs.readFileSync(path.join(manifestsDir, "nats.conf"), "utf8")
    .replace(`"0.0.0.0:4222"`, `"127.0.0.1:${ports.client}"`)
    .replace(`"0.0.0.0:8222"`, `"127.0.0.1:${ports.http}"`)
    .replace(`"0.0.0.0:6222"`, `"127.0.0.1:${ports.route}"`)
    .replace(`"/data/jetstream"`, `"${path.join(dir, "jetstream")}"`)
    .replace(`"/var/run/nats/nats.pid"`, `"${path.join(dir, "nats.pid")}"`);
}

/** The NATS container's environment as Kubernetes gives it to pod `i`, routes pointed at this machine's servers. */
function natsEnv(i: number, routePorts: readonly number[]): Record<string, string> {
  const values: Record<string, string> = {};
  const seen: string[] = [];
  const fromPod: Record<string, string> = { POD_NAME: `pocket-nats-${i}`, NATS_ROUTE_PASSWORD: secret(KubernetesSecret.nats)["route-password"]! };
  for (const e of natsContainer.env ?? []) {
    let v = fromPod[e.name] ?? expandEnv(e.value!, seen, values);
    v = v.replace(/@pocket-nats-(\d+)\.pocket-nats-headless:6222/, (_, j: string) => `@127.0.0.1:${routePorts[Number(j)]}`);
    values[e.name] = v;
    seen.push(e.name);
  }
  return values;
}

async function httpStatus(port: number, probePath: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${probePath}`);
  return res.status;
}

/**
 * Starts the three servers on free ports and waits for the manifest's
 * readiness probe on each. Another process may take a port between its pick
 * and its bind (the server then exits): that start is given up, its logs
 * kept in the error, and tried again with fresh ports.
 */
async function startServers(attempt: number): Promise<void> {
  const ports = [];
  for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), http: await freePort(), route: await freePort() });
  for (let i = 0; i < 3; i++) {
    const dir = path.join(tmp, `nats-${attempt}-${i}`);
    fs.mkdirSync(path.join(dir, "auth"), { recursive: true });
    fs.writeFileSync(path.join(dir, "auth", "nats-auth.conf"), secret(KubernetesSecret.nats)["nats-auth.conf"]!);
    fs.writeFileSync(path.join(dir, "nats.conf"), natsConf(dir, ports[i]!));
    const log = fs.openSync(path.join(dir, "nats.log"), "a");
    const child = spawn(natsServerBinary(), ["-c", path.join(dir, "nats.conf")], { env: { ...process.env, ...natsEnv(i, ports.map((p) => p.route)) }, stdio: ["ignore", log, log] });
    fs.closeSync(log);
    servers.push({ child, clientPort: ports[i]!.client, httpPort: ports[i]!.http, routePort: ports[i]!.route });
  }
  const readiness = natsContainer.readinessProbe!.httpGet!.path;
  const exited = (): boolean => servers.some((s) => s.child.exitCode !== null);
  const ready = await eventually(async () => exited() || (await Promise.all(servers.map((s) => httpStatus(s.httpPort, readiness).catch(() => 0)))).every((c) => c === 200),
    30_000, "three nats-servers ready by the manifest's readiness probe").then(() => !exited(), () => false);
  if (!ready) {
    const logs = [0, 1, 2].map((i) => fs.readFileSync(path.join(tmp, `nats-${attempt}-${i}`, "nats.log"), "utf8").split("\n").slice(-3).join("\n")).join("\n");
    for (const s of servers.splice(0)) await stopChild(s.child);
    throw new Error(`the nats-servers did not all come up within 30 s:\n${logs}`);
  }
}

beforeAll(async () => {
  for (let attempt = 1; ; attempt++) {
    try {
      await startServers(attempt);
      break;
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
  nc = await connectWithCreds(servers.map((s) => `nats://127.0.0.1:${s.clientPort}`), secret(KubernetesSecret.controller)["controller.creds"], undefined, { name: "test-controller", timeoutMs: 5_000 });
}, 120_000);

afterAll(async () => {
  await nc?.close();
  for (const c of [...children, ...servers.map((s) => s.child)]) await stopChild(c);
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Stops a child process (SIGTERM) and waits for it to exit. */
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once("exit", r));
  c.kill("SIGTERM");
  await exited;
}

/** What a route's CONNECT gets from server 0's cluster port, with `password`. */
async function routeConnect(password: string): Promise<string> {
  const socket = net.connect(servers[0]!.routePort, "127.0.0.1");
  let got = "";
  let sent = false;
  socket.on("data", (d: Buffer) => {
    got += d.toString();
    // The server speaks first (INFO); the route answers with its CONNECT.
    if (!sent && got.includes("\r\n")) {
      sent = true;
      socket.write(`CONNECT {"verbose":false,"pedantic":false,"user":"pocket-route","pass":"${password}","tls_required":false,"name":"probe","cluster":"pocket"}\r\nPING\r\n`);
    }
  });
  await eventually(() => /\r\n(-ERR[^\r]*|PONG)\r\n/.test(got), 5_000, "the route's answer");
  socket.destroy();
  return /\r\n(-ERR[^\r]*|PONG)\r\n/.exec(got)![1]!;
}

test("three servers from nats.conf form one cluster: every probe of the manifest answers, and JetStream replicates a stream over all three", async () => {
  for (const probe of [natsContainer.startupProbe!, natsContainer.livenessProbe!, natsContainer.readinessProbe!]) {
    for (const s of servers) expect(await httpStatus(s.httpPort, probe.httpGet!.path)).toBe(200);
  }
  for (const s of servers) {
    const routez = await (await fetch(`http://127.0.0.1:${s.httpPort}/routez`)).json() as { num_routes: number };
    expect(routez.num_routes).toBe(2);
  }
  const jsm = await jetstreamManager(nc!);
  const info = await jsm.streams.add({ name: "DEPLOY_TEST", subjects: ["pocket.evt.deploy-test"], num_replicas: 3 });
  expect(info.cluster?.replicas?.length).toBe(2);
  await jsm.streams.delete("DEPLOY_TEST");
}, 30_000);

test("only the cluster's servers join it as routes, and only the cluster's identities connect as clients", async () => {
  expect(await routeConnect("not-the-password")).toBe("-ERR 'Authorization Violation'");
  expect(await routeConnect(secret(KubernetesSecret.nats)["route-password"]!)).not.toMatch(/Authorization/);
  await expect(connectWithCreds(`nats://127.0.0.1:${servers[1]!.clientPort}`, undefined, undefined, { name: "anonymous", timeoutMs: 5_000, maxReconnectAttempts: 0 }))
    .rejects.toThrow(/refused|Authorization/i);
}, 30_000);

/** Lays out a Secret's files as Kubernetes mounts them: symlinks into a `..data` folder, readable by the group. */
function mountSecret(dir: string, files: Readonly<Record<string, string>>): void {
  const data = path.join(dir, "..2026_01_01_00_00_00.000000000");
  fs.mkdirSync(data, { recursive: true });
  for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(data, k), v, { mode: 0o440 });
  fs.symlinkSync(path.basename(data), path.join(dir, "..data"));
  for (const k of Object.keys(files)) fs.symlinkSync(path.join("..data", k), path.join(dir, k));
}

/**
 * Runs the image's entrypoint for `role` with a container's environment (as
 * Kubernetes expands it, `fromPod` giving what comes from fields and
 * Secrets), the configuration's addresses and pod paths moved to this
 * machine, and `files` mounted where the pod mounts its Secrets.
 */
async function runActor(role: string, c: Container, fromPod: Record<string, string>, files: Record<string, string>, place: (config: Record<string, unknown>) => void): Promise<{ ready: Record<string, unknown>; privateDir: string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(tmp, `${role}-`));
  const secretsDir = path.join(dir, "secrets");
  const privateDir = path.join(dir, "private");
  mountSecret(secretsDir, files);
  const env: Record<string, string> = {};
  const seen: string[] = [];
  for (const e of c.env ?? []) {
    env[e.name] = fromPod[e.name] ?? expandEnv(e.value!, seen, env);
    seen.push(e.name);
  }
  const config = JSON.parse(env["POCKET_ACTOR_CONFIG"]!) as Record<string, unknown>;
  config["natsUrl"] = `nats://127.0.0.1:${servers[0]!.clientPort}`;
  config["natsCreds"] = (config["natsCreds"] as string).replace(PodPaths.privateDir, privateDir);
  config["httpPort"] = await freePort();
  place(config);
  env["POCKET_ACTOR_CONFIG"] = JSON.stringify(config);
  const child = spawn("sh", [path.join(root, "deploy", "docker-entrypoint.sh"), role], {
    env: { ...process.env, ...env, POCKET_SECRETS_DIR: secretsDir, POCKET_PRIVATE_DIR: privateDir, POCKET_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const line = await within(new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`${role} exited with ${code}`)));
  }), 20_000, `the ${role}'s ready line`);
  return { ready: JSON.parse(line) as Record<string, unknown>, privateDir, stop: () => stopChild(child) };
}

/** Where runActor put the pod's private copies (beside the NATS credential). */
const privateDirOf = (config: Record<string, unknown>): string => path.dirname(config["natsCreds"] as string);

/** The first heartbeat on `subject`, seen by an operator. */
async function heartbeat(subject: string): Promise<Record<string, unknown>> {
  const op = await connectWithCreds(`nats://127.0.0.1:${servers[2]!.clientPort}`, secret(KubernetesSecret.operator)["creds"], undefined, { name: "test-operator", timeoutMs: 5_000 });
  try {
    const sub = op.subscribe(subject, { max: 1 });
    for await (const m of sub) return decodeJson(m.data) as Record<string, unknown>;
    throw new Error(`no heartbeat on ${subject}`);
  } finally {
    await op.close();
  }
}

test("a shard runs from its StatefulSet's configuration through the image's entrypoint, with its pod's credential among all the shards'", async () => {
  const c = podsOf([named(manifests, "StatefulSet", KubernetesNames.shardStatefulSet)])[0]!.spec.containers[0]!;
  const port = await freePort();
  const { ready, privateDir, stop } = await runActor("shard", c, { POD_NAME: "pocket-shard-1", POCKET_ADVERTISE_HOST: "127.0.0.1", POCKET_SECRET: secret(KubernetesSecret.cluster)["secret"]! },
    secret(KubernetesSecret.shards), (config) => { config["port"] = port; });
  expect(ready).toMatchObject({ ready: true, role: "shard", shardId: "pocket-shard-1" });
  for (const f of fs.readdirSync(privateDir)) expect((fs.statSync(path.join(privateDir, f)).mode & 0o777).toString(8)).toBe("600");
  expect(fs.readdirSync(privateDir).sort()).toEqual(Object.keys(secret(KubernetesSecret.shards)).sort());
  const hb = await within(heartbeat(Subjects.shardHeartbeat("pocket-shard-1")), 10_000, "the shard's heartbeat");
  expect(hb["addr"]).toBe(`127.0.0.1:${port}`);
  await stop();
}, 40_000);

test("a storage node runs from the DRAM pod template as the controller renders it, with the credential Secret it creates", async () => {
  const auth = ClusterAuth.open(authDir);
  const spec = { nodeId: "dram-auto-3", tier: "dram" as const, capacityBytes: 64 * 2 ** 20 };
  const ctx = { natsUrl: "nats://pocket-nats:4222", secret: "unused", nodeCredentials: (id: string) => auth.credentials(Role.Node, id) };
  const template = (named(manifests, "ConfigMap", "pocket-node-templates")["data"] as Record<string, string>)["storage-node-dram.yaml"]!;
  const pod = renderNodePod(template, spec, ctx, "pocket-on-nats:test", ctx.natsUrl) as unknown as Manifest;
  const c = podsOf([pod])[0]!.spec.containers[0]!;
  const port = await freePort();
  const { ready, stop } = await runActor("node", c, { POCKET_ADVERTISE_HOST: "127.0.0.1", POCKET_SECRET: secret(KubernetesSecret.cluster)["secret"]! },
    { [nodeCredsKey]: ctx.nodeCredentials(spec.nodeId) }, (config) => { config["port"] = port; config["host"] = "127.0.0.1"; });
  expect(ready).toMatchObject({ ready: true, role: "node", nodeId: "dram-auto-3", addr: `127.0.0.1:${port}` });
  const hb = await within(heartbeat(Subjects.nodeHeartbeat("dram-auto-3")), 10_000, "the node's heartbeat");
  expect(hb["addr"]).toBe(`127.0.0.1:${port}`);
  await stop();
}, 40_000);

test("the controller runs from its StatefulSet's configuration: PostgreSQL from the Secret's URL, its credential and signing key, and it launches its minimum of DRAM nodes as pods with their credentials", async () => {
  const pg = await PostgresServer.start();
  const api = await fakeKubernetesApi();
  let stopController = (): Promise<void> => Promise.resolve();
  try {
    const sts = named(manifests, "StatefulSet", "pocket-controller");
    const pod = podsOf([sts])[0]!;
    const c = pod.spec.containers[0]!;
    // The files of the Secret volume mounted at the secrets folder, as its items pick them.
    const volume = pod.spec.volumes!.find((v) => v.name === c.volumeMounts!.find((m) => m.mountPath === PodPaths.secretsDir)!.name)!.secret!;
    const all = secret(volume.secretName);
    const files = Object.fromEntries(volume.items!.map((i) => [i.path, all[i.key]!]));
    const templates = (named(manifests, "ConfigMap", "pocket-node-templates")["data"] as Record<string, string>);
    const templatesDir = fs.mkdtempSync(path.join(tmp, "templates-"));
    for (const [k, v] of Object.entries(templates)) fs.writeFileSync(path.join(templatesDir, k), v);
    const kubeconfig = writeKubeconfig(path.join(tmp, "kubeconfig"), api.url, "unused");
    const controller = await runActor("controller", c, {
      POD_NAMESPACE: "pocket-deploy-test", POCKET_SECRET: secret(KubernetesSecret.cluster)["secret"]!,
      POCKET_STORE_URL: await pg.createDatabase("pocket"), POCKET_NATS_ACCOUNT: all["account"]!,
    }, files, (config) => {
      const issuer = config["credentialIssuer"] as { signingSeedFile: string };
      issuer.signingSeedFile = issuer.signingSeedFile.replace(PodPaths.privateDir, privateDirOf(config));
      const o = config["orchestrator"] as { manifests: Record<string, string>; kubeconfig?: string };
      for (const tier of Object.keys(o.manifests)) o.manifests[tier] = path.join(templatesDir, path.basename(o.manifests[tier]!));
      o.kubeconfig = kubeconfig;
    });
    stopController = controller.stop;
    expect(controller.ready).toMatchObject({ ready: true, role: "controller" });
    expect(fs.readdirSync(controller.privateDir).sort()).toEqual(Object.keys(files).sort());
    const minDram = ((JSON.parse(c.env!.find((e) => e.name === "POCKET_ACTOR_CONFIG")!.value!) as { policy: { nodeTypes: Array<{ tier: string; minNodes: number }> } })
      .policy.nodeTypes.find((t) => t.tier === "dram")!.minNodes);
    expect(minDram).toBeGreaterThan(0);
    const created = (kind: string): Seen[] => api.seen.filter((s) => s.method === "POST" && s.url === `/api/v1/namespaces/pocket-deploy-test/${kind}`);
    await eventually(() => created("secrets").length >= minDram, 20_000, `${minDram} storage-node pods and their Secrets`);
    for (const p of created("pods")) {
      const body = p.body as { metadata: { labels: Record<string, string> }; spec: { containers: Array<{ image: string }>; volumes: Array<{ name: string; secret?: { secretName: string } }> } };
      expect(body.metadata.labels["pocket/tier"]).toBe("dram");
      expect(body.spec.containers[0]!.image).toBe(c.image);
      const secretName = body.spec.volumes.find((v) => v.name === "secrets")!.secret!.secretName;
      expect(created("secrets").map((s) => (s.body!["metadata"] as { name: string }).name)).toContain(secretName);
    }
  } finally {
    // The controller first: it holds connections to PostgreSQL.
    await stopController();
    api.close();
    await pg.stop();
  }
}, 60_000);
