import fs from "node:fs";
import path from "node:path";
import { ErrorCode, isPocketError } from "../../schemas/errors";
import { ControllerOps } from "../../schemas/operations";
import { LaunchMode } from "../../deploy/local-cluster";
import { eventually, patternBytes, startTestCluster, streamEvents, type TestCluster } from "../harness/cluster";
import { nodeStats, usedBytes } from "../harness/nodes";
import { decisionLine, replayInputs, replayTrace } from "../../actors/controller/replay";
import type { ControllerInput, Decision } from "../../actors/controller/inputs";
import { readEvents } from "../../bus/events";

const MiB = 2 ** 20;

describe("the local orchestrator scales the cluster", () => {
  let t: TestCluster;
  beforeAll(async () => {
    // Real processes: the controller launches storage-node processes and stops them again.
    t = await startTestCluster({
      mode: LaunchMode.Process, orchestrator: "local", shards: 1, dram: 1, dramCapacityBytes: 64 * MiB,
      minNodes: 1, maxNodes: 4, heartbeatIntervalMs: 250,
      policy: { startupGraceMs: 1_000, sustainMs: 1_000, cooldownMs: 1_500, windowMs: 1_000, drainDeadlineMs: 60_000 },
    });
  }, 60_000);
  afterAll(async () => { await t?.stop(); });

  test("hints beyond the cluster launch nodes that take the job's data; after deregistration they drain down to the minimum", async () => {
    // 160 MiB on 64 MiB nodes: two and a half nodes' worth, so two more are launched at once.
    const reg = await t.client.registerJob("big", { capacityBytes: 160 * MiB });
    const launched = async () => (await t.client.listNodes()).filter((n) => n.launched);
    await eventually(async () => (await launched()).filter((n) => n.state === "active").length === 2, 15_000, "two launched nodes active");
    await eventually(async () => {
      const w = (await t.client.listJobs()).find((j) => j.jobId === reg.jobId)!.weights;
      return w.length === 3;
    }, 5_000, "weights over all three nodes");

    const job = t.client.job(reg.token);
    const objects: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      objects.push(patternBytes(3 * MiB, 500 + i));
      await job.put(`part-${i}`, objects[i]!);
    }
    for (let i = 0; i < 40; i++) expect((await job.get(`part-${i}`)).equals(objects[i]!)).toBe(true);
    const stats = await nodeStats(t);
    const onLaunched = stats.filter((s) => s.nodeId.includes("-auto-") && s.usedBytes > 0);
    expect(onLaunched.length).toBe(2);

    await t.client.deregisterJob(reg.token);
    await eventually(async () => {
      const nodes = await t.client.listNodes();
      return nodes.filter((n) => n.state !== "removed").length === 1 && nodes[0]!.nodeId === "dram-0";
    }, 20_000, "drained back to the one static node");
    expect(await usedBytes(t)).toBe(0);
    // The launched processes are gone (the orchestrator removes their pid files as they exit).
    await eventually(() => fs.readdirSync(path.join(t.cluster.dataDir, "run")).length === 0, 10_000, "node processes exited");

    const events = await streamEvents(t.client.nc);
    const kinds = (kind: string) => events.filter((e) => e["kind"] === kind);
    expect(kinds("node.launch").length).toBe(2);
    expect(kinds("node.launch")[0]!["reason"]).toMatch(/needs more than/);
    expect(kinds("node.active").filter((e) => e["launched"] === true).length).toBe(2);
    expect(kinds("scale.in").length).toBe(2);
    expect(kinds("node.draining").length).toBe(2);
    expect(kinds("node.removed").map((e) => e["nodeId"]).sort()).toEqual(kinds("node.launch").map((e) => e["nodeId"]).sort());
    // Every decision came with the measurements behind it.
    for (const e of kinds("scale.in")) expect(e["measurements"]).toEqual(expect.objectContaining({ nodes: expect.any(Number), capacity: expect.any(Number) }));
  }, 90_000);

  test("the live controller's recorded inputs replay to exactly the decisions it published", async () => {
    const trace = path.join(t.cluster.dataDir, "controller-trace.ndjson");
    const shellOnly = new Set(["node.launch-failed", "node.migrated"]);
    // The stream is read first: every input behind those decisions was written to the trace before them.
    const live = (await streamEvents(t.client.nc)).filter((e) => !shellOnly.has(String(e["kind"]))).map((e) => decisionLine(e as unknown as Decision));
    expect(live.length).toBeGreaterThan(10);
    // The trace file's writes are buffered: wait until it holds the inputs behind as many decisions as were published.
    let replayed: string[] = [];
    await eventually(async () => {
      replayed = (await replayTrace(trace)).decisions.map(decisionLine);
      return replayed.length >= live.length;
    }, 5_000, `the trace replaying to ${live.length} decisions`);
    expect(replayed.slice(0, live.length)).toEqual(live);
    // The same inputs are on the event stream too.
    const inputs: ControllerInput[] = [];
    for await (const { subject, event } of readEvents(t.client.nc, { inputs: true })) {
      if (subject.startsWith("pocket.trace.")) inputs.push(event as unknown as ControllerInput);
    }
    expect(replayInputs(inputs).decisions.map(decisionLine).slice(0, live.length)).toEqual(live);
  });
});

