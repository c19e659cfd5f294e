import { Option } from "commander";
import { ControllerOps } from "../schemas/operations";
import { formatBytes } from "../lib/units";
import { Role } from "../bus/credentials";
import type { LocalCluster } from "../deploy/local-cluster";
import { As, withClient } from "./connect";
import { bytes, connectionOptions, count, jsonOption, list, output, pct, table, VerbGroup, type Flags, type Verb } from "./verb";

/**
 * Starts the cluster `pocket up` describes with its flags. The launcher (and
 * the native engine's wrapper) load only here: the other verbs start faster.
 */
function startCluster(flags: Flags): Promise<LocalCluster> {
  const { LocalCluster } = require("../deploy/local-cluster") as typeof import("../deploy/local-cluster");
  const { readDeviceModel } = require("../native/calibrate") as typeof import("../native/calibrate");
  return LocalCluster.start({
    natsUrl: flags.nats,
    authDir: flags.authDir,
    dram: flags.dram,
    shards: flags.shards,
    dramCapacityBytes: flags.dramCapacity,
    dataDir: flags.dataDir,
    nvme: flags.nvme,
    nvmeCapacityBytes: flags.nvmeFileSize,
    nvmeDevice: flags.nvmeDevice,
    nvmeModel: flags.nvmeModel ? readDeviceModel(flags.nvmeModel) : undefined,
    minNodes: flags.minNodes,
    maxNodes: flags.maxNodes,
    store: flags.store,
    orchestrator: flags.orchestrator,
    tls: flags.tls ?? false,
    tlsHosts: flags.tlsHost,
  });
}

/** Where to scrape and probe the cluster (stderr, so that stdout stays what `eval` takes). */
function describeEndpoints(cluster: LocalCluster): string {
  const lines = cluster.endpoints().map((e) => `  ${e.name.padEnd(12)} http://${e.http}/metrics  /healthz  /readyz\n`);
  if (cluster.natsMonitorUrl) lines.push(`  ${"nats-server".padEnd(12)} ${cluster.natsMonitorUrl}/varz  /connz  /jsz\n`);
  return lines.length > 0 ? `pocket: metrics and probes (docs/metrics.md):\n${lines.join("")}` : "";
}

export const up: Verb = {
  words: ["up"],
  group: VerbGroup.Cluster,
  summary: "run a local cluster in the foreground (Ctrl-C stops it)",
  details: "Starts nats-server (unless --nats), the controller, metadata shards and DRAM (and NVMe) storage nodes as\n"
    + "separate processes, each checked against its config schema before it starts. When ready it prints the NATS URL\n"
    + "and the credentials of a job driver (POCKET_NATS_CREDS) and an operator (POCKET_ADMIN_CREDS); with --tls, NATS\n"
    + "and the direct transport run TLS only, and it prints the CA clients need (POCKET_TLS_CA).",
  args: [],
  options: [
    new Option("--nats <url>", "use this nats-server instead of starting one"),
    new Option("--auth-dir <dir>", "the cluster's bus identities (`pocket auth init`); with --nats the server must include its nats-auth.conf"),
    new Option("--dram <n>", "DRAM storage nodes").argParser(count).default(2),
    new Option("--shards <n>", "metadata shards").argParser(count).default(2),
    new Option("--dram-capacity <bytes>", "bytes each DRAM node holds, e.g. 1GiB (default 1 GiB)").argParser(bytes),
    new Option("--data-dir <dir>", "logs, NATS store, credentials and controller state (default: a temporary directory)"),
    new Option("--nvme <n>", "NVMe storage nodes on the native engine").argParser(count).default(0),
    new Option("--nvme-file-size <bytes>", "size of each NVMe node's file (default 1 GiB)").argParser(bytes),
    new Option("--nvme-device <path>", "a block device (or file) for the first NVMe node"),
    new Option("--nvme-model <file>", "the device model NVMe nodes schedule by (`pocket calibrate`)"),
    new Option("--min-nodes <n>", "fewest DRAM nodes the controller keeps (default: --dram)").argParser(count),
    new Option("--max-nodes <n>", "most DRAM nodes the controller keeps (default: 8)").argParser(count),
    new Option("--store <file|url>", "controller state: a SQLite file or a postgres:// URL (default <data dir>/controller.sqlite)"),
    new Option("--orchestrator <kind>", "who launches storage nodes as the controller scales").choices(["local", "events-only"]).default("local"),
    new Option("--tls", "TLS on NATS and the direct transport (a CA and server certificate under <data dir>/auth/tls)"),
    new Option("--tls-host <hosts>", "more host names the servers' certificate names, comma-separated").argParser(list),
    jsonOption(),
  ],
  env: ["POCKET_NATS_SERVER", "POCKET_ACTOR_NODE_ARGS", "POCKET_LOG"],
  examples: ["pocket up --dram 2 --shards 2", "pocket up --nats nats://10.0.0.5:4222 --auth-dir ./auth --tls"],
  run: async (_args, flags) => {
    const cluster = await startCluster(flags);
    const env = { ...cluster.driverEnv(), ...(cluster.auth ? { POCKET_ADMIN_CREDS: cluster.credsFile(Role.Operator, "admin")! } : {}) };
    if (!cluster.auth) process.stderr.write("pocket: warning: the bus has no authentication (--nats without --auth-dir): anyone who reaches it can read and forge cluster traffic\n");
    output(flags, { ...env, natsUrl: cluster.natsUrl, dataDir: cluster.dataDir, natsMonitorUrl: cluster.natsMonitorUrl, endpoints: cluster.endpoints() },
      () => Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(""));
    if (!flags.json) process.stderr.write(describeEndpoints(cluster));
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    process.stderr.write("pocket: stopping the cluster\n");
    await cluster.stop();
  },
};

