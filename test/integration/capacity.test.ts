import { ErrorCode, isPocketError } from "../../schemas/errors";
import { settleLimit } from "../../lib/concurrency";
import { eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";
import { nodeStats, usedBytes } from "../harness/nodes";

const MiB = 1024 * 1024;

describe("one job filling two nodes", () => {
  const nodeBytes = 8 * MiB;
  let t: TestCluster;
  beforeAll(async () => { t = await startTestCluster({ shards: 2, dram: 2, dramCapacityBytes: nodeBytes }); });
  afterAll(async () => { await t?.stop(); });

  test("the put that does not fit gets CapacityExceeded; nothing partial shows; earlier objects stay", async () => {
    const job = t.client.job((await t.client.registerJob("fill")).token);
    const kept = new Map<string, Buffer>();
    let failure: unknown;
    for (let i = 0; i < 100 && failure === undefined; i++) {
      const data = patternBytes(3 * 1024 * 1024 + 1000 * i, i);
      try {
        await job.put(`o${i}`, data);
        kept.set(`o${i}`, data);
      } catch (e) {
        failure = e;
        await expect(job.stat(`o${i}`)).rejects.toMatchObject({ code: ErrorCode.NotFound });
      }
    }
    expect(isPocketError(failure, ErrorCode.CapacityExceeded)).toBe(true);
    expect(kept.size).toBeGreaterThanOrEqual(4);
    for (const [k, v] of kept) expect((await job.get(k)).equals(v)).toBe(true);
    const stored = [...kept.values()].reduce((s, b) => s + b.byteLength, 0);
    // Extents of the failed put are freed: the nodes hold exactly the committed objects.
    await eventually(async () => (await usedBytes(t)) === stored, 5000, "aborted extents freed");
    expect(stored).toBeLessThanOrEqual(2 * nodeBytes);
    // Space freed by a delete is usable again.
    const [firstKey, firstVal] = [...kept.entries()][0]!;
    await job.delete(firstKey);
    await eventually(async () => (await usedBytes(t)) === stored - firstVal.byteLength, 5000, "delete freed");
    await eventually(async () => {
      try {
        await job.put("again", patternBytes(2 * 1024 * 1024, 7));
        return true;
      } catch (e) {
        if (!isPocketError(e, ErrorCode.CapacityExceeded)) throw e; // the shard's view of free space follows heartbeats
        return false;
      }
    }, 5000, "put after delete");
  });
});

describe("two shards over one node", () => {
  const nodeBytes = 8 * MiB;
  let t: TestCluster;
  // One node and no room to launch another: every job of both shards writes to dram-0.
  beforeAll(async () => { t = await startTestCluster({ shards: 2, dram: 1, maxNodes: 1, dramCapacityBytes: nodeBytes }); });
  afterAll(async () => { await t?.stop(); });

  test("jobs of two shards writing at once cannot over-commit the node; the overflow is refused with CapacityExceeded", async () => {
    const ra = await t.client.registerJob("fill-a");
    const rb = await t.client.registerJob("fill-b");
    expect(ra.shardId).not.toBe(rb.shardId);
    const jobs = await t.client.listJobs();
    for (const r of [ra, rb]) expect(jobs.find((j) => j.jobId === r.jobId)!.weights).toEqual([{ nodeId: "dram-0", weight: 1 }]);
    expect(await usedBytes(t)).toBe(0);

    // Each job alone fits (6 MiB of 8): only together do they overflow the node, by 4 MiB.
    // Each shard lays out against its own view of the node's free space, so both lay out all of theirs.
    const perJob = 6;
    const [a, b] = [t.client.job(ra.token), t.client.job(rb.token)];
    // Interleaved (a0, b0, a1, b1, ...) so that the puts in flight are the two jobs' in equal numbers.
    const puts = Array.from({ length: perJob }, (_, i) => [a, b].map((job, j) => ({
      job, key: `c${i}`, data: patternBytes(MiB, 10 * j + i), who: `${job.jobId}/c${i}`,
    }))).flat();
    // The node's own count, sampled all the while the puts run.
    let writing = true;
    let usedMax = 0;
    const sampler = (async () => {
      while (writing) {
        for (const n of await nodeStats(t)) usedMax = Math.max(usedMax, n.usedBytes);
      }
    })();
    // Three puts in flight per job, the two jobs interleaved: both shards' writes reach the node at once.
    const results = await settleLimit(puts, 6, (p) => p.job.put(p.key, p.data)).finally(() => { writing = false; });
    await sampler;

    const committed = puts.filter((_, i) => results[i]!.status === "fulfilled");
    const refused = puts.map((p, i) => ({ p, r: results[i]! })).filter((x) => x.r.status === "rejected");
    const committedBytes = committed.reduce((s, p) => s + p.data.byteLength, 0);
    expect(usedMax).toBeLessThanOrEqual(nodeBytes);
    // Acknowledged puts are what the node holds for good: over-committing would acknowledge more than it can hold.
    expect(committedBytes).toBeLessThanOrEqual(nodeBytes);
    expect(refused.length).toBeGreaterThanOrEqual(2 * perJob - nodeBytes / MiB);
    for (const { p, r } of refused) {
      const reason = (r as PromiseRejectedResult).reason;
      if (!isPocketError(reason, ErrorCode.CapacityExceeded)) throw new Error(`${p.who}: refused with ${String(reason)}, not CapacityExceeded`);
      await expect(p.job.stat(p.key)).rejects.toMatchObject({ code: ErrorCode.NotFound });
    }
    // Every acknowledged put reads back whole, and the node holds exactly those bytes (refused writes are freed).
    for (const p of committed) expect((await p.job.get(p.key)).equals(p.data)).toBe(true);
    await eventually(async () => (await usedBytes(t)) === committedBytes, 5_000, `the node holding exactly the ${committedBytes} committed bytes`);
  });
});
