import net from "node:net";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode } from "../../schemas/errors";
import { ControllerOps, NodeOps, ShardOps, type ExtentRef } from "../../schemas/operations";
import { decodeJson, encodeBody, encodeJson } from "../../bus/body";
import { encodeFrame, FrameDecoder, FrameKind, type Frame } from "../../bus/frame";
import { helloFrameBytesMax, newHello, TransportAuth, TransportHello, verifyHello } from "../../bus/handshake";
import { ControllerCaller, NatsCaller } from "../../bus/nats-rpc";
import { ErrorHeaders, Subjects } from "../../bus/subjects";
import type { RegisteredJob } from "../../client/pocket";
import { eventually, patternBytes, Role, startTestCluster, type TestCluster } from "../harness/cluster";
import { BusProbe } from "../harness/bus";

let t: TestCluster;
let reg: RegisteredJob;
/** The job's lambdas' connection: it may publish on the job's subjects. */
let lambda: BusProbe;
/** A job driver's connection: it may publish on the controller's driver subjects. */
let driver: BusProbe;
/** One extent of `small`: the node's address and key, and something cheap to read. */
let small: ExtentRef;
const kept = patternBytes(2 * 1024 * 1024 + 5, 3);
const smallBytes = patternBytes(5000, 4);

beforeAll(async () => {
  t = await startTestCluster({ shards: 1, dram: 1 });
  reg = await t.client.registerJob("malformed");
  await t.client.job(reg.token).put("kept", kept);
  await t.client.job(reg.token).put("small", smallBytes);
  lambda = await BusProbe.connect(t.nats.url, reg.credentials, "malformed-lambda");
  driver = await BusProbe.connect(t.nats.url, t.auth.credentials(Role.Driver, "malformed"), "malformed-driver");
  const shard = new NatsCaller(lambda.nc, Subjects.shardJob(reg.shardId, reg.jobId));
  small = (await shard.call(ShardOps.objectLookup, { token: reg.token, path: "small" })).reply.extents[0]!;
});
afterAll(async () => {
  await lambda?.close();
  await driver?.close();
  await t?.stop();
});

async function stillServing(): Promise<void> {
  expect((await t.client.job(reg.token).get("kept")).equals(kept)).toBe(true);
  await t.client.job(reg.token).put("after", "ok");
  // Only the node the test started has joined (launch requests of the controller are listed as launched).
  expect((await t.client.listNodes()).filter((n) => !n.launched).length).toBe(1);
}

