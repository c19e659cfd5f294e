import net from "node:net";
import { ErrorCode } from "../../schemas/errors";
import { encodeFrame, FrameDecoder, FrameKind } from "../../bus/frame";
import { newTransportIdentity, signHello, TransportAuth, TransportHello, type HelloRequest } from "../../bus/handshake";
import { startTestCluster, type TestCluster } from "../harness/cluster";
import { generateCase, type GenContext, type TcpCase, type TcpEndpoint } from "../fuzz/generate";
import { judgeReply, judgeTcpSession } from "../fuzz/oracle";
import { defaultFuzzOptions, runFuzz, tcpSession, type FuzzReport } from "../fuzz/run";
import { fuzzClusterOptions, openFuzzWorld, type OpenWorld } from "../fuzz/world";

/**
 * Seeded fuzzing of every direct-transport port and every NATS subject the
 * actors serve (`npm run fuzz` runs a million cases; this runs ten thousand).
 * POCKET_FUZZ_SEED picks another seed; a failure names the command that
 * replays its case alone.
 */
const seed = Number(process.env["POCKET_FUZZ_SEED"] ?? 20_250_611);
const cases = 10_000;

let t: TestCluster;
let world: OpenWorld;
beforeAll(async () => {
  t = await startTestCluster(fuzzClusterOptions);
  world = await openFuzzWorld(t);
}, 60_000);
afterAll(async () => {
  await world?.close();
  await t?.stop();
});

function failuresOf(r: FuzzReport): string[] {
  return r.failures.map((f) => `${f.kind} case ${f.index} (seed ${r.seed}): ${f.note}\n    ${f.problems.join("\n    ")}\n    replay: ${f.replay}`);
}

test(`${cases} seeded cases: replies of the right shape or typed errors, no hang, no crash, memory bounded, objects intact`, async () => {
  const report = await runFuzz(world, { ...defaultFuzzOptions, seed, cases, timeLimitMs: 50_000 });
  expect(failuresOf(report)).toEqual([]);
  expect(report.stoppedBy).toBe("cases");
  expect(report.casesRun).toBe(cases);
  // Both transports and the published subjects were fuzzed, and the servers refused most of it in typed ways.
  expect(report.kinds["tcp"]).toBeGreaterThan(cases * 0.35);
  expect(report.kinds["nats-request"]).toBeGreaterThan(cases * 0.35);
  expect(report.kinds["nats-publish"]).toBeGreaterThan(cases * 0.01);
  for (const code of [ErrorCode.InvalidArgument, ErrorCode.Unauthorized, ErrorCode.TooLarge, ErrorCode.NotFound]) expect(report.codes[code]).toBeGreaterThan(0);
  // Inline actors do not expose their TCP servers' in-flight bytes: the process's own memory is what is bounded.
  expect(report.memory.collected).toBe(true);
}, 120_000);

test("a case is a function of its seed and index alone", () => {
  for (const i of [0, 1, 977, 31_337]) {
    const a = generateCase(world.ctx, seed, i);
    const b = generateCase(world.ctx, seed, i);
    expect(b).toEqual(a);
    expect(generateCase(world.ctx, seed + 1, i)).not.toEqual(a);
  }
});

