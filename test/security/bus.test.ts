import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ErrorCode, isPocketError } from "../../schemas/errors";
import { ControllerOps, NodeOps, ShardOps, type NodeHeartbeat, type ShardHeartbeat, type ShardUsage } from "../../schemas/operations";
import { Defaults } from "../../actors/runtime/config";
import { decodeJson, encodeJson } from "../../bus/body";
import { newTransportIdentity } from "../../bus/handshake";
import { createAccount, mintUserCreds } from "../../bus/nats-jwt";
import { ControllerCaller, NatsCaller } from "../../bus/nats-rpc";
import { DriverOperations, Inboxes, Subjects } from "../../bus/subjects";
import { natsServerBinary } from "../../deploy/nats-server";
import { ClientTransport, PocketClient, type RegisteredJob } from "../../client/pocket";
import { ClusterAuth, eventually, patternBytes, Role, startTestCluster, type TestCluster } from "../harness/cluster";
import { BusProbe, carries, wiretapCredentials, type ProbeSubscription } from "../harness/bus";

const MiB = 2 ** 20;
const heartbeatIntervalMs = 500;
/** Jobs registered at most while looking for one on the other shard. */
const registrationsMax = 8;
/** Seeds of the bytes each test writes: the same seed gives the same bytes, so a failing run can be repeated exactly. */
const seeds = { alpha: 101, beta: 202, traffic: 303, wire: 404, outage: 505 } as const;

let t: TestCluster;
/** Two jobs on different shards, with data, whose traffic and reports others try to see or forge. */
let alpha: RegisteredJob;
let beta: RegisteredJob;
/** The job whose lambda credential is the attacker's. */
let mallory: RegisteredJob;
const alphaBytes = patternBytes(3 * MiB + 1, seeds.alpha);
const betaBytes = patternBytes(3 * MiB + 2, seeds.beta);

beforeAll(async () => {
  t = await startTestCluster({ shards: 2, dram: 2, heartbeatIntervalMs });
  alpha = await t.client.registerJob("alpha");
  for (let i = 0; ; i++) {
    const reg = await t.client.registerJob(`beta-${i}`);
    if (reg.shardId !== alpha.shardId) {
      beta = reg;
      break;
    }
    if (i + 1 >= registrationsMax) throw new Error(`${registrationsMax} jobs registered, none on another shard than ${alpha.shardId}`);
  }
  mallory = await t.client.registerJob("mallory");
  await t.client.job(alpha.token).put("data", alphaBytes);
  await t.client.job(beta.token).put("data", betaBytes);
}, 60_000);
/** The nats-server the outage test starts from the cluster's own config (the harness's object no longer owns it). */
let restarted: ChildProcess | undefined;
afterAll(async () => {
  await t?.stop();
  if (restarted && restarted.exitCode === null && restarted.signalCode === null) {
    const exited = new Promise((r) => restarted!.once("exit", r));
    restarted.kill("SIGTERM");
    await exited;
  }
});

async function codeOf(p: Promise<unknown>): Promise<unknown> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  return isPocketError(e) ? e.code : e;
}

/** Runs `fn` with a probe connected as `creds`, closing it after. */
async function withProbe<T>(creds: string | undefined, name: string, fn: (p: BusProbe) => Promise<T>): Promise<T> {
  const p = await BusProbe.connect(t.nats.url, creds, name);
  try {
    return await fn(p);
  } finally {
    await p.close();
  }
}

/** One job's life, driven by its own driver client: register, put, get, list, delete, deregister. */
async function jobLife(name: string, transport: ClientTransport, seed: number): Promise<RegisteredJob> {
  const client = await PocketClient.connect({ servers: t.nats.url, transport, credentials: t.auth.credentials(Role.Driver, name) });
  try {
    const reg = await client.registerJob(name);
    const job = client.job(reg.token);
    const big = patternBytes(2 * MiB + 3, seed);
    const small = patternBytes(100, seed + 1);
    await job.put("big", big);
    await job.put("small", small);
    expect((await job.get("big")).equals(big)).toBe(true);
    expect((await job.get("small")).equals(small)).toBe(true);
    expect((await job.list("")).entries.map((e) => e.name)).toEqual(["big", "small"]);
    await job.delete("big");
    await client.deregisterJob(reg.token);
    return reg;
  } finally {
    await client.close();
  }
}

