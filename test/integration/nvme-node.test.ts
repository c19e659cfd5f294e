import { ErrorCode, isPocketError } from "../../schemas/errors";
import { connectJob, eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";
import { nodeStats, usedBytes } from "../harness/nodes";
import { readEvents } from "../../bus/events";

const MiB = 2 ** 20;
let t: TestCluster;
beforeAll(async () => {
  // One DRAM node and two NVMe nodes on files (the native engine, O_DIRECT, io_uring).
  t = await startTestCluster({ shards: 1, dram: 1, nvme: 2, nvmeCapacityBytes: 32 * MiB });
}, 60_000);
afterAll(async () => { await t?.stop(); });

test("a job that is not latency-sensitive lands on the NVMe nodes; one that is lands on DRAM", async () => {
  const flash = await t.client.registerJob("flash", { capacityBytes: 16 * MiB });
  expect(flash.tier).toBe("nvme");
  expect(flash.weights.map((w) => w.nodeId).every((id) => id.startsWith("nvme-"))).toBe(true);
  const fast = await t.client.registerJob("fast", { capacityBytes: 16 * MiB, latencySensitive: true });
  expect(fast.tier).toBe("dram");
  await t.client.deregisterJob(flash.token);
  await t.client.deregisterJob(fast.token);
});

describe.each(["auto", "nats"] as const)("objects on NVMe nodes over the %s transport", (transport) => {
  test("sizes from 1 byte to 5 MB, ranges, overwrite, delete: byte-exact; deregistration frees every byte", async () => {
    const j = await connectJob(t, transport, `nvme-${transport}`);
    const sizes = [1, 4095, 4096, 4097, 65_537, MiB - 1, MiB, MiB + 1, 5 * 1000 * 1000];
    for (const [i, size] of sizes.entries()) {
      const data = patternBytes(size, 40 + i);
      await j.job.put(`s/${size}`, data);
      expect((await j.job.get(`s/${size}`)).equals(data)).toBe(true);
    }
    const big = patternBytes(5 * 1000 * 1000, 48);
    for (const [offset, length] of [[0, 1], [4095, 2], [MiB - 3, 10], [3 * MiB + 17, 100_000], [5 * 1000 * 1000 - 5, 5]] as const) {
      expect((await j.job.get(`s/${5 * 1000 * 1000}`, { offset, length })).equals(big.subarray(offset, offset + length))).toBe(true);
    }
    const stats = await nodeStats(t);
    expect(stats.filter((s) => s.nodeId.startsWith("nvme-") && s.usedBytes > 0).length).toBeGreaterThan(0);
    await j.job.put(`s/${MiB}`, "overwritten");
    expect((await j.job.get(`s/${MiB}`)).toString()).toBe("overwritten");
    await j.job.delete("s", { recursive: true });
    await j.close();
    await eventually(async () => (await usedBytes(t)) === 0, 5_000, "all bytes freed");
  }, 60_000);
});

test("a full NVMe tier is a clear CapacityExceeded, and nothing stored before is lost", async () => {
  const j = await connectJob(t, "auto", "nvme-full");
  const kept = patternBytes(3 * MiB, 9);
  await j.job.put("kept", kept);
  // 64 MiB of flash in all: 80 MB cannot fit.
  const e = await j.job.put("too-big", patternBytes(80 * 1000 * 1000, 10)).then(() => undefined, (err: unknown) => err);
  expect(isPocketError(e, ErrorCode.CapacityExceeded)).toBe(true);
  expect((await j.job.get("kept")).equals(kept)).toBe(true);
  expect(await j.job.exists("too-big")).toBe(false);
  await j.close();
}, 60_000);

describe("a latency-sensitive job on a cluster with NVMe nodes only", () => {
  let f: TestCluster;
  beforeAll(async () => {
    f = await startTestCluster({ shards: 1, dram: 0, nvme: 1, nvmeCapacityBytes: 32 * MiB });
  }, 60_000);
  afterAll(async () => { await f?.stop(); });

  test("becomes a latency-critical tenant with a reservation on its node; others stay best-effort", async () => {
    const lc = await f.client.registerJob("interactive", { lambdas: 2, latencySensitive: true, readRatio: 0.9 });
    expect(lc.tier).toBe("nvme");
    const be = await f.client.registerJob("batch", { lambdas: 2 });
    await eventually(async () => (await nodeStats(f)).some((s) => s.latencyCriticalJobs === 1), 5_000, "reservation made");
    // The reservation is sized by the job's read-ratio hint (the event follows the node's answer: poll for it).
    let reserved: Record<string, unknown> | undefined;
    await eventually(async () => {
      for await (const { event } of readEvents(f.client.nc, { signal: AbortSignal.timeout(3_000) })) {
        if (event["kind"] === "job.reserved" && event["jobId"] === lc.jobId) reserved = event;
      }
      return reserved !== undefined;
    }, 10_000, "job.reserved on the event stream");
    expect(reserved).toMatchObject({ slo: { readRatio: 0.9 } });
    const data = patternBytes(2 * MiB, 77);
    await f.client.job(lc.token).put("x", data);
    await f.client.job(be.token).put("y", data);
    expect((await f.client.job(lc.token).get("x")).equals(data)).toBe(true);
    expect((await f.client.job(be.token).get("y")).equals(data)).toBe(true);
    await f.client.deregisterJob(lc.token);
    await eventually(async () => (await nodeStats(f)).every((s) => (s.latencyCriticalJobs ?? 0) === 0), 5_000, "reservation released");
    await f.client.deregisterJob(be.token);
  }, 60_000);
});
