import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes, X509Certificate } from "node:crypto";
import { NodeUnavailableError } from "../../schemas/errors";
import { ShardOps } from "../../schemas/operations";
import { NatsCaller } from "../../bus/nats-rpc";
import { Subjects } from "../../bus/subjects";
import { ConnectFailedError, parseAddr, TcpPool } from "../../bus/tcp-client";
import { ClientTransport, PocketClient, tlsCaFromEnv } from "../../client/pocket";
import { ClusterTls, opensslBinary } from "../../deploy/tls";
import { TcpProxy } from "../harness/proxy";
import { Echo, echoServer, goodToken } from "../harness/echo";
import { connectJob, eventually, patternBytes, Role, startTestCluster, type TestCluster, type TestJob } from "../harness/cluster";

/**
 * TLS on both transports: the cluster's own CA and server certificate
 * (`ClusterTls`), nats-server and every direct-transport port serving it, and
 * clients that verify it. What crosses the wire is neither the token nor the
 * data, and a client without the CA cannot connect at all.
 */

const KiB = 1024;
const MiB = 1024 * KiB;



function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Whether `wire` holds any of `needles`. */
function carries(wire: Buffer, needles: readonly Buffer[]): boolean {
  return needles.some((n) => wire.includes(n));
}

/** 32-byte slices of `bytes` at eight places: random data, so none appears in ciphertext by chance. */
function slicesOf(bytes: Buffer): Buffer[] {
  return Array.from({ length: 8 }, (_, i) => {
    const at = Math.floor(((bytes.byteLength - 32) * i) / 7);
    return bytes.subarray(at, at + 32);
  });
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  const r = await p.then(() => undefined, (e: unknown) => e);
  if (!(r instanceof Error)) throw new Error("expected a rejection");
  return r;
}

describe("ClusterTls", () => {
  let authDir: string;
  beforeAll(() => { authDir = tempDir("pocket-tls-auth-"); });
  afterAll(() => fs.rmSync(authDir, { recursive: true, force: true }));

  test("a CA and a server certificate it signed, naming 127.0.0.1 and localhost, every file 0600 in tls/", () => {
    const tls = ClusterTls.open(authDir);
    expect(tls.dir).toBe(path.join(authDir, "tls"));
    expect(fs.statSync(tls.dir).mode & 0o777).toBe(0o700);
    const files = fs.readdirSync(tls.dir).sort();
    expect(files).toEqual(["ca.key", "ca.pem", "server.key", "server.pem"]);
    for (const f of files) expect(fs.statSync(path.join(tls.dir, f)).mode & 0o777).toBe(0o600);
    const ca = new X509Certificate(tls.ca());
    const cert = new X509Certificate(tls.cert());
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe("ec");
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(cert.checkHost("localhost")).toBe("localhost");
    expect(cert.checkIP("10.9.8.7")).toBeUndefined();
  });

  test("opening it again reuses it; another host gets a new certificate from the same CA, naming the old hosts too", () => {
    const first = ClusterTls.open(authDir);
    const cert = first.cert();
    const caKey = fs.readFileSync(path.join(first.dir, "ca.key"));
    expect(ClusterTls.open(authDir).cert()).toBe(cert);
    const more = ClusterTls.open(authDir, { hosts: ["10.9.8.7", "pocket.example"] });
    expect(more.cert()).not.toBe(cert);
    const renewed = new X509Certificate(more.cert());
    expect(renewed.verify(new X509Certificate(more.ca()).publicKey)).toBe(true);
    for (const ip of ["127.0.0.1", "10.9.8.7"]) expect(renewed.checkIP(ip)).toBe(ip);
    for (const host of ["localhost", "pocket.example"]) expect(renewed.checkHost(host)).toBe(host);
    expect(fs.readFileSync(path.join(first.dir, "ca.key")).equals(caKey)).toBe(true);
    // Without the extra hosts, nothing changes: they stay named.
    expect(ClusterTls.open(authDir).cert()).toBe(more.cert());
    expect(() => ClusterTls.open(authDir, { hosts: ["bad host,DNS:evil"] })).toThrow(/neither an IP address nor a DNS name/);
  });

  test("without openssl it says how to install it", () => {
    expect(opensslBinary()).toMatch(/openssl$/);
    expect(() => opensslBinary({ PATH: path.join(authDir, "no-such-dir") })).toThrow(/apt-get install openssl/);
  });

  test("tlsCaFromEnv reads the file POCKET_TLS_CA names", () => {
    const tls = ClusterTls.open(authDir);
    expect(tlsCaFromEnv({ POCKET_TLS_CA: tls.caFile })).toBe(tls.ca());
    expect(tlsCaFromEnv({})).toBeUndefined();
  });
});