describe("NATS subjects", () => {
  async function raw(nc: NatsConnection, subject: string, data: Uint8Array): Promise<string | undefined> {
    const msg = await nc.request(subject, data, { timeout: 5000 });
    return msg.headers?.get(ErrorHeaders.code);
  }
  const lookup = (): string => `${Subjects.shardJob(reg.shardId, reg.jobId)}.${ShardOps.objectLookup.name}`;
  const register = `${Subjects.controllerDriver}.${ControllerOps.jobRegister.name}`;

  test("garbage, truncated and non-JSON bodies get InvalidArgument", async () => {
    expect(await raw(lambda.nc, lookup(), new Uint8Array([1, 2]))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(lambda.nc, lookup(), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(lambda.nc, lookup(), encodeBody(Buffer.from("{not json")))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(lambda.nc, lookup(), Buffer.from("hello world, this is not a frame"))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(driver.nc, register, new Uint8Array(0))).toBe(ErrorCode.InvalidArgument);
    await stillServing();
  });

  test("schema-invalid requests and unknown operations get InvalidArgument", async () => {
    const token = reg.token;
    const bad: unknown[] = [
      {}, { token, path: 42 }, { token, path: "x", extra: true }, [], null, "string", { token, path: "x".repeat(5000) },
    ];
    for (const b of bad) expect(await raw(lambda.nc, lookup(), encodeBody(encodeJson(b)))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(lambda.nc, `${Subjects.shardJob(reg.shardId, reg.jobId)}.no.such.op`, encodeBody(encodeJson({})))).toBe(ErrorCode.InvalidArgument);
    // A payload on an operation that takes none.
    expect(await raw(lambda.nc, lookup(), encodeBody(encodeJson({ token, path: "kept" }), Buffer.from("junk")))).toBe(ErrorCode.InvalidArgument);
    const ctl = new ControllerCaller(driver.nc);
    await expect(ctl.call(ControllerOps.jobRegister, { name: "" })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    await expect(ctl.call(ControllerOps.jobRegister, { name: "x", hints: { lambdas: -1 } })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    await stillServing();
  });

  test("clients may not publish heartbeats or usage at all", async () => {
    const operator = await BusProbe.connect(t.nats.url, t.auth.credentials(Role.Operator, "malformed"), "malformed-operator");
    try {
      for (const p of [lambda, driver, operator]) {
        await p.expectPublishRefused(Subjects.nodeHeartbeat("evil"), Buffer.from("{]"));
        await p.expectPublishRefused(Subjects.shardHeartbeat("evil"), encodeJson({ shardId: 5 }));
        await p.expectPublishRefused(Subjects.shardUsage("evil"), encodeJson({ shardId: "evil", jobs: "all" }));
      }
    } finally {
      await operator.close();
    }
    await stillServing();
  });

  test("garbage heartbeats and usage from components' credentials are dropped", async () => {
    // A node's and a shard's credential may publish on their own subjects; what they send there is checked all the same.
    const node = await BusProbe.connect(t.nats.url, t.auth.credentials(Role.Node, "evil"), "evil-node");
    const shard = await BusProbe.connect(t.nats.url, t.auth.credentials(Role.Shard, "evil"), "evil-shard");
    // What the controller receives on those subjects, seen through its own identity.
    const seen = { count: 0 };
    const count = { callback: (err: Error | null): void => { if (!err) seen.count++; } };
    const taps = [t.inspect.subscribe(Subjects.nodeHeartbeat("evil"), count), t.inspect.subscribe(Subjects.shardHeartbeat("evil"), count), t.inspect.subscribe(Subjects.shardUsage("evil"), count)];
    await t.inspect.flush();
    try {
      const h = headers();
      h.set("x", "y");
      node.nc.publish(Subjects.nodeHeartbeat("evil"), Buffer.from("{]"));
      node.nc.publish(Subjects.nodeHeartbeat("evil"), encodeJson({ nodeId: "evil", tier: "dram" }), { headers: h });
      shard.nc.publish(Subjects.shardHeartbeat("evil"), encodeJson({ shardId: 5 }));
      shard.nc.publish(Subjects.shardUsage("evil"), encodeJson({ shardId: "evil", jobs: "all" }));
      await node.nc.flush();
      await shard.nc.flush();
      // They were delivered (the server let them through), so the controller had them before the lists below.
      await eventually(() => seen.count === 4, 5_000, "the four messages delivered");
      expect(node.refused("publish", Subjects.nodeHeartbeat("evil")) || shard.refused("publish", Subjects.shardHeartbeat("evil"))).toBe(false);
    } finally {
      for (const tap of taps) tap.unsubscribe();
      await node.close();
      await shard.close();
    }
    expect((await t.client.listNodes()).map((n) => n.nodeId)).not.toContain("evil");
    expect((await t.client.listShards()).map((s) => s.shardId)).not.toContain("evil");
    await stillServing();
  });
});

describe("direct TCP port", () => {
  /** A hello frame, and the nonce the reply must sign. */
  function hello(): { frame: Buffer; nonce: string } {
    const h = newHello();
    const [head] = encodeFrame(FrameKind.Request, 1, TransportHello.name, encodeJson(h));
    return { frame: head, nonce: h.nonce };
  }
  const auth = (token: string, id = 2): Buffer => encodeFrame(FrameKind.Request, id, TransportAuth.name, encodeJson({ token }))[0];

  /**
   * Opens a raw socket to the node. With `handshake: "hello"`, says hello and
   * checks the node's signed reply before sending `chunks`; with "auth", then
   * also authenticates with the job's token and waits for the node's `{}`.
   * Collects the frames that follow until the server closes the connection or
   * `want` came.
   */
  function session(chunks: Buffer[], options: { handshake?: "hello" | "auth"; want?: number; endAfter?: boolean } = {}): Promise<{ frames: Frame[]; closed: boolean }> {
    const want = options.want ?? Infinity;
    return new Promise((resolve, reject) => {
      const [host, port] = small.addr.split(":");
      const s = net.connect({ host: host!, port: Number(port) });
      const dec = new FrameDecoder(64 * 1024 * 1024);
      const frames: Frame[] = [];
      const greeting = options.handshake ? hello() : undefined;
      /** Handshake answers still to come: the hello's, then the auth's. */
      let awaited = options.handshake === "auth" ? 2 : options.handshake === "hello" ? 1 : 0;
      let done = false;
      const finish = (closed: boolean): void => {
        if (done) return;
        done = true;
        s.destroy();
        resolve({ frames, closed });
      };
      const refuse = (why: string, f: Frame): void => {
        done = true;
        s.destroy();
        reject(new Error(`${why}: ${JSON.stringify(decodeJson(f.meta))}`));
      };
      const send = (): void => {
        for (const c of chunks) s.write(c);
        if (options.endAfter) s.end();
      };
      s.on("connect", () => {
        if (greeting) s.write(greeting.frame);
        else send();
      });
      s.on("data", (d: Buffer) => {
        for (const f of dec.push(d)) {
          if (awaited === 0) {
            frames.push(f);
            continue;
          }
          if (f.requestId === 1) {
            const check = verifyHello({ id: small.nodeId, key: small.key }, greeting!.nonce, decodeJson(f.meta));
            if (f.kind !== FrameKind.Reply || !check.ok) return refuse("the node did not prove its identity", f);
            awaited--;
            if (awaited === 0) send();
            else s.write(auth(reg.token));
          } else {
            if (f.kind !== FrameKind.Reply || f.requestId !== 2) return refuse("the node did not accept the token", f);
            awaited--;
            send();
          }
        }
        if (frames.length >= want) finish(false);
      });
      s.on("close", () => finish(true));
      s.on("error", (e) => (done ? undefined : reject(e)));
    });
  }
  const errorOf = (f: Frame) => decodeJson(f.meta) as { code: string; message: string };
  const request = (id: number, name: string, req: unknown, payload?: Uint8Array): Buffer => {
    const [head, body] = encodeFrame(FrameKind.Request, id, name, encodeJson(req), payload);
    return body ? Buffer.concat([head, body]) : head;
  };
  const read = (id: number): Buffer => request(id, NodeOps.extentRead.name, { token: reg.token, extentId: small.extentId });

  describe("before authentication", () => {
    test("garbage bytes: an error frame, then the connection closes", async () => {
      const r = await session([Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]);
      expect(r.closed).toBe(true);
      expect(r.frames).toHaveLength(1);
      expect(r.frames[0]!.kind).toBe(FrameKind.Error);
      expect(errorOf(r.frames[0]!).code).toBe(ErrorCode.TooLarge);
      await stillServing();
    });

    test("a frame longer than a hello or an auth may be is refused before any of it is read", async () => {
      for (const handshake of [undefined, "hello"] as const) {
        for (const length of [helloFrameBytesMax + 1, 0xffffffff]) {
          const head = Buffer.alloc(8);
          head.writeUInt32BE(length, 0);
          const r = await session([head], handshake ? { handshake } : {});
          expect(r.closed).toBe(true);
          expect(errorOf(r.frames[0]!).code).toBe(ErrorCode.TooLarge);
        }
      }
      await stillServing();
    });

    test("any other request, or a malformed hello, closes the connection", async () => {
      const cases: Array<[Buffer, ErrorCode]> = [
        [read(1), ErrorCode.Unauthorized],
        [auth(reg.token, 1), ErrorCode.Unauthorized],
        [request(1, TransportHello.name, { v: 2, nonce: "x" }), ErrorCode.InvalidArgument],
        [request(1, TransportHello.name, newHello(), Buffer.from("payload")), ErrorCode.InvalidArgument],
        // The one-round hello, with the token in it: refused, unsigned.
        [request(1, TransportHello.name, { ...newHello(), token: reg.token }), ErrorCode.InvalidArgument],
      ];
      for (const [frame, code] of cases) {
        const r = await session([frame, read(2)]);
        expect(r.closed).toBe(true);
        expect(r.frames).toHaveLength(1);
        expect(r.frames[0]!.kind).toBe(FrameKind.Error);
        expect(errorOf(r.frames[0]!).code).toBe(code);
      }
      await stillServing();
    });

    test("after the hello: a bad token, a malformed auth, or a request instead of the auth closes the connection", async () => {
      const cases: Array<[Buffer[], ErrorCode]> = [
        [[auth("forged")], ErrorCode.Unauthorized],
        [[auth(`${reg.token.split(".")[0]}.${"A".repeat(43)}`)], ErrorCode.Unauthorized],
        [[request(2, TransportAuth.name, { token: reg.token, extra: 1 })], ErrorCode.InvalidArgument],
        [[request(2, TransportAuth.name, { token: reg.token }, Buffer.from("payload"))], ErrorCode.InvalidArgument],
        [[read(2)], ErrorCode.Unauthorized],
        [[request(2, TransportHello.name, newHello())], ErrorCode.Unauthorized],
        // A request pipelined behind the auth, before its answer.
        [[Buffer.concat([auth(reg.token), read(3)])], ErrorCode.Unauthorized],
      ];
      for (const [frames, code] of cases) {
        const r = await session(frames, { handshake: "hello" });
        expect(r.closed).toBe(true);
        expect(r.frames).toHaveLength(1);
        expect(r.frames[0]!.kind).toBe(FrameKind.Error);
        expect(errorOf(r.frames[0]!).code).toBe(code);
      }
      await stillServing();
    });
  });

  describe("after authentication", () => {
    test("an oversized length field is refused before any of it is read", async () => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(0xffffffff, 0);
      const r = await session([head], { handshake: "auth" });
      expect(r.closed).toBe(true);
      expect(errorOf(r.frames[0]!).code).toBe(ErrorCode.TooLarge);
      await stillServing();
    });

    test("an unknown frame kind or a reply frame from a client closes the connection", async () => {
      const f = read(2);
      f.writeUInt8(9, 4);
      const r = await session([f], { handshake: "auth" });
      expect(r.closed).toBe(true);
      expect(errorOf(r.frames[0]!).code).toBe(ErrorCode.InvalidArgument);
      const g = read(2);
      g.writeUInt8(FrameKind.Reply, 4);
      expect((await session([g], { handshake: "auth" })).closed).toBe(true);
      await stillServing();
    });

    test("a truncated frame followed by a hang-up leaves the server serving", async () => {
      const f = request(7, NodeOps.extentWrite.name, { token: reg.token, extentId: "t1" }, patternBytes(100_000, 1));
      const r = await session([f.subarray(0, 5000)], { handshake: "auth", endAfter: true });
      expect(r.frames).toHaveLength(0);
      await stillServing();
    });

    test("a burst far beyond the in-flight bound is answered in full, in one connection", async () => {
      const burst = Buffer.concat(Array.from({ length: 500 }, (_, i) => read(i + 2)));
      const r = await session([burst], { handshake: "auth", want: 500 });
      expect(r.closed).toBe(false);
      expect(new Set(r.frames.map((f) => f.requestId)).size).toBe(500);
      expect(r.frames.every((f) => f.kind === FrameKind.Reply && Buffer.from(f.payload!).equals(smallBytes))).toBe(true);
    });

    test("schema-invalid requests get an error reply and the connection stays usable", async () => {
      const token = reg.token;
      const frames = [
        request(2, NodeOps.extentRead.name, { token, extentId: 5 }),
        request(3, "no.such.op", {}),
        request(4, NodeOps.extentRead.name, { token, extentId: "../../etc/passwd" }),
        request(5, NodeOps.extentWrite.name, { token: "forged", extentId: "abc" }, Buffer.from("x")),
        // Cluster-only operations are not served on this port.
        request(6, NodeOps.stats.name, {}),
        request(7, NodeOps.extentWrite.name, { token, extentId: "empty" }),
        read(8),
      ];
      const r = await session(frames, { handshake: "auth", want: frames.length });
      expect(r.closed).toBe(false);
      const byId = new Map(r.frames.map((f) => [f.requestId, f]));
      expect(errorOf(byId.get(2)!).code).toBe(ErrorCode.InvalidArgument);
      expect(errorOf(byId.get(3)!).code).toBe(ErrorCode.InvalidArgument);
      expect(errorOf(byId.get(4)!).code).toBe(ErrorCode.InvalidArgument);
      expect(errorOf(byId.get(5)!).code).toBe(ErrorCode.Unauthorized);
      expect(errorOf(byId.get(6)!).code).toBe(ErrorCode.InvalidArgument);
      expect(errorOf(byId.get(7)!).code).toBe(ErrorCode.InvalidArgument); // an empty extent would cost memory and count no bytes
      expect(byId.get(8)!.kind).toBe(FrameKind.Reply);
      expect(Buffer.from(byId.get(8)!.payload!).equals(smallBytes)).toBe(true);
      await stillServing();
    });
  });
});
