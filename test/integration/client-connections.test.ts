import { ClientTransport, PocketClient, type PocketOptions, type RegisteredJob } from "../../client/pocket";
import type { RetryEvent } from "../../client/retry";
import { BusyError, InvalidArgumentError } from "../../schemas/errors";
import { eventually, patternBytes, Role, startTestCluster, type TestCluster } from "../harness/cluster";

/**
 * The NATS connections a job driver's client makes with its jobs' lambda
 * credentials (to read and write its jobs' data): past its bound, one that
 * calls are using is never closed under them (they would fail, be retried,
 * reconnect, and push another out), and a job's connection and credential
 * go with the job, whether or not a handle on it was ever made.
 */

const KiB = 1024;
/** Small extents: a put of 1 MiB is four requests to the nodes. */
const extentBytes = 256 * KiB;

let t: TestCluster;
const opened: PocketClient[] = [];

/** A job driver's client (it holds the lambda credential of each job it registers). */
async function driver(name: string, options: Pick<PocketOptions, "jobConnectionsMax" | "retry"> = {}): Promise<PocketClient> {
  const c = await PocketClient.connect({
    servers: t.nats.url, credentials: t.auth.credentials(Role.Driver, name), name, transport: ClientTransport.Nats, retry: false, ...options,
  });
  opened.push(c);
  return c;
}

/** The NATS connections open now whose name starts with `prefix` (the server's own list). */
async function connectionsNamed(prefix: string): Promise<string[]> {
  const res = await fetch(`${t.nats.monitorUrl}/connz?limit=4096`);
  const connz = (await res.json()) as { connections?: Array<{ name?: string }> };
  return (connz.connections ?? []).map((c) => c.name ?? "").filter((n) => n.startsWith(prefix));
}

beforeAll(async () => {
  t = await startTestCluster({ shards: 1, dram: 1, dramCapacityBytes: 256 * 1024 * KiB, extentBytesMax: extentBytes });
});

afterEach(async () => {
  for (const c of opened.splice(0)) await c.close();
});

afterAll(async () => {
  await t?.stop();
});

/**
 * Every job's calls overlap every other's (each connection is in use while
 * others are asked for): a put and a get of 1 MiB per round, per job.
 * Returns the jobs, the calls that failed and the most connections seen open at once.
 */
async function overlapping(client: PocketClient, prefix: string, jobs: number): Promise<{ regs: RegisteredJob[]; failed: unknown[]; most: number }> {
  const regs: RegisteredJob[] = [];
  for (let i = 0; i < jobs; i++) regs.push(await client.registerJob(`${prefix}-${i}`));
  let most = 0;
  let running = true;
  const sampling = (async () => {
    while (running) {
      most = Math.max(most, (await connectionsNamed(`${prefix}-driver-`)).length);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const rounds = await Promise.allSettled(regs.map(async (reg, i) => {
    const job = client.job(reg.token);
    for (let round = 0; round < 3; round++) {
      const data = patternBytes(1024 * KiB, i * 10 + round);
      await job.put(`part-${round}`, data);
      expect((await job.get(`part-${round}`)).equals(data)).toBe(true);
    }
  }));
  running = false;
  await sampling;
  return { regs, failed: rounds.flatMap((r) => (r.status === "rejected" ? [r.reason] : [])), most };
}

test("more jobs in use at once than connections kept: no call fails, and at most as many again are opened", async () => {
  const connectionsMax = 3;
  // Not retried: a call that fails because its connection was closed under it shows here.
  const client = await driver("busy-driver", { jobConnectionsMax: connectionsMax, retry: false });
  const { regs, failed, most } = await overlapping(client, "busy", 2 * connectionsMax);
  expect(failed).toEqual([]);
  expect(most).toBeGreaterThan(connectionsMax);
  expect(most).toBeLessThanOrEqual(2 * connectionsMax);
  // Past the calls, the idle ones beyond the bound are closed, and the jobs' connections go with the jobs.
  await eventually(async () => (await connectionsNamed("busy-driver-")).length <= connectionsMax, 5_000, "the connections back within their bound");
  for (const reg of regs) await client.deregisterJob(reg.token);
  await eventually(async () => (await connectionsNamed("busy-driver-")).length === 0, 5_000, "the connections closed");
});

test("past twice the bound, all in use, a call waits its turn through the retry policy (Busy), and the bound holds", async () => {
  const retried: unknown[] = [];
  const retry = { attemptsMax: 40, backoffInitialMs: 10, backoffMaxMs: 100, onRetry: (r: RetryEvent) => retried.push(r.error) };
  const client = await driver("crowded-driver", { jobConnectionsMax: 1, retry });
  const { regs, failed, most } = await overlapping(client, "crowded", 4);
  expect(failed).toEqual([]);
  expect(most).toBeLessThanOrEqual(2);
  // Four jobs at once against a bound of two: some calls were told Busy, and nothing else failed on the way.
  expect(retried.length).toBeGreaterThan(0);
  expect(retried.filter((e) => !(e instanceof BusyError))).toEqual([]);
  for (const reg of regs) await client.deregisterJob(reg.token);
});

test("deregistering a job releases its connection and credential though no handle on it was made", async () => {
  const client = await driver("leaving-driver");
  const reg = await client.registerJob("leaving");
  const mine = await client.natsFor(reg.jobId);
  expect(mine).not.toBe(client.nc);
  expect(await connectionsNamed(`leaving-driver-${reg.jobId}`)).toHaveLength(1);
  await client.deregisterJob(reg.token);
  await eventually(() => mine.isClosed(), 5_000, "the job's connection closed");
  expect(await connectionsNamed(`leaving-driver-${reg.jobId}`)).toEqual([]);
  // The credential went too: the job's requests would now go on the client's own connection.
  expect(await client.natsFor(reg.jobId)).toBe(client.nc);
});

test("a bound of connections that is not a whole number of at least 1 is refused before anything is reached", async () => {
  for (const jobConnectionsMax of [0, -1, 2.5, Number.NaN]) {
    await expect(PocketClient.connect({ servers: t.nats.url, credentials: t.auth.credentials(Role.Driver, "bad-bound"), jobConnectionsMax }))
      .rejects.toBeInstanceOf(InvalidArgumentError);
  }
});
