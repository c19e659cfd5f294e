import { ErrorCode, isPocketError } from "../../schemas/errors";
import { eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";
import { usedBytes } from "../harness/nodes";

const nodeBytes = 8 * 1024 * 1024;
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

test("a second shard's jobs cannot over-commit the same nodes", async () => {
  const ra = await t.client.registerJob("fill-a");
  const rb = await t.client.registerJob("fill-b");
  expect(ra.shardId).not.toBe(rb.shardId);
  const a = t.client.job(ra.token);
  const b = t.client.job(rb.token);
  const chunk = patternBytes(1024 * 1024, 5);
  const failures: unknown[] = [];
  await Promise.all([a, b].map(async (job) => {
    for (let i = 0; i < 40; i++) {
      try {
        await job.put(`c${i}`, chunk);
      } catch (e) {
        failures.push(e);
        if (failures.length > 4) return;
        expect(isPocketError(e, ErrorCode.CapacityExceeded)).toBe(true);
      }
    }
  }));
  expect(failures.length).toBeGreaterThan(0);
  for (const f of failures) expect(isPocketError(f, ErrorCode.CapacityExceeded)).toBe(true);
  const used = await usedBytes(t);
  expect(used).toBeLessThanOrEqual(2 * nodeBytes);
});
