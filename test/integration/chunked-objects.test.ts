import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ClientTransport, PocketClient, type PocketJob } from "../../client/pocket";
import { ClusterAuth, LaunchMode, LocalCluster, NatsServer, patternBytes, Role } from "../harness/cluster";

/*
 * Objects through the SDK with everything over NATS, on nats-servers that
 * keep their default max_payload (1 MiB) or a smaller one (64 KiB): extents
 * of 1 MiB and more, their reads and large layouts travel in chunks. The
 * cluster runs as `pocket up` does, with nothing raised.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const sizes = [0, 4 * KiB, MiB, 3.5 * MiB, 10 * MiB];

describe.each([
  { server: "a default nats-server (max_payload 1 MiB)", maxPayloadBytes: undefined, expected: MiB },
  { server: "a nats-server with max_payload 64 KiB", maxPayloadBytes: 64 * KiB, expected: 64 * KiB },
])("objects over NATS only, on $server", ({ maxPayloadBytes, expected }) => {
  let auth: ClusterAuth;
  let nats: NatsServer;
  let cluster: LocalCluster;
  let client: PocketClient;
  let job: PocketJob;

  beforeAll(async () => {
    auth = ClusterAuth.open(fs.mkdtempSync(path.join(os.tmpdir(), "pocket-chunked-auth-")));
    nats = await NatsServer.start({ jetstream: true, include: auth.serverConfigFile, ...(maxPayloadBytes ? { maxPayloadBytes } : {}) });
    cluster = await LocalCluster.start({
      mode: LaunchMode.Inline, orchestrator: "events-only", heartbeatIntervalMs: 500, shards: 1, dram: 2, dramCapacityBytes: 128 * MiB,
      natsUrl: nats.url, authDir: auth.dir,
    });
    client = await PocketClient.connect({ servers: nats.url, transport: ClientTransport.Nats, credentials: auth.credentials(Role.Driver, "chunked") });
    job = client.job((await client.registerJob("chunked")).token);
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await cluster?.stop();
    await nats?.stop();
    if (auth) fs.rmSync(auth.dir, { recursive: true, force: true });
  });

  test("the server keeps the max_payload it was given", () => {
    expect(client.nc.info?.max_payload).toBe(expected);
  });

  test.each(sizes)("put/get %i bytes byte-exact", async (size) => {
    const data = patternBytes(size, size + 29);
    expect(await job.put(`sizes/${size}`, data)).toMatchObject({ size });
    const back = await job.get(`sizes/${size}`);
    expect(back.byteLength).toBe(size);
    expect(back.equals(data)).toBe(true);
  });

  test("one job's puts at once, none retried, each land byte-exact: the per-job chunk bounds leave a job room for its own extents in flight", async () => {
    const puts = 8;
    const datas = Array.from({ length: puts }, (_, i) => patternBytes(3.5 * MiB, 1000 + i));
    await Promise.all(datas.map((data, i) => job.put(`together/${i}`, data, { retry: false })));
    for (const [i, data] of datas.entries()) expect((await job.get(`together/${i}`)).equals(data)).toBe(true);
  });

  test("a range across extent boundaries, byte-exact", async () => {
    const data = patternBytes(3.5 * MiB, 3.5 * MiB + 29);
    const offset = MiB - 100;
    const back = await job.get(`sizes/${3.5 * MiB}`, { offset, length: 2 * MiB + 200 });
    expect(back.equals(data.subarray(offset, offset + 2 * MiB + 200))).toBe(true);
  });
});
