import { ErrorCode } from "../../schemas/errors";
import { ClientTransport } from "../../client/pocket";
import { connectJob, startTestCluster, type TestCluster } from "../harness/cluster";

let t: TestCluster;
beforeAll(async () => {
  // Small extents: each version spans several extents on both nodes.
  t = await startTestCluster({ shards: 1, dram: 2, extentBytesMax: 64 * 1024 });
});
afterAll(async () => { await t?.stop(); });

/** Version v is `size` bytes all equal to v, so a mix of versions is visible in any read. */
function version(v: number, size: number): Buffer {
  return Buffer.alloc(size, v & 0xff);
}

test.each([ClientTransport.Auto, ClientTransport.Nats])("readers racing an overwriter always get one whole version (%s)", async (transport) => {
  const tj = await connectJob(t, transport, `overwrite-${transport}`);
  const job = tj.job;
  const size = 640 * 1024 + 3;
  await job.put("hot", version(1, size));
  const versionsMax = 40;
  let writing = true;
  const writer = (async () => {
    for (let v = 2; v <= versionsMax; v++) await job.put("hot", version(v, size));
    writing = false;
  })();
  const seen = new Set<number>();
  let reads = 0;
  const reader = async (): Promise<void> => {
    while (writing) {
      let got: Buffer;
      try {
        got = await job.get("hot");
      } catch (e) {
        // A reader overtaken by more than the bounded number of retries is told so, never given bytes.
        expect(e).toMatchObject({ code: ErrorCode.NotFound });
        continue;
      }
      reads++;
      expect(got.byteLength).toBe(size);
      const v = got[0]!;
      // Every byte of the read belongs to the same version.
      expect(got.equals(version(v, size))).toBe(true);
      seen.add(v);
    }
  };
  await Promise.all([writer, reader(), reader(), reader(), reader()]);
  expect(reads).toBeGreaterThan(0);
  expect((await job.get("hot")).equals(version(versionsMax, size))).toBe(true);
  expect((await job.stat("hot")).version).toBe(versionsMax);
  await tj.close();
});
