import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeHeartbeatSchema, ShardOps, type NodeHeartbeat } from "../../schemas/operations";
import { Role } from "../../bus/credentials";
import { connectWithCreds } from "../../bus/nats-connect";
import { NatsCaller } from "../../bus/nats-rpc";
import { checkerFor } from "../../bus/router";
import { Subjects } from "../../bus/subjects";
import { systemClock } from "../../lib/clock";
import { TokenAuthority } from "../../bus/tokens";
import type { LocalClusterOptions } from "../../deploy/local-cluster";
import { ClientTransport, PocketClient, type PocketJob, type RegisteredJob } from "../../client/pocket";
import { patternBytes, type TestCluster } from "../harness/cluster";
import { ghostJobIds, ghostTokenJobId, Sender, type GenContext, type TcpEndpoint } from "./context";
import { parseJson } from "./expect";
import type { FrameLimits } from "./wire";
import type { FuzzWorld } from "./run";

const KiB = 1024;
/**
 * What a client can count on of a server's frame limit: a frame of the
 * largest payload it takes plus this much meta is read; a declared length
 * over `frameBytesRefused` is refused. (Each server's exact limit is its own.)
 */
const metaBytesAccepted = 32 * KiB;
const frameBytesRefused = 64 * 1024 * KiB;

/**
 * The cluster fuzzing runs against: one shard, two DRAM nodes, small extents
 * (so a multi-extent object is a few hundred KiB) and small nodes (so huge
 * layouts fail fast instead of filling memory).
 */
export const fuzzClusterOptions: LocalClusterOptions = {
  shards: 1,
  dram: 2,
  extentBytesMax: 64 * KiB,
  dramCapacityBytes: 256 * 1024 * KiB,
};

export interface OpenWorld extends FuzzWorld {
  close(): Promise<void>;
}

/**
 * Prepares a started test cluster for fuzzing: three jobs (one the fuzzer
 * acts as, one whose token is "another job's", one for health checks that
 * the fuzzer never sees), a NATS connection for each sender's credential,
 * tokens of every kind, and the endpoints of every direct-transport server.
 */
export async function openFuzzWorld(t: TestCluster): Promise<OpenWorld> {
  const job = await t.client.registerJob("fuzz");
  const other = await t.client.registerJob("fuzz-other");
  const healthJob = await t.client.registerJob("fuzz-health");
  const shardId = job.shardId;
  const ghostNodeId = "fz-ghost-node";
  const ghostShardId = "fz-ghost-shard";
  const conns = new Map<Sender, NatsConnection>();
  const connect = async (sender: Sender, creds: string): Promise<void> => {
    conns.set(sender, await connectWithCreds(t.nats.url, creds, undefined, { name: `fuzz-${sender}`, maxReconnectAttempts: 10 }));
  };
  let nats: PocketClient | undefined;
  try {
    await connect(Sender.Lambda, lambdaCreds(job));
    await connect(Sender.OtherLambda, lambdaCreds(other));
    await connect(Sender.Driver, t.auth.credentials(Role.Driver, "fuzz"));
    await connect(Sender.Operator, t.auth.credentials(Role.Operator, "fuzz"));
    await connect(Sender.Controller, t.auth.credentials(Role.Controller, "controller"));
    await connect(Sender.Shard, t.auth.credentials(Role.Shard, shardId));
    await connect(Sender.GhostNode, t.auth.credentials(Role.Node, ghostNodeId));
    await connect(Sender.GhostShard, t.auth.credentials(Role.Shard, ghostShardId));
    const info = (await new NatsCaller(conns.get(Sender.Lambda)!, Subjects.shardJob(shardId, job.jobId)).call(ShardOps.info, {})).reply;
    const nodes = await nodeEndpoints(t, conns.get(Sender.Operator)!, { accepted: info.extentBytesMax + metaBytesAccepted, refused: frameBytesRefused });
    await connect(Sender.Node, t.auth.credentials(Role.Node, nodes[0]!.id));
    const shard: TcpEndpoint = { service: "shardJob", id: info.shardId, addr: info.addr, key: info.key, limits: { accepted: info.inlineBytesMax + metaBytesAccepted, refused: frameBytesRefused } };
    const ctx: GenContext = {
      shardId, shard, nodes, inlineBytesMax: info.inlineBytesMax, extentBytesMax: info.extentBytesMax,
      job: { jobId: job.jobId, token: job.token }, other: { jobId: other.jobId, token: other.token },
      tokens: badTokens(t.cluster.secret, job, shardId), ghostNodeId, ghostShardId,
      ...signers(t.cluster.secret),
    };
    nats = await PocketClient.connect({ servers: t.nats.url, transport: ClientTransport.Nats, credentials: lambdaCreds(healthJob), name: "fuzz-health" });
    const health = await healthCheck(t, t.client.job(healthJob.token), nats.job(healthJob.token), info.extentBytesMax, [job.jobId, other.jobId]);
    const natsClient = nats;
    return {
      ctx,
      connection: (sender) => conns.get(sender)!,
      health,
      // Inline actors keep their servers to themselves: none is reachable from here.
      inflightBytes: () => [],
      async close() {
        await natsClient.close();
        for (const nc of conns.values()) await nc.drain().catch(() => undefined);
      },
    };
  } catch (e) {
    await nats?.close();
    for (const nc of conns.values()) await nc.drain().catch(() => undefined);
    throw e;
  }
}

