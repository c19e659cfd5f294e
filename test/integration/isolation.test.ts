import { ErrorCode, isPocketError } from "../../schemas/errors";
import { NodeOps, ShardOps, type ExtentRef } from "../../schemas/operations";
import { ManualClock } from "../../lib/clock";
import { TokenAuthority } from "../../bus/tokens";
import { NatsCaller } from "../../bus/nats-rpc";
import { Inboxes, Subjects } from "../../bus/subjects";
import { TcpPool } from "../../bus/tcp-client";
import { crc32 } from "../../lib/checksum";
import { PocketJob, type RegisteredJob } from "../../client/pocket";
import { patternBytes, Role, startTestCluster, type TestCluster } from "../harness/cluster";
import { BusProbe } from "../harness/bus";

let t: TestCluster;
let a: RegisteredJob;
let b: RegisteredJob;
const secretB = patternBytes(100_000, 99);
/** Jobs registered at most while looking for one on another shard than A's (the controller picks the least loaded shard). */
const registrationsMax = 8;

beforeAll(async () => {
  t = await startTestCluster({ shards: 2, dram: 2 });
  a = await t.client.registerJob("tenant-a");
  // The cross-shard checks need B on the other shard of the two: register until one lands there.
  for (let i = 0; ; i++) {
    const reg = await t.client.registerJob(`tenant-b-${i}`);
    if (reg.shardId !== a.shardId) {
      b = reg;
      break;
    }
    if (i + 1 >= registrationsMax) throw new Error(`${registrationsMax} jobs registered, none on another shard than ${a.shardId}`);
  }
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

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(isPocketError(e) ? e.code : e).toBe(code);
}
const expectUnauthorized = (p: Promise<unknown>): Promise<void> => expectCode(p, ErrorCode.Unauthorized);

/** B's first extent of `path`, as B's own lambdas see it (with the node's address and transport key). */
async function extentOfB(path: string): Promise<ExtentRef> {
  const shardB = new NatsCaller(await t.client.natsFor(b.jobId), Subjects.shardJob(b.shardId, b.jobId));
  return (await shardB.call(ShardOps.objectLookup, { token: b.token, path })).reply.extents[0]!;
}

async function expectBIntact(): Promise<void> {
  expect((await t.client.job(b.token).get("secret")).equals(secretB)).toBe(true);
}

test("over NATS, job A's lambda credential cannot send to B's subjects nor receive B's replies", async () => {
  expect(a.shardId).not.toBe(b.shardId);
  const ext = await extentOfB("secret");
  const lambdaA = await BusProbe.connect(t.nats.url, a.credentials, "lambda-a");
  try {
    // B's job subjects on B's shard: refused by the server whatever token the request carries.
    const shardB = new NatsCaller(lambdaA.nc, Subjects.shardJob(b.shardId, b.jobId), 5_000);
    for (const token of [a.token, b.token]) {
      await expectUnauthorized(shardB.call(ShardOps.objectLookup, { token, path: "secret" }));
      await expectUnauthorized(shardB.call(ShardOps.list, { token, path: "" }));
      await expectUnauthorized(shardB.call(ShardOps.delete, { token, path: "secret" }));
      await expectUnauthorized(shardB.call(ShardOps.objectCreate, { token, path: "secret", size: 1 }));
    }
    // B's shard under A's own job id, and B's extents on their node.
    await expectUnauthorized(new NatsCaller(lambdaA.nc, Subjects.shardJob(b.shardId, a.jobId), 5_000).call(ShardOps.objectLookup, { token: a.token, path: "secret" }));
    await expectUnauthorized(new NatsCaller(lambdaA.nc, Subjects.nodeJob(ext.nodeId, b.jobId), 5_000).call(NodeOps.extentRead, { token: a.token, extentId: ext.extentId }));
    // A's own subjects with B's token: the shard and the node take only A's token there.
    await expectUnauthorized(new NatsCaller(lambdaA.nc, Subjects.shardJob(a.shardId, a.jobId), 5_000).call(ShardOps.objectLookup, { token: b.token, path: "secret" }));
    await expectUnauthorized(new NatsCaller(lambdaA.nc, Subjects.nodeJob(ext.nodeId, a.jobId), 5_000).call(NodeOps.extentRead, { token: b.token, extentId: ext.extentId }));
    // Nor can it listen for B's replies, or for everything.
    for (const subject of [`${Inboxes.job(b.jobId)}.>`, ">"]) {
      const s = await lambdaA.expectSubscribeRefused(subject);
      expect(s.received).toBe(0);
    }
  } finally {
    await lambdaA.close();
  }
  // A's namespace is its own: the same path names nothing of B's.
  const jobA = t.client.job(a.token);
  await expect(jobA.get("secret")).rejects.toMatchObject({ code: ErrorCode.NotFound });
  expect((await jobA.list("")).entries).toEqual([]);
  await jobA.put("secret", "mine");
  await jobA.delete("secret");
  await expectBIntact();
});

test("over the direct transport, job A's token cannot read or overwrite B's extents", async () => {
  const ext = await extentOfB("secret");
  const node = { id: ext.nodeId, key: ext.key };
  const pool = new TcpPool();
  const forged = new TcpPool();
  try {
    const asA = pool.caller(ext.addr, node, a.token);
    // Extents are kept per job: A's token names none of B's.
    await expectCode(asA.call(NodeOps.extentRead, { token: a.token, extentId: ext.extentId }), ErrorCode.NotFound);
    // A request that names no token is the connection's session's (A's): B's extent is not found there either.
    await expectCode(asA.call(NodeOps.extentRead, { extentId: ext.extentId }), ErrorCode.NotFound);
    await expectUnauthorized(asA.call(NodeOps.extentRead, { token: tamper(a.token, (c) => { c["j"] = b.jobId; }), extentId: ext.extentId }));
    // A write needs the shard's grant for that job, node, extent and length: A has none for B's extent.
    const evil = Buffer.from("evil");
    await expectUnauthorized(asA.call(NodeOps.extentWrite, { token: a.token, extentId: ext.extentId, crc: crc32(evil) }, { payload: evil }));
    // A's genuine grant, for an extent of its own, does not cover B's extent either.
    const shardA = new NatsCaller(await t.client.natsFor(a.jobId), Subjects.shardJob(a.shardId, a.jobId));
    const own = (await shardA.call(ShardOps.objectCreate, { token: a.token, path: "own", size: evil.byteLength })).reply;
    await expectUnauthorized(asA.call(NodeOps.extentWrite, { token: a.token, extentId: ext.extentId, grant: own.extents[0]!.grant, crc: crc32(evil) }, { payload: evil }));
    await shardA.call(ShardOps.objectAbort, { token: a.token, writeId: own.writeId });
    const asB = pool.caller(ext.addr, node, b.token);
    const still = await asB.call(NodeOps.extentRead, { token: b.token, extentId: ext.extentId });
    expect(Buffer.from(still.payload!).equals(secretB.subarray(0, ext.length))).toBe(true);
    // A forged token does not get past the hello.
    await expectUnauthorized(forged.caller(ext.addr, node, tamper(a.token, (c) => { c["j"] = b.jobId; })).call(NodeOps.extentRead, { token: a.token, extentId: ext.extentId }));
  } finally {
    pool.close();
    forged.close();
  }
});

test("cluster-only operations are not served on the direct transport, and on NATS only components may send them", async () => {
  const ext = await extentOfB("secret");
  const pool = new TcpPool();
  try {
    const asB = pool.caller(ext.addr, { id: ext.nodeId, key: ext.key }, b.token);
    await expectCode(asB.call(NodeOps.jobDrop, { jobId: b.jobId }), ErrorCode.InvalidArgument);
    await expectCode(asB.call(NodeOps.extentFree, { jobId: b.jobId, extentIds: [ext.extentId] }), ErrorCode.InvalidArgument);
  } finally {
    pool.close();
  }
  const clients: Array<[string, string | undefined]> = [
    ["lambda of B", b.credentials], ["driver", t.auth.credentials(Role.Driver, "isolation")], ["operator", t.auth.credentials(Role.Operator, "isolation")],
  ];
  for (const [who, creds] of clients) {
    const p = await BusProbe.connect(t.nats.url, creds, who);
    try {
      const control = new NatsCaller(p.nc, Subjects.nodeControl(ext.nodeId), 5_000);
      await expectUnauthorized(control.call(NodeOps.jobDrop, { jobId: b.jobId }));
      await expectUnauthorized(control.call(NodeOps.extentFree, { jobId: b.jobId, extentIds: [ext.extentId] }));
    } finally {
      await p.close();
    }
  }
  // The same operation from a component's identity is served (a job that never existed: nothing to drop).
  const fromController = new NatsCaller(t.inspect, Subjects.nodeControl(ext.nodeId), 5_000);
  expect((await fromController.call(NodeOps.jobDrop, { jobId: "j-0000000000000000" })).reply.freedBytes).toBe(0);
  await expectBIntact();
});

test("no token, a tampered token and an expired token are Unauthorized", async () => {
  // On B's own subjects, with B's own credential: only the token is wrong.
  const shardB = new NatsCaller(await t.client.natsFor(b.jobId), Subjects.shardJob(b.shardId, b.jobId));
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

  await expectBIntact();
  expect((await t.client.job(b.token).count("", { recursive: true })).objects).toBe(2);
});
