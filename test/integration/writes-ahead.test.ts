import { ClientTransport } from "../../client/pocket";
import { Subjects } from "../../bus/subjects";
import { BusProbe, wiretapCredentials } from "../harness/bus";
import { connectJob, eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";

/*
 * Puts of a size that repeats use writes the shard reserved ahead: they skip
 * object.create and cost one round trip to the nodes and one to the shard.
 * Watched on the bus (the NATS transport, with a credential that sees every
 * subject): how many creates and commits the shard was sent.
 */
let t: TestCluster;
beforeAll(async () => { t = await startTestCluster({ shards: 1, dram: 2 }); });
afterAll(async () => { await t?.stop(); });

test("five puts of one size send two creates and five commits, and every object reads back", async () => {
  const j = await connectJob(t, ClientTransport.Nats, "ahead");
  const tap = await BusProbe.connect(t.nats.url, wiretapCredentials(t.auth), "wiretap");
  try {
    const shardJob = Subjects.shardJob(j.job.shardId, j.job.jobId);
    const creates = tap.subscribe(`${shardJob}.object.create`);
    const commits = tap.subscribe(`${shardJob}.object.commit`);
    await tap.nc.flush();
    const size = 2 * 1024 * 1024 + 5;
    const put = Array.from({ length: 5 }, (_, i) => patternBytes(size, i));
    for (let i = 0; i < 5; i++) await j.job.put(`p${i}`, put[i]!);
    await eventually(() => commits.received === 5, 5_000, "five commits seen on the bus");
    // The first put lays its write out; the second asks for one more ahead; from the third on, puts use what was reserved.
    expect(creates.received).toBe(2);
    for (let i = 0; i < 5; i++) expect((await j.job.get(`p${i}`)).equals(put[i]!)).toBe(true);
    // A put of another size lays its own write out as before.
    await j.job.put("other", patternBytes(size + 1, 9));
    await eventually(() => commits.received === 6, 5_000, "the sixth commit seen on the bus");
    expect(creates.received).toBe(3);
  } finally {
    await tap.close();
    await j.close();
  }
});