describe("leases", () => {
  let t: TestCluster;
  beforeAll(async () => { t = await startTestCluster({ shards: 1, dram: 2 }); }, 60_000);
  afterAll(async () => { await t?.stop(); });

  test("a job whose driver stops renewing is reclaimed when its lease runs out; one that renews lives on", async () => {
    const crashed = await t.client.registerJob("crashed-driver", { capacityBytes: 10 * MiB }, { leaseMs: 1_500, renew: false });
    const kept = await t.client.registerJob("live-driver", { capacityBytes: 10 * MiB }, { leaseMs: 1_500 });
    await t.client.job(crashed.token).put("a", patternBytes(2 * MiB, 1));
    await t.client.job(kept.token).put("b", patternBytes(2 * MiB, 2));
    expect(crashed.leaseExpiresAtMs).toBeGreaterThan(Date.now());

    await eventually(async () => !(await t.client.listJobs()).some((j) => j.jobId === crashed.jobId), 10_000, "crashed job reclaimed");
    // The shard drops the namespace right after the decision (an effect carried out asynchronously).
    await eventually(async () => {
      const e = await t.client.job(crashed.token).get("a").then(() => undefined, (err: unknown) => err);
      return isPocketError(e, ErrorCode.UnknownJob);
    }, 5_000, "its namespace dropped");
    await eventually(async () => (await usedBytes(t)) === 2 * MiB, 5_000, "its bytes freed");
    const events = await streamEvents(t.client.nc);
    expect(events.some((x) => x["kind"] === "job.expired" && x["jobId"] === crashed.jobId)).toBe(true);

    // Well past its own lease, the renewed job is still there: the controller took a renewal one whole lease
    // after the first lease ran out (ticking every heartbeat all the while), and still lists it.
    await eventually(async () => {
      const k = (await t.client.listJobs()).find((j) => j.jobId === kept.jobId);
      if (!k) throw new Error(`the renewed job ${kept.jobId} was reclaimed`);
      return k.leaseExpiresAtMs >= kept.leaseExpiresAtMs + 2 * kept.leaseMs;
    }, 10_000, "a renewal one lease past the first lease's end");
    expect((await t.client.listJobs()).some((j) => j.jobId === kept.jobId)).toBe(true);
    expect((await t.client.job(kept.token).get("b")).equals(patternBytes(2 * MiB, 2))).toBe(true);
    await t.client.deregisterJob(kept.token);
  }, 30_000);
});

describe("draining a node that still holds live data", () => {
  let t: TestCluster;
  beforeAll(async () => {
    // Three nodes kept (no scale-in of its own): the test retires one by hand.
    t = await startTestCluster({ shards: 2, dram: 3, minNodes: 3, policy: { drainDeadlineMs: 1_000 } });
  }, 60_000);
  afterAll(async () => { await t?.stop(); });

  test("past the drain deadline its extents move to other nodes; readers see no error; then it is removed", async () => {
    const reg = await t.client.registerJob("resident", { capacityBytes: 200 * MiB });
    const job = t.client.job(reg.token);
    const objects = new Map<string, Buffer>();
    for (let i = 0; i < 24; i++) {
      const data = patternBytes(1 * MiB + 1000 * i, 900 + i);
      objects.set(`o${i}`, data);
      await job.put(`o${i}`, data);
    }
    const before = await nodeStats(t);
    const victim = before.filter((s) => s.usedBytes > 0).sort((a, b) => b.usedBytes - a.usedBytes)[0]!;

    // A reader keeps reading all along; it must never see an error.
    let reading = true;
    const errors: unknown[] = [];
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        for (const [k, v] of objects) {
          try {
            if (!(await job.get(k)).equals(v)) errors.push(new Error(`${k}: wrong bytes`));
            reads++;
          } catch (e) {
            errors.push(e);
          }
        }
        await new Promise((r) => setImmediate(r));
      }
    })();

    const r = (await t.client.controller.call(ControllerOps.nodeRetire, { nodeId: victim.nodeId })).reply;
    expect(r.state).toBe("draining");
    await eventually(async () => !(await t.client.listNodes()).some((n) => n.nodeId === victim.nodeId), 20_000, "drained node removed");
    reading = false;
    await reader;
    expect(errors).toEqual([]);
    expect(reads).toBeGreaterThan(objects.size);
    for (const [k, v] of objects) expect((await job.get(k)).equals(v)).toBe(true);
    const after = await nodeStats(t);
    expect(after.map((s) => s.nodeId)).not.toContain(victim.nodeId);
    expect(after.reduce((s, n) => s + n.usedBytes, 0)).toBe(before.reduce((s, n) => s + n.usedBytes, 0));
    const events = await streamEvents(t.client.nc);
    expect(events.some((e) => e["kind"] === "node.migrate" && e["nodeId"] === victim.nodeId)).toBe(true);
    expect(events.some((e) => e["kind"] === "node.migrated" && e["nodeId"] === victim.nodeId && e["complete"] === true)).toBe(true);
    // The victim sent its extents straight to the other nodes (extent.copy), none through a shard.
    const migrated = events.filter((e) => e["kind"] === "node.migrated" && e["nodeId"] === victim.nodeId);
    const sum = (k: string): number => migrated.reduce((s, e) => s + (e[k] as number), 0);
    expect(sum("bytes")).toBe(victim.usedBytes);
    expect(sum("directBytes")).toBe(sum("bytes"));
    expect(events.find((e) => e["kind"] === "node.removed" && e["nodeId"] === victim.nodeId)!["reason"]).toMatch(/moved/);
    await t.client.deregisterJob(reg.token);
  }, 60_000);
});
