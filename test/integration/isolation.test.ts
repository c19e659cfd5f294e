import { ErrorCode, isPocketError } from "../../schemas/errors";
import { NodeOps, ShardOps } from "../../schemas/operations";
import { ManualClock } from "../../actors/runtime/clock";
import { TokenAuthority } from "../../actors/runtime/tokens";
import { NatsCaller } from "../../bus/nats-rpc";
import { Subjects } from "../../bus/subjects";
import { TcpPool } from "../../bus/tcp-client";
import { PocketJob } from "../../client/pocket";
import { patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";

let t: TestCluster;
let a: { jobId: string; token: string; shardId: string };
let b: { jobId: string; token: string; shardId: string };
const secretB = patternBytes(100_000, 99);

beforeAll(async () => {
  t = await startTestCluster({ shards: 2, dram: 2 });
  a = await t.client.registerJob("tenant-a");
  b = await t.client.registerJob("tenant-b");
  await t.client.job(b.token).put("secret", secretB);
  await t.client.job(b.token).put("dir/x", "x");
});
afterAll(async () => { await t?.stop(); });

/** Forges a token as a client could: same body format, no cluster secret. */
function tamper(token: string, change: (claims: Record<string, unknown>) => void): string {
  const [body, sig] = token.split(".");
  const claims = JSON.parse(Buffer.from(body!, "base64url").toString()) as Record<string, unknown>;
  change(claims);
  return `${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${sig}`;
}

async function expectUnauthorized(p: Promise<unknown>): Promise<void> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(isPocketError(e, ErrorCode.Unauthorized)).toBe(true);
}

test("job A's token cannot read, list, stat, overwrite or delete job B's objects", async () => {
  // A's token sent to B's shard, with B's paths.
  const shardB = new NatsCaller(t.client.nc, Subjects.shard(b.shardId));
  if (a.shardId !== b.shardId) {
    await expectUnauthorized(shardB.call(ShardOps.objectLookup, { token: a.token, path: "secret" }));
    await expectUnauthorized(shardB.call(ShardOps.list, { token: a.token, path: "" }));
    await expectUnauthorized(shardB.call(ShardOps.delete, { token: a.token, path: "secret" }));
    await expectUnauthorized(shardB.call(ShardOps.objectCreate, { token: a.token, path: "secret", size: 1 }));
  }
  // A's namespace is its own: the same path names nothing of B's.
  const jobA = t.client.job(a.token);
  await expect(jobA.get("secret")).rejects.toMatchObject({ code: ErrorCode.NotFound });
  expect((await jobA.list("")).entries).toEqual([]);
  await jobA.put("secret", "mine");
  await jobA.delete("secret");
  expect((await t.client.job(b.token).get("secret")).equals(secretB)).toBe(true);
});

test("job A's token cannot read B's extents from the storage node directly", async () => {
  const look = await new NatsCaller(t.client.nc, Subjects.shard(b.shardId)).call(ShardOps.objectLookup, { token: b.token, path: "secret" });
  const ext = look.reply.extents[0]!;
  const pool = new TcpPool();
  try {
    const node = pool.caller(ext.addr);
    const withA = await node.call(NodeOps.extentRead, { token: a.token, extentId: ext.extentId }).catch((e: unknown) => e);
    expect(isPocketError(withA, ErrorCode.NotFound)).toBe(true);
    await expectUnauthorized(node.call(NodeOps.extentRead, { extentId: ext.extentId }));
    await expectUnauthorized(node.call(NodeOps.extentRead, { token: tamper(a.token, (c) => { c["j"] = b.jobId; }), extentId: ext.extentId }));
    // A cannot overwrite B's extent either: writes are keyed by the token's job.
    await node.call(NodeOps.extentWrite, { token: a.token, extentId: ext.extentId }, { payload: Buffer.from("evil") });
    const still = await node.call(NodeOps.extentRead, { token: b.token, extentId: ext.extentId });
    expect(Buffer.from(still.payload!).equals(secretB.subarray(0, ext.length))).toBe(true);
    // Cluster-only operations refuse job tokens.
    await expectUnauthorized(node.call(NodeOps.jobDrop, { auth: a.token, jobId: b.jobId }));
    await expectUnauthorized(node.call(NodeOps.extentFree, { auth: b.token, jobId: b.jobId, extentIds: [ext.extentId] }));
  } finally {
    pool.close();
  }
});

test("no token, a tampered token and an expired token are Unauthorized", async () => {
  const shardB = new NatsCaller(t.client.nc, Subjects.shard(b.shardId));
  await expectUnauthorized(shardB.call(ShardOps.objectLookup, { path: "secret" }));
  await expectUnauthorized(shardB.call(ShardOps.objectLookup, { token: "", path: "secret" }));
  await expectUnauthorized(shardB.call(ShardOps.objectLookup, { token: "garbage", path: "secret" }));
  await expectUnauthorized(shardB.call(ShardOps.objectLookup, { token: tamper(a.token, (c) => { c["j"] = b.jobId; c["s"] = b.shardId; }), path: "secret" }));
  await expectUnauthorized(shardB.call(ShardOps.objectLookup, { token: tamper(b.token, (c) => { c["e"] = Number(c["e"]) + 1; }), path: "secret" }));
  await expectUnauthorized(t.client.job(tamper(b.token, (c) => { c["e"] = 1; })).get("secret"));

  // A correctly signed token whose time has passed (issued with the cluster secret on a clock in the past).
  const past = new TokenAuthority(t.cluster.secret, new ManualClock(Date.now() - 10_000));
  const expired = past.issueJob(b.jobId, b.shardId, 1_000);
  await expectUnauthorized(new PocketJob(t.client, expired).get("secret"));
  // ... and the same token signed with another secret.
  const other = new TokenAuthority("another-secret-of-32-bytes-000000", new ManualClock(Date.now()));
  await expectUnauthorized(new PocketJob(t.client, other.issueJob(b.jobId, b.shardId, 60_000)).get("secret"));
  // A job token cannot deregister another job: it names its own job only.
  await expectUnauthorized(t.client.deregisterJob(tamper(a.token, (c) => { c["j"] = b.jobId; })));

  expect((await t.client.job(b.token).get("secret")).equals(secretB)).toBe(true);
  expect((await t.client.job(b.token).count("", { recursive: true })).objects).toBe(2);
});