test("an anonymous connection, and credentials another operator's account signed, are refused", async () => {
  expect(await codeOf(BusProbe.connect(t.nats.url, undefined, "anonymous"))).toBe(ErrorCode.Unauthorized);
  const otherDir = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-other-auth-"));
  try {
    const other = ClusterAuth.open(otherDir);
    for (const role of [Role.Operator, Role.Controller, Role.Node] as const) {
      expect(await codeOf(BusProbe.connect(t.nats.url, other.credentials(role, "intruder"), `other-${role}`))).toBe(ErrorCode.Unauthorized);
    }
  } finally {
    fs.rmSync(otherDir, { recursive: true, force: true });
  }
  // A user that names this cluster's account but is signed by a key the account does not list.
  const forged = mintUserCreds(createAccount(), t.auth.account, "forged", { pub: [">"], sub: [">"] });
  expect(await codeOf(BusProbe.connect(t.nats.url, forged, "forged"))).toBe(ErrorCode.Unauthorized);
  // The same connection with this cluster's own credential is let in.
  await withProbe(t.auth.credentials(Role.Operator, "control"), "control", async (p) => { expect(p.nc.isClosed()).toBe(false); });
});

test("a lambda may subscribe to nothing of others, and receives nothing while two other jobs put and get", async () => {
  const tap = await BusProbe.connect(t.nats.url, wiretapCredentials(t.auth), "wiretap");
  const lambda = await BusProbe.connect(t.nats.url, mallory.credentials, "mallory");
  try {
    const all = tap.subscribe(">");
    const refused = [
      ">", "pocket.>", "_INBOX.>", `${Inboxes.job(alpha.jobId)}.>`, `${Inboxes.job(beta.jobId)}.>`,
      `${Inboxes.driver("traffic-nats")}.>`, `${Inboxes.driver("traffic-auto")}.>`, `${Inboxes.operator("test")}.>`, `${Inboxes.controller}.>`,
      "pocket.hb.>", Subjects.nodeHeartbeatAll, Subjects.shardHeartbeatAll, Subjects.shardUsageAll, Subjects.eventAll, Subjects.traceAll,
      `${Subjects.shardJob(alpha.shardId, alpha.jobId)}.>`, `pocket.node.*.job.${beta.jobId}.>`, "pocket.ctl.>",
    ];
    const subs: ProbeSubscription[] = [];
    for (const subject of refused) subs.push(await lambda.expectSubscribeRefused(subject));
    // Its own inbox is its to read: replies to its own requests, and nothing else.
    subs.push(lambda.subscribe(`${Inboxes.job(mallory.jobId)}.>`));
    await lambda.nc.flush();
    expect(lambda.refused("subscription", `${Inboxes.job(mallory.jobId)}.>`)).toBe(false);

    // Two other jobs, one over NATS only, one over the direct transport, from registration to deregistration.
    const jobs = [await jobLife("traffic-nats", ClientTransport.Nats, seeds.traffic), await jobLife("traffic-auto", ClientTransport.Auto, seeds.traffic + 10)];
    await tap.nc.flush();
    await lambda.nc.flush();
    for (const j of jobs) {
      // Their tokens were on the bus (a reader of everything saw them) ...
      expect(all.messages.some((m) => carries(m, j.token))).toBe(true);
      // ... and none reached the lambda, on any subscription it tried.
      for (const s of subs) expect(s.messages.filter((m) => carries(m, j.token))).toEqual([]);
    }
    for (const s of subs) expect({ subject: s.subject, received: s.received }).toEqual({ subject: s.subject, received: 0 });
  } finally {
    await lambda.close();
    await tap.close();
  }
});

