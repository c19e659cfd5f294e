import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { readEvents } from "../../bus/events";
import { connectAs } from "../../bus/nats-connect";
import { Role } from "../../bus/credentials";
import { ClusterAuth } from "../../deploy/cluster-auth";
import { ClusterTls } from "../../deploy/tls";
import { NatsServer, startNatsCluster } from "../../deploy/nats-server";
import { LocalCluster, LaunchMode, type LocalClusterOptions } from "../../deploy/local-cluster";
import { PocketClient, type ClientTransport, type PocketJob, type PocketOptions } from "../../client/pocket";

export { NatsServer, startNatsCluster, LocalCluster, LaunchMode, ClusterAuth, ClusterTls, Role };

/** A real nats-server for one test file, on a free port, with a temporary JetStream store (no authentication). */
export async function startNats(): Promise<NatsServer> {
  return NatsServer.start({ jetstream: true });
}

/**
 * A real nats-server that trusts only the identities of a fresh `ClusterAuth`
 * (as `pocket up` runs it); with `tls`, serving TLS only with a `ClusterTls`
 * made in the same directory (as `pocket up --tls` runs it).
 */
export async function startAuthNats(options: { tls?: boolean } = {}): Promise<{ nats: NatsServer; auth: ClusterAuth; tls: ClusterTls | undefined }> {
  const auth = ClusterAuth.open(fs.mkdtempSync(path.join(os.tmpdir(), "pocket-auth-")));
  const tls = options.tls ? ClusterTls.open(auth.dir) : undefined;
  const nats = await NatsServer.start({ jetstream: true, include: auth.serverConfigFile, tls: tls?.server });
  return { nats, auth, tls };
}

export interface TestCluster {
  readonly nats: NatsServer;
  readonly auth: ClusterAuth;
  /** The cluster's TLS material when started with `tls: true`. */
  readonly tls: ClusterTls | undefined;
  readonly cluster: LocalCluster;
  /** Connected as an operator (admin verbs, events); the jobs it registers get their own lambda connections. */
  readonly client: PocketClient;
  /** Connected as the controller is, for tests that look inside nodes (node stats); never what a client gets. */
  readonly inspect: NatsConnection;
  stop(): Promise<void>;
}

/**
 * nats-server + a local cluster + a connected client, for one test file.
 * Inline actors by default (fast); `mode: "process"` for kill tests; `tls:
 * true` for TLS on every connection (the client gets the CA).
 */
export async function startTestCluster(options: LocalClusterOptions = {}, client: Omit<PocketOptions, "servers"> = {}): Promise<TestCluster> {
  const { nats, auth, tls } = await startAuthNats({ tls: options.tls ?? false });
  let cluster: LocalCluster | undefined;
  try {
    // Nodes are started by the test, not by the controller, unless a test asks for the local orchestrator.
    cluster = await LocalCluster.start({
      mode: LaunchMode.Inline, heartbeatIntervalMs: 500, orchestrator: "events-only", ...options, natsUrl: nats.url, authDir: auth.dir,
    });
    const c = await PocketClient.connect({ servers: nats.url, credentials: auth.credentials(Role.Operator, "test"), ...(tls ? { tlsCa: tls.ca() } : {}), ...client });
    const inspect = await connectAs(
      { natsUrl: nats.url, natsCreds: auth.credsFile(Role.Controller, "controller"), natsTlsCa: tls?.caFile }, Role.Controller, "controller", { name: "test-inspect" },
    );
    const started = cluster;
    return {
      nats, auth, tls, cluster: started, client: c, inspect,
      async stop() {
        await c.close();
        await inspect.drain().catch(() => undefined);
        await started.stop();
        await nats.stop();
        fs.rmSync(auth.dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await cluster?.stop();
    await nats.stop();
    fs.rmSync(auth.dir, { recursive: true, force: true });
    throw e;
  }
}

/** Deterministic pseudo-random bytes (xorshift32), so a failing test can be re-run exactly. */
export function patternBytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (; i < size; i++) out[i] = (seed + i) & 0xff;
  return out;
}

/** Every event on the controller's JetStream stream so far (decisions only, or with `inputs`). */
export async function streamEvents(nc: NatsConnection, inputs = false): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  for await (const { event } of readEvents(nc, { inputs })) out.push(event);
  return out;
}

/** Polls `probe` until it returns true or the deadline passes (for state reached asynchronously, e.g. heartbeats). */
export async function eventually(probe: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface TestJob {
  readonly client: PocketClient;
  readonly job: PocketJob;
  readonly token: string;
  /** Deregisters the job and closes the client. */
  close(): Promise<void>;
}

/** A client of its own on `transport` with a freshly registered job, for suites run over both transports. */
export async function connectJob(t: TestCluster, transport: ClientTransport, name: string): Promise<TestJob> {
  // A job driver's credential: it registers the job; the job's own lambda credential carries its data.
  const client = await PocketClient.connect({
    servers: t.nats.url, transport, credentials: t.auth.credentials(Role.Driver, name), ...(t.tls ? { tlsCa: t.tls.ca() } : {}),
  });
  const { token } = await client.registerJob(name);
  return {
    client, token, job: client.job(token),
    async close() {
      await client.deregisterJob(token);
      await client.close();
    },
  };
}