describe("the direct transport over TLS", () => {
  let tls: ClusterTls;
  let other: ClusterTls;
  const dirs: string[] = [];
  beforeAll(() => {
    dirs.push(tempDir("pocket-tls-a-"), tempDir("pocket-tls-b-"));
    tls = ClusterTls.open(dirs[0]!);
    other = ClusterTls.open(dirs[1]!);
  });
  afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

  test("a client with the CA: byte-exact; without it, with another CA, or in plain TCP: refused, saying why", async () => {
    const { server, peer } = await echoServer({ tls: { cert: tls.cert(), key: tls.key() } });
    const pools: TcpPool[] = [];
    const pool = (options: ConstructorParameters<typeof TcpPool>[0]): TcpPool => {
      const p = new TcpPool({ connectTimeoutMs: 3_000, ...options });
      pools.push(p);
      return p;
    };
    try {
      const payload = randomBytes(MiB);
      const r = await pool({ tls: { ca: tls.ca() } }).caller(server.address, peer, goodToken).call(Echo, { n: 1 }, { payload });
      expect(r.reply).toEqual({ n: 1, bytes: MiB });
      expect(Buffer.from(r.payload!).equals(payload)).toBe(true);

      const wrongCa = await rejection(pool({ tls: { ca: other.ca() } }).caller(server.address, peer, goodToken).call(Echo, { n: 2 }));
      expect(wrongCa).toBeInstanceOf(ConnectFailedError);
      expect(wrongCa.message).toMatch(/TLS: the server's certificate does not verify/);

      const plain = await rejection(pool({}).caller(server.address, peer, goodToken).call(Echo, { n: 3 }));
      expect(plain).toBeInstanceOf(ConnectFailedError);
      expect(plain.message).toMatch(/TLS/);
      expect(server.stats.protocolErrors).toBeGreaterThanOrEqual(2);
    } finally {
      for (const p of pools) p.close();
      await server.close();
    }
  });

  test("a TLS client to a plain port, and a certificate that does not name the address's host, are refused", async () => {
    const plain = await echoServer();
    // 127.0.0.2 is loopback too, but the certificate names only 127.0.0.1 and localhost.
    const elsewhere = await echoServer({ tls: { cert: tls.cert(), key: tls.key() }, host: "127.0.0.2" });
    const pool = new TcpPool({ connectTimeoutMs: 3_000, tls: { ca: tls.ca() } });
    try {
      const toPlain = await rejection(pool.caller(plain.server.address, plain.peer, goodToken).call(Echo, { n: 1 }));
      expect(toPlain).toBeInstanceOf(ConnectFailedError);
      expect(toPlain.message).toMatch(/TLS handshake failed|TLS/);
      const misnamed = await rejection(pool.caller(elsewhere.server.address, elsewhere.peer, goodToken).call(Echo, { n: 2 }));
      expect(misnamed).toBeInstanceOf(ConnectFailedError);
      expect(misnamed.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
    } finally {
      pool.close();
      await plain.server.close();
      await elsewhere.server.close();
    }
  });

  test("on the wire: plain TCP carries the token and the payload as they are; TLS carries neither", async () => {
    const payload = randomBytes(256 * KiB);
    for (const secure of [false, true]) {
      const { server, peer } = await echoServer(secure ? { tls: { cert: tls.cert(), key: tls.key() } } : {});
      const proxy = await TcpProxy.listen({ record: true });
      const [host, port] = server.address.split(":") as [string, string];
      proxy.target = { host, port: Number(port) };
      const pool = new TcpPool(secure ? { tls: { ca: tls.ca() } } : {});
      try {
        const r = await pool.caller(proxy.addr, peer, goodToken).call(Echo, { n: 1 }, { payload });
        expect(Buffer.from(r.payload!).equals(payload)).toBe(true);
        const wire = proxy.wire;
        expect(wire.byteLength).toBeGreaterThan(2 * payload.byteLength);
        expect(wire.includes(goodToken)).toBe(!secure);
        expect(carries(wire, slicesOf(payload))).toBe(!secure);
      } finally {
        pool.close();
        await proxy.close();
        await server.close();
      }
    }
  });
});

describe("a cluster with tls: true", () => {
  let t: TestCluster;
  let proxy: TcpProxy;
  const jobs: TestJob[] = [];

  beforeAll(async () => {
    t = await startTestCluster({ tls: true, shards: 1, dram: 0, minNodes: 1, maxNodes: 1 });
    proxy = await TcpProxy.listen({ record: true });
    // The only node, behind the proxy: every byte of every extent crosses it.
    const { listen } = await t.cluster.addNode("dram-tls", 256 * MiB, { advertiseAddr: proxy.addr });
    proxy.target = parseAddr(listen);
    await eventually(async () => (await t.client.listNodes()).some((n) => n.nodeId === "dram-tls" && n.state === "active"), 10_000, "the node active");
  });

  afterAll(async () => {
    for (const j of jobs) await j.close();
    await t?.stop();
    await proxy?.close();
  });

  test("put and get are byte-exact over both transports", async () => {
    for (const transport of [ClientTransport.Auto, ClientTransport.Nats]) {
      const j = await connectJob(t, transport, `tls-${transport}`);
      jobs.push(j);
      for (const [i, size] of [0, 1000, 4096, 4097, 2 * MiB + 123].entries()) {
        const data = patternBytes(size, 40 + i);
        await j.job.put(`obj/${size}`, data);
        expect((await j.job.get(`obj/${size}`)).equals(data)).toBe(true);
      }
    }
  });

  test("the node's wire carries neither the token nor the object's bytes", async () => {
    const j = await connectJob(t, ClientTransport.Auto, "tls-wire");
    jobs.push(j);
    const data = randomBytes(3 * MiB);
    const before = proxy.chunks.length;
    await j.job.put("secret", data);
    expect((await j.job.get("secret")).equals(data)).toBe(true);
    const wire = Buffer.concat(proxy.chunks.slice(before));
    // Both ways, the object crossed this proxy: it is on the wire, encrypted.
    expect(wire.byteLength).toBeGreaterThan(2 * data.byteLength);
    expect(wire.includes(j.token)).toBe(false);
    expect(wire.includes(j.token.split(".").at(-1)!)).toBe(false);
    expect(carries(wire, slicesOf(data))).toBe(false);
  });

  test("a client without the cluster's CA, or with another's, cannot connect: NodeUnavailable, saying it is the certificate", async () => {
    const stranger = ClusterTls.open(tempDir("pocket-tls-stranger-"));
    try {
      for (const tlsCa of [undefined, stranger.ca()]) {
        const e = await rejection(PocketClient.connect({ servers: t.nats.url, credentials: t.auth.credentials(Role.Driver, "no-ca"), ...(tlsCa ? { tlsCa } : {}) }));
        expect(e).toBeInstanceOf(NodeUnavailableError);
        expect(e.message).toMatch(/TLS: the server's certificate does not verify/);
        expect(e.message).toMatch(/POCKET_TLS_CA/);
      }
    } finally {
      fs.rmSync(path.dirname(stranger.dir), { recursive: true, force: true });
    }
  });

  test("a plain-TCP client to the shard's and the node's TLS ports is refused", async () => {
    const j = await connectJob(t, ClientTransport.Auto, "tls-plain");
    jobs.push(j);
    await j.job.put("x", patternBytes(8 * KiB, 7));
    const shard = await j.client.shardInfo(j.job.shardId, j.job.jobId);
    const lookup = (await j.client.callShard(j.job, ShardOps.objectLookup, { token: j.token, path: "x" })).reply.extents[0]!;
    const pool = new TcpPool({ connectTimeoutMs: 3_000 });
    try {
      for (const [addr, peer] of [[shard.addr, { id: shard.shardId, key: shard.key }], [lookup.addr, { id: lookup.nodeId, key: lookup.key! }]] as const) {
        const e = await rejection(pool.caller(addr, peer, j.token).call(ShardOps.info, {}));
        expect(e).toBeInstanceOf(ConnectFailedError);
        expect(e.message).toMatch(/TLS/);
      }
    } finally {
      pool.close();
    }
  });
});

describe("moving extents between nodes of a cluster with tls: true", () => {
  let t: TestCluster;
  let j: TestJob;

  beforeAll(async () => {
    t = await startTestCluster({ tls: true, shards: 1, dram: 0, minNodes: 2, maxNodes: 2 });
    for (const nodeId of ["dram-from", "dram-to"]) await t.cluster.addNode(nodeId, 256 * MiB);
    await eventually(async () => (await t.client.listNodes()).filter((n) => n.state === "active").length === 2, 10_000, "both nodes active");
    j = await connectJob(t, ClientTransport.Auto, "tls-move");
  });

  afterAll(async () => {
    await j?.close();
    await t?.stop();
  });

  test("a draining node sends its extents to the other over TLS, verifying it with the cluster's CA", async () => {
    const data = patternBytes(3 * MiB + 77, 61);
    await j.job.put("move", data);
    const onFrom = (await j.client.callShard(j.job, ShardOps.objectLookup, { token: j.token, path: "move" })).reply.extents.filter((r) => r.nodeId === "dram-from");
    expect(onFrom.length).toBeGreaterThan(0);
    const moved = (await new NatsCaller(t.inspect, Subjects.shardControl(j.job.shardId)).call(ShardOps.migrate, { nodeId: "dram-from" })).reply;
    expect(moved).toMatchObject({ failed: 0, bytes: onFrom.reduce((s, r) => s + r.length, 0) });
    expect(moved.directBytes).toBe(moved.bytes);
    const layout = (await j.client.callShard(j.job, ShardOps.objectLookup, { token: j.token, path: "move" })).reply.extents;
    expect(layout.every((r) => r.nodeId === "dram-to")).toBe(true);
    expect((await j.job.get("move")).equals(data)).toBe(true);
  });
});