test("a lambda may not publish to others' subjects, control subjects, heartbeats or usage; a driver may not publish to admin subjects", async () => {
  const node = (await t.client.listNodes())[0]!.nodeId;
  const otherShard = mallory.shardId === alpha.shardId ? beta.shardId : alpha.shardId;
  const others = [
    `${Subjects.shardJob(alpha.shardId, alpha.jobId)}.${ShardOps.objectGet.name}`,
    `${Subjects.shardJob(mallory.shardId, alpha.jobId)}.${ShardOps.objectGet.name}`,
    // Its own job's name on a shard that is not its own.
    `${Subjects.shardJob(otherShard, mallory.jobId)}.${ShardOps.objectGet.name}`,
    `${Subjects.nodeJob(node, alpha.jobId)}.${NodeOps.extentRead.name}`,
    `${Subjects.nodeJob(node, beta.jobId)}.${NodeOps.extentWrite.name}`,
  ];
  const admin = Object.values(ControllerOps).filter((op) => !DriverOperations.has(op.name)).map((op) => `${Subjects.controllerAdmin}.${op.name}`);
  const control = [
    ...[ShardOps.attachJob, ShardOps.detachJob, ShardOps.setWeights, ShardOps.migrate].map((op) => `${Subjects.shardControl(beta.shardId)}.${op.name}`),
    ...[NodeOps.extentFree, NodeOps.extentCopy, NodeOps.jobDrop, NodeOps.jobQos, NodeOps.retire, NodeOps.stats].map((op) => `${Subjects.nodeControl(node)}.${op.name}`),
  ];
  const reports = [Subjects.nodeHeartbeat(node), Subjects.nodeHeartbeat("ghost-node"), Subjects.shardHeartbeat(alpha.shardId), Subjects.shardUsage(beta.shardId), Subjects.event("job.registered"), Subjects.trace("tick")];
  expect(admin.length).toBeGreaterThanOrEqual(5);

  await withProbe(mallory.credentials, "mallory", async (lambda) => {
    for (const subject of [...others, ...admin, `${Subjects.controllerDriver}.${ControllerOps.jobRegister.name}`, ...control, ...reports]) {
      await lambda.expectPublishRefused(subject, encodeJson({ token: mallory.token }));
    }
    // What it may do, it can: its own job's operations on its own shard.
    const own = new NatsCaller(lambda.nc, Subjects.shardJob(mallory.shardId, mallory.jobId));
    expect((await own.call(ShardOps.list, { token: mallory.token, path: "" })).reply.entries).toEqual([]);
    expect(lambda.refused("publish", `${Subjects.shardJob(mallory.shardId, mallory.jobId)}.${ShardOps.list.name}`)).toBe(false);
  });
  await withProbe(t.auth.credentials(Role.Driver, "driver"), "driver", async (driver) => {
    for (const subject of [...admin, ...others, ...control, ...reports]) await driver.expectPublishRefused(subject, encodeJson({}));
  });
  expect((await t.client.job(alpha.token).get("data")).equals(alphaBytes)).toBe(true);
});

