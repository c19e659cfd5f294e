import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { Role } from "../bus/credentials";
import { checkSubjectToken } from "../bus/subjects";
import { readPrivateFile, writePrivateFile } from "../lib/private-file";
import { InvalidArgumentError } from "../schemas/errors";
import { ClusterAuth } from "./cluster-auth";
import { ClusterTls } from "./tls";

/** The Secrets the manifests in deploy/kubernetes read, by name. */
export const KubernetesSecret = {
  /** `secret`: the HMAC key that signs job tokens, grants and receipts (controller, shards, nodes). */
  cluster: "pocket-cluster",
  /** `nats-auth.conf`: what nats-server trusts (operator, accounts); `route-password`: the servers' routes. */
  nats: "pocket-nats",
  /** `controller.creds`, `signing.nk` (it mints lambda and node credentials), `account` (the account's public key). */
  controller: "pocket-controller",
  /** `shard-<id>.creds` for each shard id. */
  shards: "pocket-shards",
  /** `url` the controller connects with; `password` of the in-cluster PostgreSQL. */
  postgres: "pocket-postgres",
  /** `creds`: an operator's credential (POCKET_ADMIN_CREDS names a file holding it). */
  operator: "pocket-operator",
  /** `ca.pem`, `server.pem`, `server.key`: NATS over TLS (with `tls`). */
  tls: "pocket-tls",
} as const;

/** A driver's Secret (`creds`: its credential; a pod hands it to the SDK as POCKET_CREDS). */
export function driverSecretName(driver: string): string {
  return `pocket-driver-${driver}`;
}

/** Names the manifests give things, which the Secrets must agree with. */
export const KubernetesNames = {
  namespace: "pocket",
  /** The shards' StatefulSet: shard ids are its pod names, `<name>-<ordinal>`. */
  shardStatefulSet: "pocket-shard",
  postgresService: "pocket-postgres",
  natsService: "pocket-nats",
  natsHeadlessService: "pocket-nats-headless",
} as const;

export interface KubernetesSecretsOptions {
  /**
   * The cluster's auth directory (`ClusterAuth`), created the first time. Keep
   * it, and keep it private: every credential is minted from its keys, and the
   * cluster secret and passwords generated here are kept in it, so rendering
   * again gives the same cluster.
   */
  readonly authDir: string;
  readonly namespace?: string;
  /** Shard credentials to make: for ids `pocket-shard-0` … `pocket-shard-<n-1>` (the shards' StatefulSet may scale up to n). */
  readonly shards?: number;
  /** A Secret with a driver credential for each (one per tenant); `default` when none is named. */
  readonly drivers?: readonly string[];
  /** The operator whose credential goes into `pocket-operator`; `admin` by default. */
  readonly operator?: string;
  /** A PostgreSQL of your own (`postgres://user:password@host:5432/db`); the in-cluster one otherwise. */
  readonly postgresUrl?: string;
  /** Also a CA and a certificate for nats-server naming its Services, for NATS over TLS (`openssl` makes them). */
  readonly tls?: boolean;
}

/** A Kubernetes Secret manifest. */
export interface SecretManifest {
  readonly apiVersion: "v1";
  readonly kind: "Secret";
  readonly type: "Opaque";
  readonly metadata: { readonly name: string; readonly namespace: string; readonly labels: Readonly<Record<string, string>> };
  /** Base64 of each value. */
  readonly data: Readonly<Record<string, string>>;
}

/** Shards credentials are made for when not told. */
export const defaultShardCredentials = 4;
/** More shard credentials than this is a mistake, not a cluster. */
const shardCredentialsMax = 256;

/** Files under the auth directory that keep what is generated here besides the bus identities (each 0600). */
const Kept = {
  clusterSecret: "kubernetes/cluster-secret",
  postgresPassword: "kubernetes/postgres-password",
  routePassword: "kubernetes/nats-route-password",
} as const;

/**
 * Every Secret a Pocket cluster on Kubernetes needs, from its auth
 * directory: nothing is committed anywhere, and rendering again from the same
 * directory gives the same cluster (fresh user JWTs with the same rights).
 *
 * @example
 *   const yaml = renderKubernetesSecrets({ authDir: "/secure/pocket-auth", shards: 4, drivers: ["etl"] });
 *   // kubectl apply -f - < that YAML
 */