describe("the oracle flags what is wrong", () => {
  const stats = { nodeId: "dram-0", tier: "dram", capacityBytes: 1, usedBytes: 0, extents: 0, jobs: 0 };
  const reply = (meta: unknown, payload?: Uint8Array) => ({ kind: "reply" as const, meta: Buffer.from(JSON.stringify(meta)), payload });
  const any = { kind: "any" } as const;

  test("wrong-shaped replies, payloads where none belong, untyped and unknown codes, replies where errors are due", () => {
    expect(judgeReply("nodeControl", "node.stats", any, reply(stats))).toBeUndefined();
    expect(judgeReply("nodeControl", "node.stats", any, reply({ ...stats, nodeId: 5 }))).toMatch(/reply schema/);
    expect(judgeReply("nodeControl", "node.stats", any, { kind: "reply", meta: Buffer.from("{nope"), payload: undefined })).toMatch(/not JSON/);
    expect(judgeReply("nodeControl", "node.stats", any, reply(stats, Buffer.from("x")))).toMatch(/payload/);
    expect(judgeReply("nodeControl", "node.stats", any, { kind: "error", code: ErrorCode.Internal, message: "boom" })).toMatch(/untyped/);
    expect(judgeReply("nodeControl", "node.stats", any, { kind: "error", code: "Oops", message: "?" })).toMatch(/not an ErrorCode/);
    const refused = { kind: "error", codes: [ErrorCode.InvalidArgument], why: "bad JSON" } as const;
    expect(judgeReply("nodeControl", "node.stats", refused, reply(stats))).toMatch(/error was due/);
    expect(judgeReply("nodeControl", "node.stats", refused, { kind: "error", code: ErrorCode.NotFound, message: "?" })).toMatch(/InvalidArgument was due/);
    expect(judgeReply("shardJob", "shard.detach", any, reply({ objects: 0, bytes: 0 }))).toMatch(/not served/);
  });

  test("a server that answers every request with a malformed reply, or hangs up silently, fails its cases", async () => {
    const liar = await liarServer();
    try {
      const at = { addr: liar.addr, key: liar.key, id: "liar" };
      const ctx: GenContext = { ...world.ctx, shard: { ...world.ctx.shard, ...at }, nodes: [{ ...world.ctx.nodes[0]!, ...at }] };
      const c = firstCase(ctx, (x) => x.rounds.length > 0 && x.outcome.kind === "open" && x.requests.length > 0);
      const lying = judgeTcpSession(c, await tcpSession(c, 5_000));
      expect(lying.join("\n")).toMatch(/reply (does not match|where an error was due)|not served/);
      liar.mode = "hang-up";
      expect(judgeTcpSession(c, await tcpSession(c, 5_000)).join("\n")).toMatch(/closed the connection/);
      liar.mode = "silent";
      expect(judgeTcpSession(c, await tcpSession(c, 500)).join("\n")).toMatch(/not answered in time/);
      const impostor = { ...c, endpoint: { ...c.endpoint, key: newTransportIdentity("liar").publicKey } };
      liar.mode = "lie";
      expect(judgeTcpSession(impostor, await tcpSession(impostor, 5_000)).join("\n")).toMatch(/hello reply: .*signature/);
    } finally {
      liar.server.close();
    }
  });
});

/** The first TCP case of the seed (against `ctx`) that `want` accepts. */
function firstCase(ctx: GenContext, want: (c: TcpCase) => boolean): TcpCase {
  for (let i = 0; i < 10_000; i++) {
    const c = generateCase(ctx, seed, i);
    if (c.kind === "tcp" && want(c)) return c;
  }
  throw new Error("no such case in the first 10,000");
}

/** A direct-transport server that goes through the handshake, then answers every request with `{"bogus":true}` (or hangs up, or says nothing). */
async function liarServer(): Promise<{ server: net.Server; addr: string; key: string; mode: "lie" | "hang-up" | "silent" }> {
  const identity = newTransportIdentity("liar");
  const state = { mode: "lie" as "lie" | "hang-up" | "silent" };
  const server = net.createServer((socket) => {
    const decoder = new FrameDecoder(1 << 20);
    socket.on("error", () => socket.destroy());
    socket.on("data", (d: Buffer) => {
      for (const f of decoder.push(d)) {
        if (f.name === TransportHello.name) {
          const hello = JSON.parse(Buffer.from(f.meta).toString()) as HelloRequest;
          socket.write(encodeFrame(FrameKind.Reply, f.requestId, "", Buffer.from(JSON.stringify(signHello(identity, hello.nonce))))[0]);
        } else if (f.name === TransportAuth.name) {
          socket.write(encodeFrame(FrameKind.Reply, f.requestId, "", Buffer.from("{}"))[0]);
        } else if (state.mode === "lie") {
          socket.write(encodeFrame(FrameKind.Reply, f.requestId, "", Buffer.from("{\"bogus\":true}"))[0]);
        } else if (state.mode === "hang-up") {
          socket.end();
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const endpoint: Pick<TcpEndpoint, "addr" | "key"> = { addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, key: identity.publicKey };
  return Object.assign(state, { server, ...endpoint });
}