export const authInit: Verb = {
  words: ["auth", "init"],
  group: VerbGroup.Cluster,
  summary: "create a cluster's bus identities in DIR (for `pocket up --nats URL --auth-dir DIR`)",
  details: "Writes the operator, the system account and the cluster's account (JetStream on) into DIR/nats-auth.conf,\n"
    + "which an existing nats-server must include; secrets are 0600 in a 0700 directory.",
  args: [{ syntax: "<dir>", description: "where the identities go (made if missing; reused if present)" }],
  options: [jsonOption()],
  env: [],
  examples: ["pocket auth init ./auth"],
  run: async ([dir], flags) => {
    const { ClusterAuth } = require("../deploy/cluster-auth") as typeof import("../deploy/cluster-auth");
    const auth = ClusterAuth.open(dir!);
    output(flags, { dir: auth.dir, serverConfig: auth.serverConfigFile }, () =>
      `bus identities in ${auth.dir}\nadd to the nats-server config:  include "${auth.serverConfigFile}"\nthen: pocket up --nats URL --auth-dir ${auth.dir}\n`);
  },
};

const adminEnv = ["POCKET_NATS_URL", "POCKET_ADMIN_CREDS", "POCKET_TLS_CA"] as const;

export const nodes: Verb = {
  words: ["nodes"],
  group: VerbGroup.Cluster,
  summary: "storage nodes: state, tier, utilisation, reservations, weight per job",
  args: [],
  options: [...connectionOptions("POCKET_ADMIN_CREDS"), jsonOption()],
  env: adminEnv,
  examples: ["pocket nodes", "pocket nodes --json"],
  run: (_args, flags) => withClient(flags, As.Admin, async (c) => {
    const all = await c.listNodes();
    const tiers = new Map<string, { nodes: number; used: number; capacity: number }>();
    for (const n of all.filter((x) => x.state === "active")) {
      const t = tiers.get(n.tier) ?? { nodes: 0, used: 0, capacity: 0 };
      tiers.set(n.tier, { nodes: t.nodes + 1, used: t.used + n.usedBytes, capacity: t.capacity + n.capacityBytes });
    }
    output(flags, all, () => table([
      ["NODE", "TIER", "STATE", "ADDR", "USED", "CAPACITY", "CPU", "NET", "CAP", "RESERVED", "WEIGHTS"],
      ...all.map((n) => [n.nodeId, n.tier, n.state + (n.launched ? "*" : ""), n.addr || "-", formatBytes(n.usedBytes), formatBytes(n.capacityBytes),
        pct(n.utilisation.cpu), pct(n.utilisation.network), pct(n.utilisation.capacity), formatBytes(n.reservedBytes),
        n.jobWeights.map((w) => `${w.jobId}:${w.weight.toFixed(2)}`).join(",") || "-"]),
    ]) + (all.some((n) => n.launched) ? "* launched by the controller\n" : "") + [...tiers].map(([tier, t]) =>
      `${tier}: ${formatBytes(t.used)} of ${formatBytes(t.capacity)} used (${t.capacity > 0 ? ((100 * t.used) / t.capacity).toFixed(1) : "0"}%) on ${t.nodes} active node(s)\n`).join(""));
  }),
};

export const nodeRetire: Verb = {
  words: ["node", "retire"],
  group: VerbGroup.Cluster,
  summary: "drain a node and remove it once it holds no data",
  args: [{ syntax: "<node>", description: "the node id (`pocket nodes`)" }],
  options: [...connectionOptions("POCKET_ADMIN_CREDS"), jsonOption()],
  env: adminEnv,
  examples: ["pocket node retire dram-1"],
  run: ([nodeId], flags) => withClient(flags, As.Admin, async (c) => {
    const r = (await c.controller.call(ControllerOps.nodeRetire, { nodeId: nodeId! })).reply;
    output(flags, r, () => `${r.nodeId}: ${r.state}\n`);
  }),
};

export const shards: Verb = {
  words: ["shards"],
  group: VerbGroup.Cluster,
  summary: "metadata shards",
  args: [],
  options: [...connectionOptions("POCKET_ADMIN_CREDS"), jsonOption()],
  env: adminEnv,
  examples: ["pocket shards"],
  run: (_args, flags) => withClient(flags, As.Admin, async (c) => {
    const all = await c.listShards();
    output(flags, all, () => table([["SHARD", "STATE", "JOBS", "OBJECTS"], ...all.map((s) => [s.shardId, s.state, String(s.jobs), String(s.objects)])]));
  }),
};

export const jobs: Verb = {
  words: ["jobs"],
  group: VerbGroup.Cluster,
  summary: "registered jobs",
  args: [],
  options: [...connectionOptions("POCKET_ADMIN_CREDS"), jsonOption()],
  env: adminEnv,
  examples: ["pocket jobs --json"],
  run: (_args, flags) => withClient(flags, As.Admin, async (c) => {
    const all = await c.listJobs();
    output(flags, all, () => table([
      ["JOB", "NAME", "STATE", "TIER", "SHARD", "REGISTERED", "WEIGHTS"],
      ...all.map((j) => [j.jobId, j.name, j.state, j.tier, j.shardId, new Date(j.registeredAtMs).toISOString(),
        j.weights.map((w) => `${w.nodeId}:${w.weight.toFixed(2)}`).join(",")]),
    ]));
  }),
};

export const clusterVerbs: readonly Verb[] = [up, authInit, nodes, nodeRetire, shards, jobs];