test("node.retire and the other admin verbs are Unauthorized from a driver or a lambda, and work for the operator", async () => {
  await t.cluster.addNode("dram-spare");
  await eventually(async () => (await t.client.listNodes()).some((n) => n.nodeId === "dram-spare" && n.state === "active"), 10_000, "dram-spare active");
  const asNobody = async (creds: string | undefined, name: string): Promise<void> => withProbe(creds, name, async (p) => {
    const ctl = new ControllerCaller(p.nc, 5_000);
    const calls: Array<Promise<unknown>> = [
      ctl.call(ControllerOps.nodeRetire, { nodeId: "dram-spare" }),
      ctl.call(ControllerOps.jobList, {}),
      ctl.call(ControllerOps.nodeList, {}),
      ctl.call(ControllerOps.shardList, {}),
      ctl.call(ControllerOps.jobUsage, { jobId: alpha.jobId }),
    ];
    for (const c of calls) expect(await codeOf(c)).toBe(ErrorCode.Unauthorized);
  });
  await asNobody(t.auth.credentials(Role.Driver, "driver"), "driver");
  await asNobody(mallory.credentials, "mallory");
  // A lambda cannot register, renew or end jobs either: that is its driver's.
  await withProbe(mallory.credentials, "mallory", async (p) => {
    const ctl = new ControllerCaller(p.nc, 5_000);
    expect(await codeOf(ctl.call(ControllerOps.jobRegister, { name: "sneaky" }))).toBe(ErrorCode.Unauthorized);
    expect(await codeOf(ctl.call(ControllerOps.jobDeregister, { token: alpha.token }))).toBe(ErrorCode.Unauthorized);
  });
  expect((await t.client.listNodes()).find((n) => n.nodeId === "dram-spare")?.state).toBe("active");

  // The operator's verbs work: lists, usage, and retiring the spare node, which then goes away.
  expect((await t.client.listJobs()).map((j) => j.jobId)).toEqual(expect.arrayContaining([alpha.jobId, beta.jobId]));
  expect((await t.client.listShards()).length).toBe(2);
  expect((await t.client.controller.call(ControllerOps.jobUsage, { jobId: alpha.jobId })).reply.jobId).toBe(alpha.jobId);
  const retired = (await t.client.controller.call(ControllerOps.nodeRetire, { nodeId: "dram-spare" })).reply;
  expect(retired.nodeId).toBe("dram-spare");
  expect(["draining", "removed"]).toContain(retired.state);
  await eventually(async () => !(await t.client.listNodes()).some((n) => n.nodeId === "dram-spare" && n.state !== "removed"), 20_000, "dram-spare removed");
  expect((await t.client.job(beta.token).get("data")).equals(betaBytes)).toBe(true);
}, 60_000);

