import { patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";

let t: TestCluster;
beforeAll(async () => { t = await startTestCluster(); });
afterAll(async () => { await t?.stop(); });

test("put and get round trip", async () => {
  const reg = await t.client.registerJob("smoke");
  const job = t.client.job(reg.token);
  const data = patternBytes(3 * 1024 * 1024 + 7, 1);
  await job.put("a/b", data);
  const back = await job.get("a/b");
  expect(back.equals(data)).toBe(true);
});
