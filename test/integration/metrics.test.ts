import fs from "node:fs";
import path from "node:path";
import { NotFoundError } from "../../schemas/errors";
import { ClientTransport } from "../../client/pocket";
import { Transport } from "../../bus/router";
import { encodeBody, encodeJson } from "../../bus/body";
import { ErrorHeaders, Subjects } from "../../bus/subjects";
import { UnknownOperation } from "../../actors/runtime/metrics";
import { blockDeviceOf } from "../../actors/storage/node-metrics";
import { jobsReportedMax } from "../../actors/metadata/shard-metrics";
import { connectJob, eventually, patternBytes, Role, startNats, startTestCluster, type TestCluster } from "../harness/cluster";
import { nodeStats } from "../harness/nodes";
import { parsePrometheusText, scrape } from "../harness/prometheus";
import { spawnActor, stopChild } from "../../actors/actor-process";
import { projectRoot } from "../../lib/process";
import { freePort } from "../../lib/ports";
import { MetadataShard } from "../../actors/metadata/shard";

const MiB = 2 ** 20;
let t: TestCluster;
beforeAll(async () => {
  // A DRAM node and an NVMe node (on a file): a job without hints lands on NVMe.
  t = await startTestCluster({ shards: 1, dram: 1, nvme: 1, nvmeCapacityBytes: 16 * MiB });
}, 60_000);
afterAll(async () => { await t?.stop(); });

/** host:port of an actor's metrics and probes. */
function http(name: string): string {
  const e = t.cluster.endpoints().find((x) => x.name === name);
  if (!e) throw new Error(`no HTTP endpoint for ${name}: ${JSON.stringify(t.cluster.endpoints())}`);
  return e.http;
}

describe.each([[ClientTransport.Auto, Transport.Tcp], [ClientTransport.Nats, Transport.Nats]] as const)("a shard's request metrics, client over %s", (transport, label) => {
  test("N puts count N; a missing object counts one NotFound; bytes both ways; the job's own gauges", async () => {
    const j = await connectJob(t, transport, `metrics-${transport}`);
    const op = (operation: string) => ({ operation, transport: label });
    const before = await scrape(http("s0"));
    const puts = 7;
    for (let i = 0; i < puts; i++) await j.job.put(`k/${i}`, patternBytes(100, i));
    expect((await j.job.get("k/3")).equals(patternBytes(100, 3))).toBe(true);
    await expect(j.job.get("missing")).rejects.toBeInstanceOf(NotFoundError);
    const after = await scrape(http("s0"));

    const delta = (name: string, labels: Record<string, string>): number => after.sum(name, labels) - before.sum(name, labels);
    expect(delta("pocket_request_duration_seconds_count", op("object.put"))).toBe(puts);
    expect(delta("pocket_request_duration_seconds_bucket", { ...op("object.put"), le: "+Inf" })).toBe(puts);
    expect(delta("pocket_request_duration_seconds_sum", op("object.put"))).toBeGreaterThan(0);
    expect(delta("pocket_request_duration_seconds_count", op("object.get"))).toBe(2);
    expect(delta("pocket_request_errors_total", { ...op("object.get"), code: "NotFound" })).toBe(1);
    expect(delta("pocket_request_errors_total", op("object.put"))).toBe(0);
    // Each put carries its 100 bytes; the get that succeeded brought 100 back.
    expect(delta("pocket_request_bytes_total", op("object.put"))).toBeGreaterThanOrEqual(puts * 100);
    expect(delta("pocket_reply_bytes_total", op("object.get"))).toBeGreaterThanOrEqual(100);
    // Buckets are cumulative and end at the count.
    const buckets = after.find("pocket_request_duration_seconds_bucket", op("object.put")).map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    expect(after.one("pocket_shard_job_objects", { job: j.job.jobId })).toBe(puts);
    expect(after.one("pocket_shard_job_bytes", { job: j.job.jobId })).toBe(puts * 100);
    expect(after.one("pocket_requests_inflight", { transport: label })).toBe(0);
    await j.close();
  });
});