describe("spoofed reports", () => {
  const attacker = { addr: "10.66.66.66:6666", key: newTransportIdentity("attacker").publicKey, capacityBytes: 2 ** 40 };
  const spoofedBytes = 777 * 2 ** 30;
  let tap: BusProbe;
  let reports: ProbeSubscription;
  let inputs: ProbeSubscription;
  beforeAll(async () => {
    tap = await BusProbe.connect(t.nats.url, wiretapCredentials(t.auth), "wiretap");
    reports = tap.subscribe("pocket.*.*.*");
    inputs = tap.subscribe(`${Subjects.traceAll}`);
    await tap.nc.flush();
  });
  afterAll(async () => { await tap?.close(); });

  const on = (s: ProbeSubscription, subject: string): unknown[] => s.messages.filter((m) => m.subject === subject).map((m) => decodeJson(m.data));
  /** Waits for the next message on `subject` from now; returns it. */
  async function next<T>(s: ProbeSubscription, subject: string): Promise<T> {
    const seen = on(s, subject).length;
    await eventually(() => on(s, subject).length > seen, 5_000, `a message on ${subject}`);
    return on(s, subject)[seen] as T;
  }
  const nodeView = async () => (await t.client.listNodes()).filter((n) => n.state !== "removed")
    .map((n) => ({ nodeId: n.nodeId, addr: n.addr, capacityBytes: n.capacityBytes, tier: n.tier, launched: n.launched }))
    .sort((x, y) => (x.nodeId < y.nodeId ? -1 : 1));
  /** Shards as the controller lists them; their counts follow their own heartbeats, so only a spoof's 999 would show. */
  const shardView = async () => (await t.client.listShards()).map((s) => ({ shardId: s.shardId, state: s.state, spoofed: s.jobs === 999 || s.objects === 999 }))
    .sort((x, y) => (x.shardId < y.shardId ? -1 : 1));
  const usageOf = async (jobId: string): Promise<number> => (await t.client.controller.call(ControllerOps.jobUsage, { jobId })).reply.bytes;

  test("clients may not publish a node's heartbeat, a new node's, a shard's or usage: the server refuses them", async () => {
    const real = await next<NodeHeartbeat>(reports, Subjects.nodeHeartbeat("dram-0"));
    const shardHb = await next<ShardHeartbeat>(reports, Subjects.shardHeartbeat(beta.shardId));
    const spoofs: Array<[string, unknown]> = [
      [Subjects.nodeHeartbeat("dram-0"), { ...real, ...attacker, sentAtMs: Date.now() }],
      [Subjects.nodeHeartbeat("ghost-node"), { ...real, nodeId: "ghost-node", ...attacker, usedBytes: 0, sentAtMs: Date.now() }],
      [Subjects.shardHeartbeat(beta.shardId), { ...shardHb, addr: attacker.addr, jobs: 999, sentAtMs: Date.now() }],
      [Subjects.shardUsage(beta.shardId), { shardId: beta.shardId, jobs: [{ jobId: beta.jobId, bytes: spoofedBytes, requests: 1 }], sentAtMs: Date.now() }],
    ];
    const clients: Array<[string, string | undefined]> = [
      ["mallory", mallory.credentials], ["driver", t.auth.credentials(Role.Driver, "driver")], ["operator", t.auth.credentials(Role.Operator, "spoofer")],
    ];
    for (const [name, creds] of clients) {
      await withProbe(creds, name, async (p) => {
        for (const [subject, body] of spoofs) await p.expectPublishRefused(subject, encodeJson(body));
      });
    }
  });

  test("a real node's credential naming another node in its heartbeat is dropped by the controller and the shards", async () => {
    const before = await nodeView();
    const keyOf = new Map<string, string>();
    for (const n of ["dram-0", "dram-1"]) keyOf.set(n, (await next<NodeHeartbeat>(reports, Subjects.nodeHeartbeat(n))).key);
    await withProbe(t.auth.credentials(Role.Node, "dram-0"), "dram-0-stolen", async (node) => {
      const real = await next<NodeHeartbeat>(reports, Subjects.nodeHeartbeat("dram-1"));
      const asDram1 = { ...real, ...attacker, sentAtMs: Date.now() };
      const ghost = { ...real, nodeId: "ghost-node", ...attacker, usedBytes: 0, sentAtMs: Date.now() };
      // Another node's subject is not this credential's at all.
      await node.expectPublishRefused(Subjects.nodeHeartbeat("dram-1"), encodeJson(asDram1));
      // On its own subject the server lets them through; the body names another node. Sent right after a real
      // heartbeat of dram-1, so that the controller would take one it accepted as dram-1's next report.
      await next<NodeHeartbeat>(reports, Subjects.nodeHeartbeat("dram-1"));
      node.nc.publish(Subjects.nodeHeartbeat("dram-0"), encodeJson(asDram1));
      node.nc.publish(Subjects.nodeHeartbeat("dram-0"), encodeJson(ghost));
      await node.nc.flush();
      expect(node.refused("publish", Subjects.nodeHeartbeat("dram-0"))).toBe(false);
    });
    // The shard lays out a write right after them (the bus delivers in order): dram-1's extents keep its own address and key.
    const shard = new NatsCaller(await t.client.natsFor(beta.jobId), Subjects.shardJob(beta.shardId, beta.jobId));
    const layout = (await shard.call(ShardOps.objectCreate, { token: beta.token, path: "probe", size: 4 * MiB })).reply;
    await shard.call(ShardOps.objectAbort, { token: beta.token, writeId: layout.writeId });
    const real = new Map(before.map((n) => [n.nodeId, n.addr]));
    expect(layout.extents.some((e) => e.nodeId === "dram-1")).toBe(true);
    for (const e of layout.extents) expect({ nodeId: e.nodeId, addr: e.addr, key: e.key }).toEqual({ nodeId: e.nodeId, addr: real.get(e.nodeId), key: keyOf.get(e.nodeId) });
    expect(await nodeView()).toEqual(before);
    // Two more of dram-1's own reports recorded as the controller's inputs: any it had taken from the spoof came before them.
    const recorded = Subjects.trace("node.heartbeat");
    const dram1Inputs = (): number => on(inputs, recorded).filter((i) => (i as { hb: { nodeId: string } }).hb.nodeId === "dram-1").length;
    const seen = dram1Inputs();
    await eventually(() => dram1Inputs() >= seen + 2, 10_000, "two more heartbeats of dram-1 recorded");
    for (const m of inputs.messages) {
      for (const needle of [attacker.addr, "ghost-node", String(attacker.capacityBytes)]) expect(carries(m, needle) ? `${m.subject} carries ${needle}` : "").toBe("");
    }
    expect(await nodeView()).toEqual(before);
    // Puts and gets afterwards are byte-exact (they would fail on the attacker's address).
    const data = patternBytes(4 * MiB + 5, seeds.beta + 1);
    await t.client.job(beta.token).put("after-node-spoof", data);
    expect((await t.client.job(beta.token).get("after-node-spoof")).equals(data)).toBe(true);
  }, 30_000);

  test("a real shard's credential naming another shard, or reporting a job it does not hold, changes no decision", async () => {
    const nodesBefore = await nodeView();
    const shardsBefore = await shardView();
    // What beta stores, once its shard's reports have caught up with the puts of the tests before.
    const usageBefore = (await t.client.job(beta.token).count("", { recursive: true })).bytes;
    await eventually(async () => (await usageOf(beta.jobId)) === usageBefore, 10_000, "beta's usage reported");
    const real = await next<ShardHeartbeat>(reports, Subjects.shardHeartbeat(beta.shardId));
    await withProbe(t.auth.credentials(Role.Shard, alpha.shardId), `${alpha.shardId}-stolen`, async (shard) => {
      const asBeta = { ...real, addr: attacker.addr, jobs: 999, objects: 999, sentAtMs: Date.now() };
      const usage: ShardUsage = { shardId: beta.shardId, jobs: [{ jobId: beta.jobId, bytes: spoofedBytes, requests: 1 }], sentAtMs: Date.now() };
      await shard.expectPublishRefused(Subjects.shardHeartbeat(beta.shardId), encodeJson(asBeta));
      await shard.expectPublishRefused(Subjects.shardUsage(beta.shardId), encodeJson(usage));
      // On its own subjects: a heartbeat naming the other shard or a new one, usage naming the other shard,
      // and usage under its own name for a job that lives on the other shard.
      shard.nc.publish(Subjects.shardHeartbeat(alpha.shardId), encodeJson(asBeta));
      shard.nc.publish(Subjects.shardHeartbeat(alpha.shardId), encodeJson({ ...asBeta, shardId: "ghost-shard" }));
      shard.nc.publish(Subjects.shardUsage(alpha.shardId), encodeJson(usage));
      shard.nc.publish(Subjects.shardUsage(alpha.shardId), encodeJson({ ...usage, shardId: alpha.shardId }));
      await shard.nc.flush();
      expect(shard.refused("publish", Subjects.shardUsage(alpha.shardId))).toBe(false);
    });
    // The controller had them before these requests (the bus delivers in order).
    expect(await shardView()).toEqual(shardsBefore);
    expect(await usageOf(beta.jobId)).toBe(usageBefore);
    expect(await nodeView()).toEqual(nodesBefore);
    for (const m of inputs.messages) {
      for (const needle of [String(spoofedBytes), "ghost-shard"]) expect(carries(m, needle) ? `${m.subject} carries ${needle}` : "").toBe("");
    }
    // New jobs still go only to the real shards.
    const reg = await t.client.registerJob("after-shard-spoof");
    expect([alpha.shardId, beta.shardId]).toContain(reg.shardId);
    await t.client.deregisterJob(reg.token);
  });
});

