import { LaunchMode } from "../../deploy/local-cluster";
import { ControllerOps } from "../../schemas/operations";
import { ControllerCaller } from "../../bus/nats-rpc";
import { eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";
import { usedBytes } from "../harness/nodes";
import { StoreKinds, testStores } from "../harness/stores";

const MiB = 2 ** 20;
const stores = testStores();
afterAll(() => stores.stop());

describe.each(StoreKinds)("controller SIGKILL and restart, state on %s", (kind) => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startTestCluster({
      mode: LaunchMode.Process, shards: 1, dram: 2, dramCapacityBytes: 64 * MiB, heartbeatIntervalMs: 250,
      store: await stores.location(kind),
    });
  }, 60_000);
  afterAll(async () => { await t?.stop(); });

  test("loses no job, allocation or node state, and clients keep working while it is down", async () => {
    const reg = await t.client.registerJob("survivor", { capacityBytes: 48 * MiB, lambdas: 2 });
    const job = t.client.job(reg.token);
    const a = patternBytes(5 * MiB, 1);
    await job.put("a", a);
    // Its shard reports the use: registered → active. Then the snapshot to compare with after the restart.
    await eventually(async () => (await t.client.listJobs()).find((j) => j.jobId === reg.jobId)?.state === "active", 5_000, "job active");
    const before = {
      jobs: (await t.client.listJobs()).map((j) => ({ ...j, leaseExpiresAtMs: 0 })),
      nodes: (await t.client.listNodes()).map((n) => ({ nodeId: n.nodeId, state: n.state, tier: n.tier, launched: n.launched, reservedBytes: n.reservedBytes, jobWeights: n.jobWeights })),
    };

    await t.cluster.kill("controller");
    // Data operations never go through the controller.
    const b = patternBytes(5 * MiB, 2);
    await job.put("b", b);
    expect((await job.get("a")).equals(a)).toBe(true);
    expect((await job.list("")).entries.map((e) => e.name).sort()).toEqual(["a", "b"]);
    const ctl = new ControllerCaller(t.client.nc, 500);
    await expect(ctl.call(ControllerOps.jobList, {})).rejects.toThrow();

    await t.cluster.startController();
    const snapshot = async () => ({
      jobs: (await t.client.listJobs()).map((j) => ({ ...j, leaseExpiresAtMs: 0 })),
      nodes: (await t.client.listNodes()).map((n) => ({ nodeId: n.nodeId, state: n.state, tier: n.tier, launched: n.launched, reservedBytes: n.reservedBytes, jobWeights: n.jobWeights })),
    });
    // Registrations, allocations and weights are stored before the API answers; a transition driven by a
    // usage report (registered → active) may be one save behind a SIGKILL, and comes back with the next report.
    const after = await snapshot();
    expect(after.jobs.map((j) => ({ ...j, state: undefined }))).toEqual(before.jobs.map((j) => ({ ...j, state: undefined })));
    expect(after.nodes).toEqual(before.nodes);
    await eventually(async () => JSON.stringify(await snapshot()) === JSON.stringify(before), 5_000, "the same state as before the kill");
    // It carries on: renewals, usage, deregistration freeing every byte.
    await expect(t.client.renewLease(reg.token)).resolves.toEqual(expect.objectContaining({ jobId: reg.jobId }));
    await eventually(async () => {
      const u = (await ctl.call(ControllerOps.jobUsage, { jobId: reg.jobId })).reply;
      return u.requests > 0 && u.byteSeconds > 0;
    }, 5_000, "usage ledger running after restart");
    const freed = await t.client.deregisterJob(reg.token);
    expect(freed.freedBytes).toBe(10 * MiB);
    expect(await usedBytes(t)).toBe(0);
    const usage = (await ctl.call(ControllerOps.jobUsage, { jobId: reg.jobId })).reply;
    expect(usage.state).toBe("ended");
    expect(usage.byteSeconds).toBeGreaterThan(0);
    expect(usage.cost).toBeGreaterThan(0);
  }, 60_000);
});