test("the shard reports only its largest jobs, at most jobsReportedMax", async () => {
  const driver = await connectJob(t, ClientTransport.Auto, "many");
  const jobs = [driver.job];
  for (let i = 1; i < jobsReportedMax + 2; i++) jobs.push(driver.client.job((await driver.client.registerJob(`many-${i}`)).token));
  for (const [i, j] of jobs.entries()) await j.put("x", patternBytes(10 + i, i));
  const s = await scrape(http("s0"));
  const reported = s.find("pocket_shard_job_bytes").map((x) => x.labels["job"]);
  expect(reported).toHaveLength(jobsReportedMax);
  // The two smallest (10 and 11 bytes) are left out; the largest is first.
  expect(reported).not.toContain(jobs[0]!.jobId);
  expect(reported).not.toContain(jobs[1]!.jobId);
  expect(reported[0]).toBe(jobs[jobs.length - 1]!.jobId);
  expect(s.one("pocket_shard_jobs")).toBeGreaterThanOrEqual(jobsReportedMax + 2);
  for (const j of jobs.slice(1)) await driver.client.deregisterJob(j.token);
  await driver.close();
});

test("an NVMe node counts extent writes; its gauges match its stats; its device saw the bytes", async () => {
  const j = await connectJob(t, ClientTransport.Auto, "metrics-node");
  const devicePath = path.join(t.cluster.dataDir, "nvme", "nvme-0.img");
  const device = blockDeviceOf(devicePath);
  const before = await scrape(http("nvme-0"));
  const size = 2.5 * MiB;
  await j.job.put("big", patternBytes(size, 5));
  const after = await scrape(http("nvme-0"));
  const writes = { operation: "extent.write", transport: Transport.Tcp };
  expect(after.sum("pocket_request_duration_seconds_count", writes) - before.sum("pocket_request_duration_seconds_count", writes)).toBe(3);
  expect(after.sum("pocket_request_bytes_total", writes) - before.sum("pocket_request_bytes_total", writes)).toBeGreaterThanOrEqual(size);
  const stats = (await nodeStats(t)).find((n) => n.nodeId === "nvme-0")!;
  expect(after.one("pocket_node_used_bytes")).toBe(stats.usedBytes);
  expect(after.one("pocket_node_extents")).toBe(stats.extents);
  expect(after.one("pocket_node_jobs")).toBe(stats.jobs);
  expect(after.one("pocket_node_capacity_bytes")).toBe(16 * MiB);
  expect(after.one("pocket_node_tier_info", { tier: "nvme" })).toBe(1);
  expect(after.one("pocket_nvme_queue_depth")).toBeGreaterThan(0);
  expect(after.one("pocket_tcp_connections")).toBeGreaterThanOrEqual(1);
  expect(after.one("pocket_tcp_received_bytes_total") - before.one("pocket_tcp_received_bytes_total")).toBeGreaterThanOrEqual(size);
  if (device) {
    // O_DIRECT writes reach the device before the node answers.
    const written = after.one("pocket_nvme_device_written_bytes_total") - before.one("pocket_nvme_device_written_bytes_total");
    expect(written).toBeGreaterThanOrEqual(size);
  } else {
    expect(after.find("pocket_nvme_device_written_bytes_total")).toHaveLength(0);
  }
  const dram = await scrape(http("dram-0"));
  expect(dram.one("pocket_node_tier_info", { tier: "dram" })).toBe(1);
  expect(dram.find("pocket_nvme_queue_depth")).toHaveLength(0);
  await j.close();
});