test("no cluster secret and no `auth` field travel on the bus while a job lives its whole life", async () => {
  const secret = t.cluster.secret;
  const needles = [secret, Buffer.from(secret, "utf8").toString("base64"), Buffer.from(secret, "utf8").toString("base64url"), "\"auth\""];
  const tap = await BusProbe.connect(t.nats.url, wiretapCredentials(t.auth), "wiretap");
  const operator = await BusProbe.connect(t.nats.url, t.auth.credentials(Role.Operator, "wire"), "operator");
  const controller = await BusProbe.connect(t.nats.url, t.auth.credentials(Role.Controller, "controller"), "controller-identity");
  try {
    const subs = [
      tap.subscribe(">"),
      operator.subscribe(Subjects.eventAll), operator.subscribe("pocket.hb.>"),
      controller.subscribe("pocket.ctl.>"), controller.subscribe("pocket.hb.>"), controller.subscribe("pocket.usage.>"),
    ];
    for (const p of [tap, operator, controller]) await p.nc.flush();
    for (const s of subs) expect(operator.refused("subscription", s.subject) || controller.refused("subscription", s.subject) || tap.refused("subscription", s.subject)).toBe(false);
    const lives = [await jobLife("wire-nats", ClientTransport.Nats, seeds.wire), await jobLife("wire-auto", ClientTransport.Auto, seeds.wire + 10)];
    await eventually(() => lives.every((j) => subs[1]!.messages.some((m) => m.subject === Subjects.event("job.deregistered") && carries(m, j.jobId))), 10_000, "both deregistrations on the event stream");
    for (const p of [tap, operator, controller]) await p.nc.flush();
    // What was recorded covers the jobs' whole lives: their tokens, their requests, their reports.
    for (const j of lives) expect(subs[0]!.messages.some((m) => carries(m, j.token))).toBe(true);
    expect(subs[0]!.messages.some((m) => m.subject.startsWith(`${Subjects.shardJob(lives[0]!.shardId, lives[0]!.jobId)}.`))).toBe(true);
    expect(subs[0]!.messages.some((m) => m.subject.startsWith(Subjects.shardControl(lives[0]!.shardId)))).toBe(true);
    expect(subs[0]!.messages.some((m) => m.subject.startsWith("pocket.node.") && m.subject.includes(".ctl."))).toBe(true);
    for (const s of subs) {
      expect(s.received).toBeGreaterThan(0);
      for (const m of s.messages) for (const needle of needles) expect(carries(m, needle) ? `${m.subject} carries ${needle}` : "").toBe("");
    }
  } finally {
    await controller.close();
    await operator.close();
    await tap.close();
  }
}, 30_000);

