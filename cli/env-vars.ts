/**
 * Every environment variable the project reads, spelled once: `pocket help
 * env` prints this table, each verb's help names the ones it reads, and the
 * README's "Environment" section lists the same (test/unit/env-docs.test.ts
 * fails on a variable read in the code that is documented in neither).
 */
export interface EnvVar {
  readonly name: string;
  /** Who reads it. */
  readonly readBy: string;
  readonly meaning: string;
  /** What happens when it is not set. */
  readonly default: string;
}

export const EnvVars = [
  { name: "POCKET_NATS_URL", readBy: "CLI verbs that connect (or --nats); the sample job's workers", meaning: "NATS URL of the cluster (`pocket up` prints it)", default: "nats://127.0.0.1:4222" },
  { name: "POCKET_ADMIN_CREDS", readBy: "CLI cluster verbs: nodes, shards, jobs, node retire, usage, events, replay --stream (or --creds)", meaning: "path of an operator's NATS creds file (`pocket up` prints it)", default: "none: connect without a credential" },
  { name: "POCKET_NATS_CREDS", readBy: "CLI job register/deregister, and object verbs without POCKET_CREDS (or --creds); the SDK's credentialsFromEnv()", meaning: "path of a job driver's NATS creds file (`pocket up` prints it)", default: "none: connect without a credential" },
  { name: "POCKET_CREDS", readBy: "CLI object verbs (or --creds); the SDK's credentialsFromEnv()", meaning: "a lambda's NATS credential for one job: creds text or its base64url (`pocket job register` prints it)", default: "POCKET_NATS_CREDS" },
  { name: "POCKET_TOKEN", readBy: "CLI object verbs and job deregister (or --token); the sample job's workers", meaning: "the job's capability token (`pocket job register` prints it)", default: "none: the verb fails with a usage error" },
  { name: "POCKET_TLS_CA", readBy: "CLI verbs that connect (or --tls-ca); the SDK's tlsCaFromEnv()", meaning: "path of the cluster's CA certificate, for a cluster that runs TLS (`pocket up --tls` prints it)", default: "none: plain TCP" },
  { name: "POCKET_POSTGRES_URL", readBy: "pocket k8s secrets (or --postgres-url-file)", meaning: "URL of a PostgreSQL of your own for the controller on Kubernetes, password included: kept off the command line", default: "the in-cluster PostgreSQL" },
  { name: "POCKET_LOG", readBy: "every process (lib/log.ts): actors, CLI, SDK", meaning: "level of the JSON log lines on stderr: debug, info, warn, error or silent", default: "warn" },
  { name: "POCKET_NATS_SERVER", readBy: "pocket up, npm start, the tests (deploy/nats-server.ts)", meaning: "path of the nats-server binary", default: "/usr/bin, /usr/local/bin, /usr/sbin, then PATH" },
  { name: "POCKET_BENCH_NODE_ARGS", readBy: "npm run bench, when it forks its client processes", meaning: "flags for node in every benchmark client process, e.g. \"--cpu-prof --cpu-prof-dir=DIR\"", default: "none" },
  { name: "POCKET_ACTOR_NODE_ARGS", readBy: "pocket up, npm start and the local orchestrator, when they launch actor processes (`npm run bench:cpu -- --profile DIR` adds its flags to it)", meaning: "flags for node in every actor process, e.g. \"--cpu-prof --cpu-prof-dir=DIR\"", default: "none" },
  { name: "POCKET_ACTOR_CONFIG", readBy: "actor processes (node dist/actors/main.js controller, shard or node)", meaning: "the actor's JSON config, checked against its schema (actors/runtime/config-schema.ts) before it starts", default: "required: the actor exits 2 without it" },
  { name: "POCKET_SECRET", readBy: "actor processes", meaning: "the cluster secret (16 bytes or more), when the config has no `secret` (in Kubernetes, from a Secret)", default: "none: the config must carry it" },
  { name: "POCKET_ADVERTISE_HOST", readBy: "storage node processes", meaning: "host clients are told to connect to, with the config's port, when the config has no advertiseAddr (in Kubernetes, the pod's IP)", default: "the bound address" },
  { name: "POCKET_SECRETS_DIR", readBy: "the container image's entrypoint (deploy/docker-entrypoint.sh)", meaning: "directory of mounted Secrets, copied 0600 into POCKET_PRIVATE_DIR before the actor starts (Kubernetes mounts them group-readable)", default: "nothing is copied" },
  { name: "POCKET_PRIVATE_DIR", readBy: "the container image's entrypoint (deploy/docker-entrypoint.sh)", meaning: "in-memory directory the entrypoint copies Secrets into, where the actor's config names them", default: "required when POCKET_SECRETS_DIR is set" },
  { name: "POCKET_CPU_CLIENT", readBy: "npm run bench:cpu's client processes (internal: set by bench:cpu for the processes it forks)", meaning: "the cluster and job one client connects to, as JSON", default: "set by bench:cpu" },
  { name: "POCKET_BENCH_SETUP", readBy: "npm run bench's client processes (internal: set by the benchmark for the processes it forks)", meaning: "the JSON plan of one benchmark client", default: "set by the benchmark" },
] as const satisfies readonly EnvVar[];

export type EnvName = (typeof EnvVars)[number]["name"];

/** An environment variable's documentation, by name. */
export function envVar(name: EnvName): EnvVar {
  return EnvVars.find((v) => v.name === name)!;
}

/** The table `pocket help env` prints. */
export function envHelp(): string {
  const width = Math.max(...EnvVars.map((v) => v.name.length));
  const rows = EnvVars.map((v) => `  ${v.name.padEnd(width)}  ${v.meaning}\n  ${" ".repeat(width)}  read by: ${v.readBy}\n  ${" ".repeat(width)}  unset: ${v.default}\n`);
  return `Environment variables (the README's "Environment" section has the same table):\n\n${rows.join("\n")}`;
}

/** The lines of a verb's help naming the variables it reads. */
export function envLines(names: readonly EnvName[]): string {
  const width = Math.max(0, ...names.map((n) => n.length));
  return names.map((n) => `  ${n.padEnd(width)}  ${envVar(n).meaning} (unset: ${envVar(n).default})`).join("\n");
}