function lambdaCreds(job: RegisteredJob): string {
  if (job.credentials === undefined) throw new Error(`job ${job.jobId} came without a lambda credential: the bus must be authenticated`);
  return job.credentials;
}

/** The direct-transport address and key of every active node, its key taken from its own heartbeat. */
async function nodeEndpoints(t: TestCluster, operator: NatsConnection, limits: FrameLimits): Promise<TcpEndpoint[]> {
  const active = (await t.client.listNodes()).filter((n) => n.state === "active");
  const keys = new Map<string, NodeHeartbeat>();
  const check = checkerFor(NodeHeartbeatSchema);
  const sub = operator.subscribe(Subjects.nodeHeartbeatAll);
  const timer = setTimeout(() => sub.unsubscribe(), 10_000);
  for await (const m of sub) {
    const hb = parseJson(m.data);
    if (hb.ok && check.Check(hb.value)) keys.set(hb.value.nodeId, hb.value);
    if (active.every((n) => keys.has(n.nodeId))) break;
  }
  clearTimeout(timer);
  sub.unsubscribe();
  const missing = active.filter((n) => !keys.has(n.nodeId));
  if (missing.length > 0 || active.length === 0) throw new Error(`no heartbeat from ${missing.map((n) => n.nodeId).join(", ") || "any node"} within 10 s`);
  return active.map((n) => ({ service: "nodeJob", id: n.nodeId, addr: keys.get(n.nodeId)!.addr, key: keys.get(n.nodeId)!.key, limits }));
}

/** Tokens that must not work (a ghost job's, one for another shard, an expired one, forgeries), and those of jobs control cases may attach. */
function badTokens(secret: string, job: RegisteredJob, shardId: string): GenContext["tokens"] {
  const authority = new TokenAuthority(secret, systemClock);
  const dayMs = 24 * 3600_000;
  const past = new TokenAuthority(secret, { now: () => systemClock.now() - dayMs });
  const stranger = new TokenAuthority(randomBytes(32), systemClock);
  const claims = Buffer.from(JSON.stringify({ k: "job", j: job.jobId, s: shardId, e: 8.64e15 })).toString("base64url");
  const flipped = `${job.token.slice(0, -1)}${job.token.endsWith("A") ? "B" : "A"}`;
  return {
    ghost: authority.issueJob(ghostTokenJobId, shardId, dayMs),
    attachable: ghostJobIds.map((id) => authority.issueJob(id, shardId, dayMs)),
    wrongShard: authority.issueJob(job.jobId, "s-elsewhere", dayMs),
    expired: past.issueJob(job.jobId, shardId, 60_000),
    forged: [
      flipped, stranger.issueJob(job.jobId, shardId, dayMs), `${claims}.`, claims, `${claims}.${claims}`, "abc", "a.b", ".", "..",
      `${job.token}.x`, `.${job.token}`, "é.ü", "x".repeat(1000), `${job.token.split(".")[0]}.${"A".repeat(43)}`,
    ],
  };
}

