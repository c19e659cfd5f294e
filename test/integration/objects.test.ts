import { ErrorCode, NotEmptyError, NotFoundError, isPocketError } from "../../schemas/errors";
import { ClientTransport, type PocketJob } from "../../client/pocket";
import { connectJob, eventually, patternBytes, startTestCluster, type TestCluster, type TestJob } from "../harness/cluster";
import { nodeStats, usedBytes } from "../harness/nodes";

let t: TestCluster;
beforeAll(async () => { t = await startTestCluster({ shards: 2, dram: 2, dramCapacityBytes: 512 * 1024 * 1024 }); });
afterAll(async () => { await t?.stop(); });

describe.each([ClientTransport.Auto, ClientTransport.Nats])("objects over %s", (transport) => {
  let tj: TestJob;
  let job: PocketJob;
  beforeAll(async () => {
    tj = await connectJob(t, transport, `objects-${transport}`);
    job = tj.job;
  });
  afterAll(async () => { await tj?.close(); });

  test.each([0, 1, 1024, 1024 * 1024 + 1, 50 * 1024 * 1024])("put/get %i bytes byte-exact", async (size) => {
    const data = patternBytes(size, size + 17);
    const put = await job.put(`sizes/${size}`, data);
    expect(put.size).toBe(size);
    const back = await job.get(`sizes/${size}`);
    expect(back.byteLength).toBe(size);
    expect(back.equals(data)).toBe(true);
    const st = await job.stat(`sizes/${size}`);
    expect(st).toMatchObject({ type: "object", size, version: 1 });
  });

  test("strings, overwrite and create-only", async () => {
    await job.put("s", "hello");
    expect((await job.get("s")).toString()).toBe("hello");
    const v2 = await job.put("s", "world!");
    expect(v2.version).toBe(2);
    expect((await job.get("s")).toString()).toBe("world!");
    await expect(job.put("s", "nope", { createOnly: true })).rejects.toMatchObject({ code: ErrorCode.AlreadyExists });
    expect((await job.get("s")).toString()).toBe("world!");
    await job.put("fresh", "x", { createOnly: true });
  });

  test("directories: mkdir, list, count, delete, recursive delete", async () => {
    await job.mkdir("d/e");
    await expect(job.mkdir("d/e")).rejects.toMatchObject({ code: ErrorCode.AlreadyExists });
    for (let i = 0; i < 5; i++) await job.put(`d/f${i}`, patternBytes(100 * i, i));
    await job.put("d/e/deep", patternBytes(2000, 9));

    const page = await job.list("d");
    expect(page.entries.map((e) => e.name)).toEqual(["e", "f0", "f1", "f2", "f3", "f4"]);
    expect(page.entries[0]).toMatchObject({ type: "directory" });
    expect(page.entries[3]).toMatchObject({ type: "object", size: 200 });
    const first = await job.list("d", { limit: 2 });
    expect(first.more).toBe(true);
    const second = await job.list("d", { after: first.entries[1]!.name, limit: 10 });
    expect(second.entries.map((e) => e.name)).toEqual(["f1", "f2", "f3", "f4"]);
    const all: string[] = [];
    for await (const e of job.listAll("d", 2)) all.push(e.name);
    expect(all).toHaveLength(6);

    expect(await job.count("d")).toEqual({ objects: 5, directories: 1, bytes: 1000 });
    expect(await job.count("d", { recursive: true })).toEqual({ objects: 6, directories: 1, bytes: 3000 });
    expect(await job.stat("d")).toMatchObject({ type: "directory", children: 6 });

    await job.delete("d/f0");
    await expect(job.get("d/f0")).rejects.toBeInstanceOf(NotFoundError);
    await expect(job.delete("d")).rejects.toBeInstanceOf(NotEmptyError);
    const gone = await job.delete("d", { recursive: true });
    expect(gone).toEqual({ objects: 5, bytes: 3000 });
    await expect(job.stat("d")).rejects.toBeInstanceOf(NotFoundError);
    await expect(job.list("d")).rejects.toBeInstanceOf(NotFoundError);
  });

  test("bad paths are InvalidArgument", async () => {
    for (const p of ["a//b", "../x", "a/./b", "", "x".repeat(300)]) {
      const e = await job.put(p, "x").catch((err: unknown) => err);
      expect(isPocketError(e, ErrorCode.InvalidArgument)).toBe(true);
    }
    await job.put("obj", "1");
    await expect(job.put("obj/child", "2")).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    await expect(job.get("nothing/here")).rejects.toMatchObject({ code: ErrorCode.NotFound });
  });
});

test("delete frees bytes on the nodes; deregistration frees everything", async () => {
  const before = await usedBytes(t);
  const reg = await t.client.registerJob("frees");
  const job = t.client.job(reg.token);
  await job.put("a", patternBytes(3 * 1024 * 1024, 1));
  await job.put("b", patternBytes(5000, 2));
  expect(await usedBytes(t)).toBe(before + 3 * 1024 * 1024 + 5000);
  await job.delete("a");
  await eventually(async () => (await usedBytes(t)) === before + 5000, 5000, "extents of a freed");
  await job.put("c/d", patternBytes(2 * 1024 * 1024, 3));
  await job.put("c/d", patternBytes(1024 * 1024, 4)); // overwrite frees the old version
  await eventually(async () => (await usedBytes(t)) === before + 5000 + 1024 * 1024, 5000, "old version freed");

  const out = await t.client.deregisterJob(reg.token);
  expect(out.freedBytes).toBe(5000 + 1024 * 1024);
  expect(await usedBytes(t)).toBe(before);
  for (const n of await nodeStats(t)) expect(n.usedBytes).toBeGreaterThanOrEqual(0);
  await expect(job.get("b")).rejects.toMatchObject({ code: ErrorCode.UnknownJob });
  await expect(t.client.deregisterJob(reg.token)).rejects.toMatchObject({ code: ErrorCode.UnknownJob });
});

test("jobs spread over shards", async () => {
  const a = await t.client.registerJob("spread-a");
  const b = await t.client.registerJob("spread-b");
  expect(a.shardId).not.toBe(b.shardId);
  expect(a.weights.length).toBe(2);
  expect(a.weights.reduce((s, w) => s + w.weight, 0)).toBeCloseTo(1, 9);
  await t.client.deregisterJob(a.token);
  await t.client.deregisterJob(b.token);
});