test("an unreadable body and an unknown operation are counted as errors; the unknown name never becomes a label", async () => {
  const node = http("dram-0");
  const control = Subjects.nodeControl("dram-0");
  const before = await scrape(node);
  // Sent as the controller (the only one, with shards, that may publish on a node's control subjects).
  const short = await t.inspect.request(`${control}.node.stats`, new Uint8Array([1, 2]), { timeout: 5_000 });
  expect(short.headers?.get(ErrorHeaders.code)).toBe("InvalidArgument");
  const unknown = await t.inspect.request(`${control}.no.such.operation`, encodeBody(encodeJson({})), { timeout: 5_000 });
  expect(unknown.headers?.get(ErrorHeaders.code)).toBe("InvalidArgument");
  const after = await scrape(node);
  const errors = (operation: string): number => after.sum("pocket_request_errors_total", { operation, transport: Transport.Nats, code: "InvalidArgument" })
    - before.sum("pocket_request_errors_total", { operation, transport: Transport.Nats, code: "InvalidArgument" });
  expect(errors("node.stats")).toBe(1);
  expect(errors(UnknownOperation)).toBe(1);
  expect(after.samples.some((x) => Object.values(x.labels).some((v) => v.includes("no.such")))).toBe(false);
});

test("the controller counts decisions and effects, and knows nodes by tier and state, jobs and shards", async () => {
  const ctl = http("controller");
  const before = await scrape(ctl);
  const reg = await t.client.registerJob("metrics-ctl");
  const registered = await scrape(ctl);
  expect(registered.sum("pocket_controller_decisions_total", { kind: "job.registered" }) - before.sum("pocket_controller_decisions_total", { kind: "job.registered" })).toBe(1);
  const live = (s: typeof before): number => s.sum("pocket_controller_jobs", { state: "registered" }) + s.sum("pocket_controller_jobs", { state: "active" });
  expect(live(registered) - live(before)).toBe(1);
  const register = { operation: "job.register", transport: Transport.Nats };
  expect(registered.sum("pocket_request_duration_seconds_count", register) - before.sum("pocket_request_duration_seconds_count", register)).toBe(1);
  expect(registered.one("pocket_controller_nodes", { tier: "dram", state: "active" })).toBe(1);
  expect(registered.one("pocket_controller_nodes", { tier: "nvme", state: "active" })).toBe(1);
  expect(registered.one("pocket_controller_nodes", { tier: "dram", state: "failed" })).toBe(0);
  expect(registered.one("pocket_controller_shards", { state: "active" })).toBe(1);
  await eventually(async () => (await scrape(ctl)).sum("pocket_controller_effects_total", { kind: "job.registered", outcome: "done" })
    > before.sum("pocket_controller_effects_total", { kind: "job.registered", outcome: "done" }), 5_000, "the registration's effect counted");

  await t.client.deregisterJob(reg.token);
  const ended = await scrape(ctl);
  expect(ended.sum("pocket_controller_decisions_total", { kind: "job.deregistered" }) - before.sum("pocket_controller_decisions_total", { kind: "job.deregistered" })).toBe(1);
  expect(live(ended)).toBe(live(before));
});

test("every metric an actor exposes is in docs/metrics.md, with its type", async () => {
  const doc = fs.readFileSync(path.join(projectRoot(), "docs", "metrics.md"), "utf8");
  const families = new Map<string, string>();
  for (const name of ["controller", "s0", "dram-0", "nvme-0"]) for (const [f, type] of (await scrape(http(name))).types) families.set(f, type);
  const ours = [...families].filter(([f]) => f.startsWith("pocket_"));
  expect(ours.length).toBeGreaterThan(30);
  const missing = ours.filter(([f, type]) => !new RegExp(`\\|\\s*\`${f}\`\\s*\\|\\s*${type}\\s*\\|`).test(doc));
  expect(missing).toEqual([]);
});

describe("the HTTP endpoints", () => {
  test("/healthz and /readyz answer 200; /metrics is the text format; anything else is refused", async () => {
    const base = `http://${http("s0")}`;
    expect(await (await fetch(`${base}/healthz`)).text()).toBe("ok\n");
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await fetch(`${base}/metrics?x=1`);
    expect(metrics.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(parsePrometheusText(await metrics.text()).one("pocket_actor_info", { role: "shard", id: "s0" })).toBe(1);
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics/x`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: "DELETE" })).status).toBe(405);
    expect((await fetch(`${base}/metrics`, { method: "POST", body: "x".repeat(10) })).status).toBe(413);
    const head = await fetch(`${base}/metrics`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    // Still serving after all that.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  test("an actor process prints where its HTTP server is on its ready line", async () => {
    const config = {
      natsUrl: t.nats.url, natsCreds: t.auth.credsFile(Role.Shard, "sp"), secret: t.cluster.secret, shardId: "sp", httpPort: 0,
    };
    const p = await spawnActor("shard", "sp", config, path.join(t.cluster.dataDir, "logs"));
    try {
      const ready = JSON.parse(p.readyLine) as { http: string };
      expect(ready.http).toMatch(/^127\.0\.0\.1:\d+$/);
      expect((await fetch(`http://${ready.http}/readyz`)).status).toBe(200);
      expect((await scrape(ready.http)).one("pocket_actor_info", { role: "shard", id: "sp" })).toBe(1);
    } finally {
      await stopChild(p);
    }
  });
});

