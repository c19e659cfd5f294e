import { ClientTransport } from "../../client/pocket";
import { Transport } from "../../bus/router";
import { mapLimit } from "../../lib/concurrency";
import { connectJob, eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";
import { usedBytes } from "../harness/nodes";
import { scrape } from "../harness/prometheus";

const MiB = 2 ** 20;
let t: TestCluster;
beforeAll(async () => {
  // Heartbeats far apart: between two, the shard knows a node's free space only from what it placed and freed itself.
  t = await startTestCluster({ shards: 1, dram: 1, dramCapacityBytes: 16 * MiB, heartbeatIntervalMs: 10_000 });
}, 60_000);
afterAll(async () => { await t?.stop(); });
// The tests share the node: each ends with its job deleted or deregistered (a deregistered job's bytes count as placed until the next heartbeat).

function http(name: string): string {
  const e = t.cluster.endpoints().find((x) => x.name === name);
  if (!e) throw new Error(`no HTTP endpoint for ${name}`);
  return e.http;
}

test("frees of many objects deleted together go to the node in batches, and the node ends empty", async () => {
  const j = await connectJob(t, ClientTransport.Auto, "batches");
  try {
    const objects = 300;
    const keys = Array.from({ length: objects }, (_, i) => `o/${i}`);
    // 8 KiB each: past the inline bound, so each is an extent on the node.
    await mapLimit(keys, 32, (k, i) => j.job.put(k, patternBytes(8 * 1024, i)));
    const before = await scrape(http("dram-0"));
    await mapLimit(keys, 64, (k) => j.job.delete(k));
    await eventually(async () => (await usedBytes(t)) === 0, 10_000);
    const after = await scrape(http("dram-0"));
    const frees = after.sum("pocket_request_duration_seconds_count", { operation: "extent.free", transport: Transport.Nats })
      - before.sum("pocket_request_duration_seconds_count", { operation: "extent.free", transport: Transport.Nats });
    expect(frees).toBeGreaterThan(0);
    expect(frees).toBeLessThan(objects);
  } finally {
    await j.close();
  }
});

test("one key overwritten with 1 MiB forty times on a 16 MiB node between two heartbeats: each free makes room as it is answered", async () => {
  const j = await connectJob(t, ClientTransport.Auto, "overwrite");
  try {
    for (let i = 0; i < 40; i++) await j.job.put("k", patternBytes(MiB, i));
    expect((await j.job.get("k")).equals(patternBytes(MiB, 39))).toBe(true);
  } finally {
    await j.close();
  }
});

test("gets of an object overwritten while its bytes are being sent read all the old bytes or all the new, and its memory is reused once they are sent", async () => {
  const j = await connectJob(t, ClientTransport.Auto, "reuse");
  try {
    const size = 2 * MiB + 12_345; // three extents
    const versions = 12;
    const expected = Array.from({ length: versions }, (_, v) => patternBytes(size, 1000 + v));
    await j.job.put("hot", expected[0]!);
    for (let v = 1; v < versions; v++) {
      const gets = Array.from({ length: 6 }, () => j.job.get("hot"));
      await j.job.put("hot", expected[v]!);
      for (const got of await Promise.all(gets)) {
        // All of one version: the one before this put or this one.
        expect(got.equals(expected[v - 1]!) || got.equals(expected[v]!)).toBe(true);
      }
    }
    expect((await j.job.get("hot")).equals(expected[versions - 1]!)).toBe(true);
    await eventually(async () => (await scrape(http("dram-0"))).one("pocket_node_reads_held", {}) === 0, 10_000, "every read released");
    expect((await scrape(http("dram-0"))).one("pocket_node_memory_reused_total", {})).toBeGreaterThan(0);
  } finally {
    await j.close();
  }
});
