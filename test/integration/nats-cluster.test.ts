import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ErrorCode, isPocketError } from "../../schemas/errors";
import { PocketClient } from "../../client/pocket";
import { LaunchMode, LocalCluster } from "../../deploy/local-cluster";
import { startNatsCluster, type NatsServer } from "../../deploy/nats-server";
import { ClusterAuth, eventually, patternBytes, Role } from "../harness/cluster";

let servers: NatsServer[] = [];
let cluster: LocalCluster | undefined;
let client: PocketClient | undefined;
const auth = ClusterAuth.open(fs.mkdtempSync(path.join(os.tmpdir(), "pocket-auth-")));

afterAll(async () => {
  await client?.close();
  await cluster?.stop();
  for (const s of servers) await s.stop();
  fs.rmSync(auth.dir, { recursive: true, force: true });
});

test("actors on one server of a 3-server NATS cluster serve a client on another", async () => {
  // Every server trusts the same identities: a credential works wherever it connects.
  servers = await startNatsCluster(3, { include: auth.serverConfigFile });
  expect(new Set(servers.map((s) => s.url)).size).toBe(3);
  cluster = await LocalCluster.start({
    mode: LaunchMode.Inline, natsUrl: servers[0]!.url, authDir: auth.dir, shards: 1, dram: 2, heartbeatIntervalMs: 500,
  });
  client = await PocketClient.connect({ servers: servers[2]!.url, credentials: auth.credentials(Role.Operator, "routed") });
  // Interest crosses routes asynchronously: wait until the controller answers from the far server.
  await eventually(async () => {
    try {
      return (await client!.listNodes()).length === 2;
    } catch (e) {
      if (isPocketError(e, ErrorCode.NodeUnavailable) || isPocketError(e, ErrorCode.Timeout)) return false;
      throw e;
    }
  }, 15_000, "controller reachable across the route");
  // The job's lambda credential connects to the far server too.
  const reg = await client.registerJob("routed");
  expect(reg.credentials).toBeDefined();
  const job = client.job(reg.token);
  const data = patternBytes(5 * 1024 * 1024 + 3, 11);
  await job.put("x", data);
  expect((await job.get("x")).equals(data)).toBe(true);
});