/**
 * Grants and receipts signed with the cluster's secret, as shards and nodes
 * sign them. Grants expire a day after the world opened, whenever they are
 * made: the same case gets the same grant all run long.
 */
function signers(secret: string): Pick<GenContext, "grant" | "receipt"> {
  const openedAtMs = systemClock.now();
  const authority = new TokenAuthority(secret, { now: () => openedAtMs });
  return {
    grant: (claims) => authority.issueGrant(claims, 24 * 3600_000),
    receipt: (claims) => authority.issueReceipt(claims),
  };
}

/**
 * Normal use after each batch: objects written before the run read back
 * byte for byte, fresh inline and multi-extent objects go in and come back
 * over both transports, the cluster has the nodes and shards it had, and the
 * jobs the cases act as are still registered.
 */
async function healthCheck(
  t: TestCluster, overTcp: PocketJob, overNats: PocketJob, extentBytes: number, fuzzJobs: readonly string[],
): Promise<(batch: number) => Promise<string[]>> {
  const sizes = { inline: 1000, multi: Math.floor(3.5 * extentBytes) };
  const kept = new Map([["kept/inline", patternBytes(sizes.inline, 1)], ["kept/multi", patternBytes(sizes.multi, 2)]]);
  for (const [path, bytes] of kept) await overTcp.put(path, bytes);
  // Nodes the controller asked to launch are listed too; with no orchestrator they never come up and are replaced in turn.
  const members = async (): Promise<string> => {
    const nodes = (await t.client.listNodes()).filter((n) => !n.launched).map((n) => ({ nodeId: n.nodeId, state: n.state, launched: n.launched, addr: n.addr, tier: n.tier }));
    const shards = (await t.client.listShards()).map((s) => ({ shardId: s.shardId, state: s.state }));
    return JSON.stringify({ nodes: nodes.sort((a, b) => a.nodeId.localeCompare(b.nodeId)), shards: shards.sort((a, b) => a.shardId.localeCompare(b.shardId)) });
  };
  const before = await members();
  return async (batch) => {
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        problems.push(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      }
    };
    for (const [path, bytes] of kept) {
      await attempt(`get ${path}`, async () => { if (!(await overTcp.get(path)).equals(bytes)) problems.push(`${path} read back different`); });
    }
    for (const [transport, job] of [["tcp", overTcp], ["nats", overNats]] as const) {
      for (const [kind, size] of Object.entries(sizes)) {
        const bytes = patternBytes(size, 1000 + batch * 4 + (kind === "inline" ? 0 : 1) + (transport === "tcp" ? 0 : 2));
        const path = `health/${transport}/${kind}`;
        await attempt(`put and get ${path}`, async () => {
          await job.put(path, bytes);
          if (!(await job.get(path)).equals(bytes)) problems.push(`${path} (${size} bytes) read back different`);
        });
      }
    }
    await attempt("cluster members", async () => {
      const now = await members();
      if (now !== before) problems.push(`nodes or shards changed: before ${before}, now ${now}`);
    });
    // The jobs the cases act as are never deregistered by them (cases that would are made invalid): if they were, cases would stop reaching the handlers.
    await attempt("fuzz jobs", async () => {
      const live = new Set((await t.client.listJobs()).map((j) => j.jobId));
      for (const id of fuzzJobs) if (!live.has(id)) problems.push(`job ${id} the cases act as is no longer registered`);
    });
    return problems;
  };
}
