import { Option } from "commander";
import { As, credentialsFor, natsUrl, tlsCaFor } from "./connect";
import { connectionOptions, count, list, VerbGroup, type Verb } from "./verb";

/** A TCP port, 0 for a free one. */
const port = (text: string): number => {
  const n = count(text);
  if (n > 65_535) throw new RangeError(`takes a port 0..65535, not ${text}`);
  return n;
};

export const dashboard: Verb = {
  words: ["dashboard"],
  group: VerbGroup.Cluster,
  summary: "serve a web page of the live cluster (operator credentials)",
  details: "Serves one page with the nodes by tier and state, the jobs and their weight maps, utilisation against the\n"
    + "autoscaling band, the scaling timeline and the event feed, live (docs/dashboard.md). It has no login of its own:\n"
    + "keep it on 127.0.0.1, or behind something that authenticates, when you bind it elsewhere. It answers only requests\n"
    + "naming loopback, the address it serves on (every interface's on 0.0.0.0) or a host given with --allow-host.",
  args: [],
  options: [
    ...connectionOptions("POCKET_ADMIN_CREDS"),
    new Option("--host <address>", "address to serve the page on").default("127.0.0.1"),
    new Option("--port <n>", "port to serve the page on (0: a free one)").argParser(port).default(8080),
    new Option("--allow-host <names>", "more host names the page may be opened by, comma-separated (a proxy's, this machine's DNS name)").argParser(list),
  ],
  env: ["POCKET_NATS_URL", "POCKET_ADMIN_CREDS", "POCKET_TLS_CA"],
  examples: ["pocket dashboard --port 8080", "pocket dashboard --host 0.0.0.0 --allow-host pocket-dash.example.com"],
  run: async (_args, flags) => {
    const { runDashboard } = require("./dashboard/dashboard") as typeof import("./dashboard/dashboard");
    const tlsCa = tlsCaFor(flags);
    const credentials = credentialsFor(flags, As.Admin);
    await runDashboard({
      servers: natsUrl(flags), host: flags.host, port: flags.port, ...(flags.allowHost !== undefined ? { allowedHosts: flags.allowHost } : {}),
      ...(credentials !== undefined ? { credentials } : {}), ...(tlsCa !== undefined ? { tlsCa } : {}),
    });
  },
};

export const k8sSecrets: Verb = {
  words: ["k8s", "secrets"],
  group: VerbGroup.Cluster,
  summary: "print the Kubernetes Secrets of a cluster, made from its auth directory (docs/deploy.md)",
  details: "Creates the auth directory the first time; keep it, and keep it private: every credential is minted from its\n"
    + "keys, and the cluster secret and passwords made here are kept in it, so running this again gives the same cluster.\n"
    + "The output holds private keys: apply it (kubectl apply -f -), never commit it.",
  args: [],
  options: [
    new Option("--auth-dir <dir>", "the cluster's auth directory").makeOptionMandatory(),
    new Option("--namespace <ns>", "the namespace of the manifests").default("pocket"),
    new Option("--shards <n>", "shard credentials to make (pocket-shard-0 …)").argParser(count).default(4),
    new Option("--driver <names>", "job drivers to make a credential for, comma-separated (default: default)").argParser(list),
    new Option("--operator <name>", "the operator whose credential goes into pocket-operator").default("admin"),
    new Option("--postgres-url <url>", "a PostgreSQL of your own instead of the in-cluster one"),
    new Option("--tls", "also a CA and a certificate for nats-server naming its Services"),
  ],
  env: [],
  examples: ["pocket k8s secrets --auth-dir ~/pocket-k8s-auth --shards 4 --driver etl > secrets.yaml"],
  run: async (_args, flags) => {
    const { renderKubernetesSecrets } = require("../deploy/kubernetes-secrets") as typeof import("../deploy/kubernetes-secrets");
    process.stdout.write(renderKubernetesSecrets({
      authDir: flags.authDir!, namespace: flags.namespace, shards: flags.shards, operator: flags.operator, tls: flags.tls ?? false,
      ...(flags.driver !== undefined ? { drivers: flags.driver } : {}), ...(flags.postgresUrl !== undefined ? { postgresUrl: flags.postgresUrl } : {}),
    }));
  },
};

export const operateVerbs: readonly Verb[] = [dashboard, k8sSecrets];
