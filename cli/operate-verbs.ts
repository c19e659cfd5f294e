import fs from "node:fs";
import { Option } from "commander";
import { readPrivateFile, writePrivateFile } from "../lib/private-file";
import { As, credentialsFor, natsUrl, tlsCaFor } from "./connect";
import { connectionOptions, count, list, UsageError, VerbGroup, type Flags, type Verb } from "./verb";

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
  summary: "write the Kubernetes Secrets of a cluster, made from its auth directory (docs/deploy.md)",
  details: "Creates the auth directory the first time; keep it, and keep it private: every credential is minted from its\n"
    + "keys, and the cluster secret and passwords made here are kept in it, so running this again gives the same cluster.\n"
    + "The output holds private keys: pipe it to kubectl apply -f -, or write it with --out (0600), and never commit it.\n"
    + "Standard output redirected to a file others can read is refused. A PostgreSQL URL of your own holds a password:\n"
    + "give it in a file (--postgres-url-file) or POCKET_POSTGRES_URL, not on the command line.",
  args: [],
  options: [
    new Option("--auth-dir <dir>", "the cluster's auth directory").makeOptionMandatory(),
    new Option("--namespace <ns>", "the namespace of the manifests").default("pocket"),
    new Option("--shards <n>", "shard credentials to make (pocket-shard-0 …)").argParser(count).default(4),
    new Option("--driver <names>", "job drivers to make a credential for, comma-separated (default: default)").argParser(list),
    new Option("--operator <name>", "the operator whose credential goes into pocket-operator").default("admin"),
    new Option("--postgres-url-file <file>", "a file (0600) holding the URL of a PostgreSQL of your own, instead of the in-cluster one"),
    new Option("--postgres-url <url>", "that URL on the command line, where ps and shell history see its password (warns)").conflicts("postgresUrlFile"),
    new Option("--tls", "also a CA and a certificate for nats-server naming its Services"),
    new Option("--out <file>", "write the Secrets to this file, readable by you only (0600), instead of standard output"),
    new Option("--force", "with --out: replace the file if it exists"),
  ],
  env: ["POCKET_POSTGRES_URL"],
  examples: [
    "pocket k8s secrets --auth-dir ~/pocket-k8s-auth --shards 4 --driver etl --out secrets.yaml",
    "pocket k8s secrets --auth-dir ~/pocket-k8s-auth | kubectl apply -f -",
  ],
  run: async (_args, flags) => {
    const { renderKubernetesSecrets } = require("../deploy/kubernetes-secrets") as typeof import("../deploy/kubernetes-secrets");
    if (flags.force && flags.out === undefined) throw new UsageError("--force replaces the --out file: give --out FILE");
    const postgresUrl = postgresUrlFor(flags);
    const yaml = renderKubernetesSecrets({
      authDir: flags.authDir!, namespace: flags.namespace, shards: flags.shards, operator: flags.operator, tls: flags.tls ?? false,
      ...(flags.driver !== undefined ? { drivers: flags.driver } : {}), ...(postgresUrl !== undefined ? { postgresUrl } : {}),
    });
    if (flags.out !== undefined) writeSecretsFile(flags.out, yaml, flags.force ?? false);
    else writeSecretsToStdout(yaml);
  },
};

/** The URL of the operator's own PostgreSQL: --postgres-url-file or --postgres-url (with a warning), else POCKET_POSTGRES_URL; undefined: the in-cluster one. */
function postgresUrlFor(flags: Flags): string | undefined {
  if (flags.postgresUrlFile !== undefined) return readPrivateFile(flags.postgresUrlFile).trim();
  if (flags.postgresUrl !== undefined) {
    process.stderr.write("pocket k8s secrets: warning: --postgres-url shows its password to anyone who can list processes, and to your shell history;"
      + " use --postgres-url-file FILE or POCKET_POSTGRES_URL\n");
    return flags.postgresUrl;
  }
  const fromEnv = process.env["POCKET_POSTGRES_URL"];
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : undefined;
}

/**
 * Writes the Secrets to `file`, 0600 from its first byte: a new file (linked
 * into place only if no file has that name), or with `force` a replacement
 * of one, whose old mode is not kept.
 */
function writeSecretsFile(file: string, yaml: string, force: boolean): void {
  if (force) return writePrivateFile(file, yaml);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, yaml, { mode: 0o600, flag: "wx" });
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new UsageError(`${file} exists: --force replaces it`);
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Writes the Secrets to standard output, unless that is a file others can read (`> secrets.yaml` under the usual umask). */
function writeSecretsToStdout(yaml: string): void {
  const out = fs.fstatSync(1);
  if (out.isFile() && (out.mode & 0o077) !== 0) {
    throw new UsageError(`standard output is a file others can read (mode ${(out.mode & 0o777).toString(8)}): `
      + "write the Secrets with --out FILE (0600), or pipe them to kubectl apply -f -");
  }
  process.stdout.write(yaml);
}

export const operateVerbs: readonly Verb[] = [dashboard, k8sSecrets];
