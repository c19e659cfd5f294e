import { ErrorCode, isPocketError } from "../../schemas/errors";
import { ShardOps } from "../../schemas/operations";
import { NatsCaller } from "../../bus/nats-rpc";
import { Subjects } from "../../bus/subjects";
import { LaunchMode } from "../../deploy/local-cluster";
import { eventually, patternBytes, startTestCluster, streamEvents, type TestCluster } from "../harness/cluster";

let t: TestCluster;
beforeAll(async () => {
  // Real processes: the node dies by SIGKILL, as a crashed machine would.
  t = await startTestCluster({ mode: LaunchMode.Process, shards: 1, dram: 2, heartbeatIntervalMs: 250 });
}, 60_000);
afterAll(async () => { await t?.stop(); });

test("reads of a SIGKILLed node's extents fail with NodeUnavailable; other objects still read; writes avoid it", async () => {
  const reg = await t.client.registerJob("victim");
  const job = t.client.job(reg.token);
  // Lookups as the job's lambdas make them: on the job's own shard subjects, with its credential.
  const shard = new NatsCaller(await t.client.natsFor(reg.jobId), Subjects.shardJob(reg.shardId, reg.jobId));
  // Small objects are one extent each; the weight map spreads them over both nodes.
  const objects = new Map<string, { data: Buffer; nodeId: string }>();
  for (let i = 0; i < 16; i++) {
    const data = patternBytes(10_000 + i, i);
    await job.put(`o${i}`, data);
    const look = (await shard.call(ShardOps.objectLookup, { token: reg.token, path: `o${i}` })).reply;
    objects.set(`o${i}`, { data, nodeId: look.extents[0]!.nodeId });
  }
  const onVictim = [...objects].filter(([, o]) => o.nodeId === "dram-1");
  const onSurvivor = [...objects].filter(([, o]) => o.nodeId === "dram-0");
  expect(onVictim.length).toBeGreaterThan(0);
  expect(onSurvivor.length).toBeGreaterThan(0);

  await t.cluster.kill("dram-1");

  for (const [key] of onVictim) {
    const e = await job.get(key).then(() => undefined, (err: unknown) => err);
    expect(isPocketError(e, ErrorCode.NodeUnavailable)).toBe(true);
  }
  for (const [key, o] of onSurvivor) expect((await job.get(key)).equals(o.data)).toBe(true);

  // The controller marks it failed after missed heartbeats (3 × 250 ms), and new writes avoid it.
  const killedAt = Date.now();
  await eventually(async () => (await t.client.listNodes()).some((n) => n.nodeId === "dram-1" && n.state === "failed"), 5_000, "node failed");
  // The decision is on the event stream, with the time the node was last heard.
  const events = await streamEvents(t.client.nc);
  const failed = events.find((e) => e["kind"] === "node.failed" && e["nodeId"] === "dram-1");
  expect(failed).toBeDefined();
  expect(Number(failed!["lastSeenMs"])).toBeLessThanOrEqual(killedAt);
  expect(events.some((e) => e["kind"] === "job.weights" && e["jobId"] === reg.jobId && Number(e["atMs"]) >= Number(failed!["atMs"]))).toBe(true);
  await eventually(async () => {
    const weights = (await t.client.listJobs()).find((j) => j.jobId === reg.jobId)!.weights;
    return weights.length === 1 && weights[0]!.nodeId === "dram-0";
  }, 5_000, "weights recomputed");
  for (let i = 0; i < 8; i++) {
    const data = patternBytes(3 * 1024 * 1024, 100 + i);
    await job.put(`new${i}`, data);
    expect((await job.get(`new${i}`)).equals(data)).toBe(true);
  }
  // Overwriting a lost object works: the new version lives on a live node.
  const [lostKey] = onVictim[0]!;
  await job.put(lostKey, "rewritten");
  expect((await job.get(lostKey)).toString()).toBe("rewritten");
});

test("a node that goes silent is failed, and serves again as active when it is heard again", async () => {
  const before = (await t.client.listNodes()).find((n) => n.nodeId === "dram-0")!;
  expect(before.state).toBe("active");
  t.cluster.signal("dram-0", "SIGSTOP");
  try {
    await eventually(async () => (await t.client.listNodes()).find((n) => n.nodeId === "dram-0")?.state === "failed", 5_000, "frozen node failed");
  } finally {
    t.cluster.signal("dram-0", "SIGCONT");
  }
  await eventually(async () => (await t.client.listNodes()).find((n) => n.nodeId === "dram-0")?.state === "active", 5_000, "thawed node active again");
  const events = await streamEvents(t.client.nc);
  const failedAt = events.findIndex((e) => e["kind"] === "node.failed" && e["nodeId"] === "dram-0");
  expect(failedAt).toBeGreaterThanOrEqual(0);
  expect(events.slice(failedAt).some((e) => e["kind"] === "node.active" && e["nodeId"] === "dram-0")).toBe(true);
});