describe("nats-server going away", () => {
  test("while it is down a put fails with NodeUnavailable or Timeout, never reporting a silent node full; restarted from its own config, the cluster serves again", async () => {
    const missedMs = heartbeatIntervalMs * Defaults.heartbeatsMissedMax;
    const job = t.client.job(beta.token);
    // A put the nodes have no room for, declared up front: the shard refuses it before any byte moves.
    const tooBig = (): Promise<unknown> => codeOf(job.putStream("too-big", (async function* () { /* never read */ })(), { size: 3 * 2 ** 30 }));
    expect(await tooBig()).toBe(ErrorCode.CapacityExceeded);
    const natsOnly = await PocketClient.connect({
      servers: t.nats.url, transport: ClientTransport.Nats, requestTimeoutMs: 2_000, credentials: t.auth.credentials(Role.Driver, "outage"),
    });
    try {
      const reg = await natsOnly.registerJob("outage", {}, { renew: false });
      const before = patternBytes(2 * MiB, seeds.outage);
      await natsOnly.job(reg.token).put("before", before);
      const keys = new Map((await new NatsCaller(await t.client.natsFor(beta.jobId), Subjects.shardJob(beta.shardId, beta.jobId))
        .call(ShardOps.objectLookup, { token: beta.token, path: "data" })).reply.extents.map((e) => [e.nodeId, e.key]));

      const conf = path.join(t.nats.dir, "nats.conf");
      expect(fs.readFileSync(conf, "utf8")).toContain(`:${t.nats.port}"`);
      await t.nats.stop({ keepDir: true });
      const stoppedAt = Date.now();
      try {
        // A lambda starting now cannot reach the bus.
        expect(await codeOf(PocketClient.connect({ servers: t.nats.url, credentials: reg.credentials }))).toBe(ErrorCode.NodeUnavailable);
        // A job whose requests go over NATS gets no answer.
        expect([ErrorCode.Timeout, ErrorCode.NodeUnavailable]).toContain(await codeOf(natsOnly.job(reg.token).put("during", patternBytes(2 * MiB, seeds.outage + 1))));
        // Its shard still answers on the direct transport, but has stopped hearing from the nodes: once their
        // last heartbeats are older than the liveness window, it must say they are unavailable, not full.
        await eventually(async () => {
          const code = await tooBig();
          if (code === ErrorCode.CapacityExceeded) {
            expect(Date.now() - stoppedAt).toBeLessThan(missedMs + heartbeatIntervalMs);
            return false;
          }
          expect(code).toBe(ErrorCode.NodeUnavailable);
          return true;
        }, 10_000, "the silent nodes reported unavailable");
      } finally {
        const log = fs.openSync(path.join(t.nats.dir, "nats-restarted.log"), "a");
        restarted = spawn(natsServerBinary(), ["-c", conf], { stdio: ["ignore", log, log] });
        fs.closeSync(log);
      }

      // Back on the same port, with the same identities: every actor and client reconnects by itself. (A request
      // sent while its connection is still reconnecting goes unanswered until it times out: ask with short timeouts.)
      const answers = async (caller: NatsCaller | ControllerCaller, op: typeof ShardOps.info | typeof ControllerOps.nodeList): Promise<boolean> =>
        (await codeOf(caller.call(op, {}, { timeoutMs: 1_000 }))) === undefined;
      await eventually(() => answers(new ControllerCaller(t.client.nc), ControllerOps.nodeList), 30_000, "the controller answering again");
      await eventually(async () => answers(new NatsCaller(await t.client.natsFor(beta.jobId), Subjects.shardJob(beta.shardId, beta.jobId)), ShardOps.info), 30_000, "the shard answering the job again");
      const data = patternBytes(3 * MiB + 9, seeds.outage + 2);
      await job.put("after-restart", data);
      expect((await job.get("after-restart")).equals(data)).toBe(true);
      await eventually(async () => (await codeOf(natsOnly.job(reg.token).get("before"))) === undefined, 30_000, "the NATS-only job served again");
      expect((await natsOnly.job(reg.token).get("before")).equals(before)).toBe(true);
      // Nothing was restarted: the shard still holds what it held, and the nodes prove the same keys.
      expect((await job.get("data")).equals(betaBytes)).toBe(true);
      const after = (await new NatsCaller(await t.client.natsFor(beta.jobId), Subjects.shardJob(beta.shardId, beta.jobId))
        .call(ShardOps.objectLookup, { token: beta.token, path: "data" })).reply.extents;
      for (const e of after) expect(e.key).toBe(keys.get(e.nodeId));
      await eventually(async () => (await t.client.listNodes()).filter((n) => n.state === "active").length === 2, 10_000, "both nodes active");
      await natsOnly.deregisterJob(reg.token);
    } finally {
      await natsOnly.close();
    }
  }, 90_000);
});
