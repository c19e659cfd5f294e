import net from "node:net";
import { headers } from "@nats-io/transport-node";
import { ErrorCode } from "../../schemas/errors";
import { ControllerOps, NodeOps, ShardOps } from "../../schemas/operations";
import { decodeJson, encodeBody, encodeJson } from "../../bus/body";
import { encodeFrame, FrameDecoder, FrameKind, type Frame } from "../../bus/frame";
import { NatsCaller } from "../../bus/nats-rpc";
import { ErrorHeaders, Subjects } from "../../bus/subjects";
import { patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";

let t: TestCluster;
let token: string;
let shardId: string;
let nodeAddr: string;
const kept = patternBytes(2 * 1024 * 1024 + 5, 3);

beforeAll(async () => {
  t = await startTestCluster({ shards: 1, dram: 1 });
  const reg = await t.client.registerJob("malformed");
  token = reg.token;
  shardId = reg.shardId;
  await t.client.job(token).put("kept", kept);
  nodeAddr = (await t.client.listNodes())[0]!.addr;
});
afterAll(async () => { await t?.stop(); });

async function stillServing(): Promise<void> {
  expect((await t.client.job(token).get("kept")).equals(kept)).toBe(true);
  await t.client.job(token).put("after", "ok");
  // Only the node the test started has joined (launch requests of the controller are listed as launched).
  expect((await t.client.listNodes()).filter((n) => !n.launched).length).toBe(1);
}

describe("NATS subjects", () => {
  async function raw(subject: string, data: Uint8Array): Promise<string | undefined> {
    const msg = await t.client.nc.request(subject, data, { timeout: 5000 });
    return msg.headers?.get(ErrorHeaders.code);
  }
  const lookup = () => `${Subjects.shard(shardId)}.${ShardOps.objectLookup.name}`;

  test("garbage, truncated and non-JSON bodies get InvalidArgument", async () => {
    expect(await raw(lookup(), new Uint8Array([1, 2]))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(lookup(), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(lookup(), encodeBody(Buffer.from("{not json")))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(lookup(), Buffer.from("hello world, this is not a frame"))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(`${Subjects.controller}.${ControllerOps.jobRegister.name}`, new Uint8Array(0))).toBe(ErrorCode.InvalidArgument);
    await stillServing();
  });

  test("schema-invalid requests and unknown operations get InvalidArgument", async () => {
    const bad: unknown[] = [
      {}, { token, path: 42 }, { token, path: "x", extra: true }, [], null, "string", { token, path: "x".repeat(5000) },
    ];
    for (const b of bad) expect(await raw(lookup(), encodeBody(encodeJson(b)))).toBe(ErrorCode.InvalidArgument);
    expect(await raw(`${Subjects.shard(shardId)}.no.such.op`, encodeBody(encodeJson({})))).toBe(ErrorCode.InvalidArgument);
    // A payload on an operation that takes none.
    expect(await raw(lookup(), encodeBody(encodeJson({ token, path: "kept" }), Buffer.from("junk")))).toBe(ErrorCode.InvalidArgument);
    const ctl = new NatsCaller(t.client.nc, Subjects.controller);
    await expect(ctl.call(ControllerOps.jobRegister, { name: "" })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    await expect(ctl.call(ControllerOps.jobRegister, { name: "x", hints: { lambdas: -1 } })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    await stillServing();
  });

  test("garbage heartbeats are ignored", async () => {
    const h = headers();
    h.set("x", "y");
    t.client.nc.publish(Subjects.nodeHeartbeat("evil"), Buffer.from("{]"));
    t.client.nc.publish(Subjects.nodeHeartbeat("evil"), encodeJson({ nodeId: "evil", tier: "dram" }), { headers: h });
    t.client.nc.publish(Subjects.shardHeartbeat("evil"), encodeJson({ shardId: 5 }));
    await t.client.nc.flush();
    expect((await t.client.listNodes()).map((n) => n.nodeId)).not.toContain("evil");
    expect((await t.client.listShards()).map((s) => s.shardId)).not.toContain("evil");
    await stillServing();
  });
});

describe("direct TCP port", () => {
  /** Opens a raw socket; collects frames until the server closes it or `want` frames came. */
  function session(chunks: Buffer[], want = Infinity, endAfter = false): Promise<{ frames: Frame[]; closed: boolean }> {
    return new Promise((resolve, reject) => {
      const [host, port] = nodeAddr.split(":");
      const s = net.connect({ host: host!, port: Number(port) });
      const dec = new FrameDecoder(64 * 1024 * 1024);
      const frames: Frame[] = [];
      let done = false;
      const finish = (closed: boolean): void => {
        if (done) return;
        done = true;
        s.destroy();
        resolve({ frames, closed });
      };
      s.on("connect", () => {
        for (const c of chunks) s.write(c);
        if (endAfter) s.end();
      });
      s.on("data", (d: Buffer) => {
        frames.push(...dec.push(d));
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

  test("garbage bytes: an error frame, then the connection closes", async () => {
    const r = await session([Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]);
    expect(r.closed).toBe(true);
    expect(r.frames).toHaveLength(1);
    expect(r.frames[0]!.kind).toBe(FrameKind.Error);
    expect(errorOf(r.frames[0]!).code).toBe(ErrorCode.TooLarge);
    await stillServing();
  });

  test("an oversized length field is refused before any of it is read", async () => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(0xffffffff, 0);
    const r = await session([head]);
    expect(r.closed).toBe(true);
    expect(errorOf(r.frames[0]!).code).toBe(ErrorCode.TooLarge);
    await stillServing();
  });

  test("an unknown frame kind or a reply frame from a client closes the connection", async () => {
    const f = request(1, NodeOps.stats.name, {});
    f.writeUInt8(9, 4);
    const r = await session([f]);
    expect(r.closed).toBe(true);
    expect(errorOf(r.frames[0]!).code).toBe(ErrorCode.InvalidArgument);
    const g = request(1, NodeOps.stats.name, {});
    g.writeUInt8(FrameKind.Reply, 4);
    expect((await session([g])).closed).toBe(true);
    await stillServing();
  });

  test("a truncated frame followed by a hang-up leaves the server serving", async () => {
    const f = request(7, NodeOps.extentWrite.name, { token, extentId: "t1" }, patternBytes(100_000, 1));
    const r = await session([f.subarray(0, 5000)], Infinity, true);
    expect(r.frames).toHaveLength(0);
    await stillServing();
  });

  test("a burst far beyond the in-flight bound is answered in full, in one connection", async () => {
    const burst = Buffer.concat(Array.from({ length: 500 }, (_, i) => request(i + 1, NodeOps.stats.name, {})));
    const r = await session([burst], 500);
    expect(r.closed).toBe(false);
    expect(new Set(r.frames.map((f) => f.requestId)).size).toBe(500);
    expect(r.frames.every((f) => f.kind === FrameKind.Reply)).toBe(true);
  });

  test("schema-invalid requests get an error reply and the connection stays usable", async () => {
    const frames = [
      request(1, NodeOps.extentRead.name, { token, extentId: 5 }),
      request(2, "no.such.op", {}),
      request(3, NodeOps.extentRead.name, { token, extentId: "../../etc/passwd" }),
      request(4, NodeOps.extentWrite.name, { token: "forged", extentId: "abc" }, Buffer.from("x")),
      request(5, NodeOps.stats.name, {}),
      request(6, NodeOps.extentWrite.name, { token, extentId: "empty" }),
    ];
    const r = await session(frames, 6);
    expect(r.closed).toBe(false);
    const byId = new Map(r.frames.map((f) => [f.requestId, f]));
    expect(errorOf(byId.get(1)!).code).toBe(ErrorCode.InvalidArgument);
    expect(errorOf(byId.get(2)!).code).toBe(ErrorCode.InvalidArgument);
    expect(errorOf(byId.get(3)!).code).toBe(ErrorCode.InvalidArgument);
    expect(errorOf(byId.get(4)!).code).toBe(ErrorCode.Unauthorized);
    expect(byId.get(5)!.kind).toBe(FrameKind.Reply);
    expect(errorOf(byId.get(6)!).code).toBe(ErrorCode.InvalidArgument); // an empty extent would cost memory and count no bytes
    expect(decodeJson(byId.get(5)!.meta)).toMatchObject({ nodeId: "dram-0" });
    await stillServing();
  });
});
