import { ErrorCode, isPocketError } from "../../schemas/errors";
import { PocketClient } from "../../client/pocket";
import { LaunchMode, LocalCluster } from "../../deploy/local-cluster";
import { startNatsCluster, type NatsServer } from "../../deploy/nats-server";
import { eventually, patternBytes } from "../harness/cluster";

let servers: NatsServer[] = [];
let cluster: LocalCluster | undefined;
let client: PocketClient | undefined;

afterAll(async () => {
  await client?.close();
  await cluster?.stop();
  for (const s of servers) await s.stop();
});

test("actors on one server of a 3-server NATS cluster serve a client on another", async () => {
  servers = await startNatsCluster(3);
  expect(new Set(servers.map((s) => s.url)).size).toBe(3);
  cluster = await LocalCluster.start({ mode: LaunchMode.Inline, natsUrl: servers[0]!.url, shards: 1, dram: 2, heartbeatIntervalMs: 500 });
  client = await PocketClient.connect({ servers: servers[2]!.url });
  // Interest crosses routes asynchronously: wait until the controller answers from the far server.
  await eventually(async () => {
    try {
      return (await client!.listNodes()).length === 2;
    } catch (e) {
      if (isPocketError(e, ErrorCode.NodeUnavailable) || isPocketError(e, ErrorCode.Timeout)) return false;
      throw e;
    }
  }, 15_000, "controller reachable across the route");
  const job = client.job((await client.registerJob("routed")).token);
  const data = patternBytes(5 * 1024 * 1024 + 3, 11);
  await job.put("x", data);
  expect((await job.get("x")).equals(data)).toBe(true);
});