test("nats-server's monitoring answers /varz, /connz and /jsz", async () => {
  expect(t.nats.monitorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const varz = await (await fetch(`${t.nats.monitorUrl}/varz`)).json() as { server_id: string; port: number };
  expect(varz.server_id).toMatch(/^N/);
  expect(varz.port).toBe(t.nats.port);
  const connz = await (await fetch(`${t.nats.monitorUrl}/connz`)).json() as { num_connections: number };
  // The controller, the shard, two nodes, the launcher, the test's client and its inspector at least.
  expect(connz.num_connections).toBeGreaterThanOrEqual(7);
  expect((await fetch(`${t.nats.monitorUrl}/jsz`)).status).toBe(200);
});

test("/readyz is 503 while an actor is still starting (its NATS server does not answer yet), /healthz 200", async () => {
  const nats = await startNats();
  const port = await freePort();
  const readyz = (): Promise<{ status: number; body: string }> =>
    fetch(`http://127.0.0.1:${port}/readyz`).then(async (r) => ({ status: r.status, body: await r.text() }), () => ({ status: 0, body: "" }));
  // A frozen server accepts the connection and says nothing: the shard waits for it, serving its probes meanwhile.
  process.kill(nats.pid!, "SIGSTOP");
  let starting: Promise<MetadataShard> | undefined;
  try {
    starting = MetadataShard.start({ natsUrl: nats.url, secret: t.cluster.secret, shardId: "early", httpPort: port });
    await eventually(async () => (await readyz()).status === 503, 10_000, "the probe answering while the shard starts");
    expect((await readyz()).body).toBe("not ready\nstarting: the actor is starting\n");
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  } finally {
    process.kill(nats.pid!, "SIGCONT");
  }
  const shard = await starting;
  try {
    expect(shard.httpAddr).toBe(`127.0.0.1:${port}`);
    expect(await readyz()).toEqual({ status: 200, body: "ready\n" });
  } finally {
    await shard.stop();
    await nats.stop();
  }
  // Stopped: its HTTP server is gone with it.
  expect((await readyz()).status).toBe(0);
});

// Last: it takes the cluster's nats-server away and brings it back.
test("/readyz is 503 while NATS is down, and 200 again once every actor has reconnected", async () => {
  const names = ["controller", "s0", "dram-0", "nvme-0"];
  const readyz = async (name: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`http://${http(name)}/readyz`);
    return { status: res.status, body: await res.text() };
  };
  await t.nats.stop({ keepDir: true });
  for (const name of names) {
    await eventually(async () => (await readyz(name)).status === 503, 10_000, `${name} not ready`);
    expect((await readyz(name)).body).toMatch(/^not ready\nnats: /);
    expect((await fetch(`http://${http(name)}/healthz`)).status).toBe(200);
    const s = await scrape(http(name));
    expect(s.one("pocket_ready")).toBe(0);
    expect(s.one("pocket_nats_disconnects_total")).toBeGreaterThanOrEqual(1);
  }
  await t.nats.restart();
  for (const name of names) {
    await eventually(async () => (await readyz(name)).status === 200, 20_000, `${name} ready again`);
    const s = await scrape(http(name));
    expect(s.one("pocket_ready")).toBe(1);
    expect(s.one("pocket_nats_reconnects_total")).toBeGreaterThanOrEqual(1);
  }
}, 60_000);