export function kubernetesSecrets(options: KubernetesSecretsOptions): SecretManifest[] {
  const ns = options.namespace ?? KubernetesNames.namespace;
  const shards = options.shards ?? defaultShardCredentials;
  if (!Number.isInteger(shards) || shards < 1 || shards > shardCredentialsMax) throw new InvalidArgumentError(`shards must be an integer from 1 to ${shardCredentialsMax}, not ${shards}`);
  const auth = ClusterAuth.open(options.authDir);
  const kept = (file: string): string => keptSecret(path.join(options.authDir, file));
  const secret = (name: string, data: Record<string, string>): SecretManifest => secretManifest(name, ns, data);
  const shardCreds: Record<string, string> = {};
  for (let i = 0; i < shards; i++) {
    const id = `${KubernetesNames.shardStatefulSet}-${i}`;
    shardCreds[`shard-${id}.creds`] = auth.credentials(Role.Shard, id);
  }
  const out = [
    secret(KubernetesSecret.cluster, { secret: kept(Kept.clusterSecret) }),
    secret(KubernetesSecret.nats, { "nats-auth.conf": auth.serverConfig(), "route-password": natsBareWord(kept(Kept.routePassword)) }),
    secret(KubernetesSecret.controller, {
      "controller.creds": auth.credentials(Role.Controller, "controller"),
      "signing.nk": readPrivateFile(auth.signingSeedFile),
      account: auth.account,
    }),
    secret(KubernetesSecret.shards, shardCreds),
    secret(KubernetesSecret.postgres, postgresData(options.postgresUrl, () => kept(Kept.postgresPassword))),
    secret(KubernetesSecret.operator, { creds: auth.credentials(Role.Operator, checkSubjectToken("operator", options.operator ?? "admin")) }),
    ...(options.drivers?.length ? options.drivers : ["default"]).map((d) =>
      secret(driverSecretName(checkSubjectToken("driver", d)), { creds: auth.credentials(Role.Driver, d) })),
  ];
  if (options.tls) {
    const tls = ClusterTls.open(options.authDir, { hosts: natsHosts(ns) });
    out.push(secret(KubernetesSecret.tls, { "ca.pem": tls.ca(), "server.pem": tls.cert(), "server.key": tls.key() }));
  }
  return out;
}

/** The Secrets as one YAML stream, for `kubectl apply -f -`. */
export function renderKubernetesSecrets(options: KubernetesSecretsOptions): string {
  const header = "# Pocket's Secrets, made from its auth directory. They hold private keys: apply them, never commit them.\n";
  return header + kubernetesSecrets(options).map((s) => `---\n${stringify(s)}`).join("");
}

/** The names nats-server is reached at inside the cluster, which its certificate must name. */
export function natsHosts(namespace: string): string[] {
  const hosts: string[] = [];
  for (const service of [KubernetesNames.natsService, KubernetesNames.natsHeadlessService]) {
    hosts.push(service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`);
  }
  return hosts;
}

function secretManifest(name: string, namespace: string, values: Record<string, string>): SecretManifest {
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) data[k] = Buffer.from(v, "utf8").toString("base64");
  return { apiVersion: "v1", kind: "Secret", type: "Opaque", metadata: { name, namespace, labels: { "app.kubernetes.io/part-of": "pocket" } }, data };
}

/**
 * The controller's store URL (and the in-cluster server's password). The URL
 * is put into the controller's JSON configuration by Kubernetes, so it must
 * not hold a quote or a backslash.
 */
function postgresData(url: string | undefined, password: () => string): Record<string, string> {
  if (url === undefined) {
    const pw = password();
    return { password: pw, url: `postgres://pocket:${pw}@${KubernetesNames.postgresService}:5432/pocket` };
  }
  if (!/^postgres(ql)?:\/\//.test(url)) throw new InvalidArgumentError("the PostgreSQL URL must start with postgres:// or postgresql://");
  if (/["\\\s]/.test(url)) throw new InvalidArgumentError("the PostgreSQL URL must not hold quotes, backslashes or spaces (percent-encode them)");
  return { url };
}

/** A random secret kept in `file` (0600): made the first time, read after. */
/**
 * A secret as nats-server's configuration can take it bare from an
 * environment variable (`password: $NATS_ROUTE_PASSWORD`): the server parses
 * the variable's value as a configuration value, so hex that starts with a
 * digit reads as a number ("8e5f…" fails to parse, all digits crashes it).
 * Such a value gets a leading "r" (the same value every time: rendering again
 * gives the same password).
 */
export function natsBareWord(secret: string): string {
  return /^[A-Za-z]/.test(secret) ? secret : `r${secret}`;
}

function keptSecret(file: string): string {
  if (fs.existsSync(file)) return readPrivateFile(file).trim();
  const value = randomBytes(32).toString("hex");
  writePrivateFile(file, `${value}\n`);
  return value;
}
