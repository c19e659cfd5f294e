import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as pause } from "node:timers/promises";
import { headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { ErrorCode, isPocketError } from "../../schemas/errors";
import { decodeBody, decodeJson, encodeBody, encodeJson } from "../../bus/body";
import { connectWithCreds } from "../../bus/nats-connect";
import { chunksHeldOf, NatsCaller, serveOnNats } from "../../bus/nats-rpc";
import { Router, Transport, WithPayload } from "../../bus/router";
import { RequestMetrics } from "../../actors/runtime/metrics";
import { mayRetry, notCarriedOut, Retry } from "../../client/retry";
import { Subjects } from "../../bus/subjects";
import { ClusterAuth, eventually, NatsServer, patternBytes, Role } from "../harness/cluster";
import { BusProbe, wiretapCredentials } from "../harness/bus";
import { Echo } from "../harness/echo";

/*
 * The chunking of long bodies over NATS, at the bus: a nats-server with a
 * 16 KiB max_payload, two node identities serving an echo operation on job
 * subjects with small bounds (one keeps idle streams for the default 30 s,
 * the other drops them soon, for the expiry tests), and two jobs' lambda
 * credentials. Chunks are written here by hand, from the protocol
 * (docs/contract.md), not with the code's own helpers; what a node holds is
 * read with `chunksHeldOf`, and what its router saw with its metrics.
 */

const KiB = 1024;
const maxPayloadBytes = 16 * KiB;
/** L: the body bytes one message carries (max_payload − 4096). */
const L = maxPayloadBytes - 4096;
/** Streams: 2 per job, 3 in all; bytes: a job's share is one largest body, and two shares fill the node. */
const limits = { streamsMax: 3, jobStreamsMax: 2, repliesMax: 1, bodyBytesMax: 256 * KiB, heldBytesMax: 512 * KiB, jobHeldBytesMax: 256 * KiB };
const nodes = { patient: "n1", impatient: "n2" } as const;
/** How soon the impatient node drops an idle stream or held reply: long enough for the steps a test takes before it. */
const impatientIdleMs = 2_000;
/** How long the impatient node keeps a stream or held reply at most, however it is continued. */
const impatientLifetimeMs = 3_000;
/** The node the requests below go to. */
let nodeId: string = nodes.patient;
const seeds = { sizes: 7, a: 11, b: 13 } as const;

let nats: NatsServer;
let auth: ClusterAuth;
const servers: NatsConnection[] = [];
const served: Subscription[] = [];
let jobA: NatsConnection;
let jobB: NatsConnection;
let wiretap: NatsConnection;
/** The echo operations the nodes have run, and what their router saw. */
let echoRuns = 0;
const metrics = new RequestMetrics();
/** Messages seen on the node's job subjects: [subject, chunk header or "", reply-chunk header or ""]. */
const seen: Array<[string, string, string]> = [];

beforeAll(async () => {
  auth = ClusterAuth.open(fs.mkdtempSync(path.join(os.tmpdir(), "pocket-chunks-auth-")));
  nats = await NatsServer.start({ jetstream: false, include: auth.serverConfigFile, maxPayloadBytes });
  const connect = (creds: string, name: string): Promise<NatsConnection> => connectWithCreds(nats.url, creds, undefined, { name, maxReconnectAttempts: 1 });
  const router = new Router().observe(metrics).on(Echo, (req, ctx) => {
    echoRuns++;
    return new WithPayload({ n: req.n, bytes: ctx.payload?.byteLength ?? 0 }, ctx.payload ?? new Uint8Array(0));
  });
  const timing = [[nodes.patient, { idleMs: 30_000, lifetimeMs: 60_000 }], [nodes.impatient, { idleMs: impatientIdleMs, lifetimeMs: impatientLifetimeMs }]] as const;
  for (const [node, expiry] of timing) {
    const nc = await connect(auth.credentials(Role.Node, node), `chunks-${node}`);
    servers.push(nc);
    served.push(serveOnNats(nc, Subjects.nodeJobs(node), router, { jobScoped: true, chunks: { ...limits, ...expiry } }));
    await nc.flush();
  }
  const expires = Date.now() + 3_600_000;
  jobA = await connect(auth.issuer.lambda("job-a", "s0", expires), "chunks-a");
  jobB = await connect(auth.issuer.lambda("job-b", "s0", expires), "chunks-b");
  wiretap = await connect(wiretapCredentials(auth), "chunks-wiretap");
  wiretap.subscribe(`${Subjects.node(nodes.patient)}.>`, {
    callback: (err, msg) => { if (!err) seen.push([msg.subject, msg.headers?.get("Pocket-Chunk") ?? "", msg.headers?.get("Pocket-Reply-Chunk") ?? ""]); },
  });
  await wiretap.flush();
}, 30_000);

afterAll(async () => {
  for (const sub of served) sub.unsubscribe();
  for (const nc of [jobA, jobB, wiretap, ...servers]) await nc?.close();
  await nats?.stop();
  if (auth) fs.rmSync(auth.dir, { recursive: true, force: true });
});

const subjectOf = (job: string): string => `${Subjects.nodeJob(nodeId, job)}.${Echo.name}`;
const echoBody = (n: number, payload: Uint8Array): Buffer => encodeBody(encodeJson({ n }), payload);
const streamId = (i: number): string => i.toString(16).padStart(32, "0");

/** Sends one request message, with `Pocket-Chunk` when given, and returns its answer. */
async function send(nc: NatsConnection, subject: string, data: Uint8Array, header?: [string, string]): Promise<Msg> {
  const h = headers();
  if (header) h.set(header[0], header[1]);
  return nc.request(subject, data, { timeout: 5_000, ...(header ? { headers: h } : {}) });
}

/** Chunk `index` of `body` cut at L, as the protocol says. */
function chunk(nc: NatsConnection, job: string, id: string, body: Uint8Array, index: number, count = Math.ceil(body.byteLength / L), total = body.byteLength): Promise<Msg> {
  return send(nc, subjectOf(job), body.subarray(index * L, Math.min(body.byteLength, (index + 1) * L)), ["Pocket-Chunk", `${id};${index};${count};${total}`]);
}

function errorOf(msg: Msg): string | undefined {
  return msg.headers?.get("Pocket-Error") || undefined;
}

function ackOf(msg: Msg): string | undefined {
  return msg.headers?.get("Pocket-Chunk-Ack") || undefined;
}

/** Sends every chunk of `body` in order; returns the answer to the last, or the first error. */
async function sendAll(nc: NatsConnection, job: string, id: string, body: Uint8Array): Promise<Msg> {
  const count = Math.ceil(body.byteLength / L);
  for (let i = 0; ; i++) {
    const answer = await chunk(nc, job, id, body, i);
    if (i === count - 1 || errorOf(answer) !== undefined) return answer;
  }
}

/** Sends every chunk of `body`, then fetches every chunk of the reply; returns the reply's body, or the error code met. */
async function callAll(nc: NatsConnection, job: string, id: string, body: Uint8Array): Promise<Buffer | string> {
  const last = await sendAll(nc, job, id, body);
  if (errorOf(last) !== undefined) return errorOf(last)!;
  const [replyId, count] = (last.headers?.get("Pocket-Reply-Chunks") ?? "").split(";");
  const parts = [Buffer.from(last.data)];
  for (let i = 1; i < Number(count ?? 1); i++) {
    const part = await send(nc, subjectOf(job), new Uint8Array(0), ["Pocket-Reply-Chunk", `${replyId};${i}`]);
    if (errorOf(part) !== undefined) return errorOf(part)!;
    parts.push(Buffer.from(part.data));
  }
  return Buffer.concat(parts);
}

/** The Timeout answers the router's metrics counted for operation `name` on NATS. */
function timeoutsOf(m: RequestMetrics, name: string): number {
  const stats = [...m.touched()].find((o) => o.operation === name && o.transport === Transport.Nats);
  return stats ? stats.errors[Object.values(ErrorCode).indexOf(ErrorCode.Timeout)]! : 0;
}

/** What the wiretap saw of one message: a whole request, a request chunk (index;count;total) or a fetch of a reply chunk (index). */
function kindOf([, c, f]: [string, string, string]): string {
  if (c !== "") return `chunk ${c.split(";").slice(1).join(";")}`;
  if (f !== "") return `fetch ${f.split(";")[1]}`;
  return "whole";
}

describe("chunked bodies through the SDK's caller", () => {
  // A body is 4 bytes, the meta {"n":<size>} (11 bytes for 5 digits) and the payload: L − 15 fits one message, L − 14 does not.
  test.each([0, 100, L - 15, L - 14, L + 1, 3 * L + 5, 200 * KiB])("a payload of %i bytes goes and comes back byte-exact", async (size) => {
    const data = patternBytes(size, seeds.sizes + size);
    const caller = new NatsCaller(jobA, Subjects.nodeJob(nodeId, "job-a"), 5_000);
    const before = seen.length;
    const r = await caller.call(Echo, { n: size }, { payload: data });
    expect(r.reply).toEqual({ n: size, bytes: size });
    expect(Buffer.from(r.payload ?? new Uint8Array(0)).equals(data)).toBe(true);
    const requestBytes = echoBody(size, data).byteLength;
    const replyBytes = encodeBody(encodeJson({ n: size, bytes: size }), data).byteLength;
    const chunks = requestBytes > L ? Math.ceil(requestBytes / L) : 0;
    const fetches = replyBytes > L ? Math.ceil(replyBytes / L) - 1 : 0;
    // One message without headers when the body fits (the hot path is unchanged); else its chunks in order, then the reply's.
    const expected = [
      ...(chunks === 0 ? ["whole"] : [...Array(chunks).keys()].map((i) => `chunk ${i};${chunks};${requestBytes}`)),
      ...[...Array(fetches).keys()].map((i) => `fetch ${i + 1}`),
    ];
    await eventually(() => seen.length - before >= expected.length, 5_000, "the wiretap seeing the call");
    expect(seen.slice(before).map(kindOf)).toEqual(expected);
    expect(seen.slice(before).every(([subject]) => subject === subjectOf("job-a"))).toBe(true);
  });

  test("a chunked request's answers: an empty acknowledgement per chunk, then the reply's first chunk with its count", async () => {
    const body = echoBody(1, patternBytes(2 * L, seeds.a));
    const count = Math.ceil(body.byteLength / L);
    const id = streamId(0xa1);
    for (let i = 0; i < count - 1; i++) {
      const ack = await chunk(jobA, "job-a", id, body, i);
      expect([ackOf(ack), ack.data.byteLength, errorOf(ack)]).toEqual([String(i), 0, undefined]);
    }
    const last = await chunk(jobA, "job-a", id, body, count - 1);
    const [replyId, replyCount, replyTotal] = (last.headers?.get("Pocket-Reply-Chunks") ?? "").split(";");
    expect(replyId).toMatch(/^[0-9a-f]{32}$/);
    expect(Number(replyCount)).toBe(Math.ceil(Number(replyTotal) / L));
    expect(last.data.byteLength).toBe(L);
    const whole = [Buffer.from(last.data)];
    for (let i = 1; i < Number(replyCount); i++) whole.push(Buffer.from((await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${replyId};${i}`])).data));
    const reply = decodeBody(Buffer.concat(whole));
    expect(decodeJson(reply.meta)).toEqual({ n: 1, bytes: 2 * L });
    expect(Buffer.from(reply.payload!).equals(patternBytes(2 * L, seeds.a))).toBe(true);
  });
});

describe("chunks that break the protocol get typed errors", () => {
  const body = echoBody(2, patternBytes(3 * L, seeds.b));

  test("out of order, repeated, or mismatched: InvalidArgument, and the stream is gone", async () => {
    expect(ackOf(await chunk(jobA, "job-a", streamId(1), body, 0))).toBe("0");
    expect(errorOf(await chunk(jobA, "job-a", streamId(1), body, 2))).toBe(ErrorCode.InvalidArgument);
    expect(errorOf(await chunk(jobA, "job-a", streamId(1), body, 1))).toBe(ErrorCode.InvalidArgument);

    expect(ackOf(await chunk(jobA, "job-a", streamId(2), body, 0))).toBe("0");
    expect(errorOf(await chunk(jobA, "job-a", streamId(2), body, 0))).toBe(ErrorCode.InvalidArgument);

    expect(ackOf(await chunk(jobA, "job-a", streamId(3), body, 0))).toBe("0");
    expect(errorOf(await chunk(jobA, "job-a", streamId(3), body, 1, undefined, body.byteLength + 1))).toBe(ErrorCode.InvalidArgument);
    expect(errorOf(await chunk(jobA, "job-a", streamId(3), body, 1))).toBe(ErrorCode.InvalidArgument);

    // A count that does not follow from chunk 0's length and the total.
    expect(errorOf(await chunk(jobA, "job-a", streamId(4), body, 0, 9))).toBe(ErrorCode.InvalidArgument);
  });

  test("unknown streams and malformed headers: InvalidArgument", async () => {
    expect(errorOf(await chunk(jobA, "job-a", streamId(5), body, 1))).toBe(ErrorCode.InvalidArgument);
    expect(errorOf(await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${streamId(5)};1`]))).toBe(ErrorCode.InvalidArgument);
    for (const bad of ["x;0;2;100", `${streamId(6)};2;2;100`, `${streamId(6)};0;2`, `${streamId(6).toUpperCase()};0;2;5000`, `${streamId(6)};0;300;200`]) {
      expect(errorOf(await send(jobA, subjectOf("job-a"), body.subarray(0, L), ["Pocket-Chunk", bad]))).toBe(ErrorCode.InvalidArgument);
    }
  });

});

describe("bounds, and what expires", () => {
  beforeAll(() => { nodeId = nodes.impatient; });
  afterAll(() => { nodeId = nodes.patient; });
  const body = echoBody(2, patternBytes(3 * L, seeds.b));

  test("over the bounds: a body over the limit is TooLarge; more open streams than a job may have, Busy; both expire when left", async () => {
    expect(errorOf(await chunk(jobA, "job-a", streamId(7), body, 0, undefined, limits.bodyBytesMax + 1))).toBe(ErrorCode.TooLarge);
    const ids = [streamId(8), streamId(9), streamId(10)];
    expect(ackOf(await chunk(jobA, "job-a", ids[0]!, body, 0))).toBe("0");
    expect(ackOf(await chunk(jobA, "job-a", ids[1]!, body, 0))).toBe("0");
    expect(errorOf(await chunk(jobA, "job-a", ids[2]!, body, 0))).toBe(ErrorCode.Busy);
    // Left alone, the two open streams expire and make room.
    await eventually(async () => ackOf(await chunk(jobA, "job-a", ids[2]!, body, 0)) === "0", 5_000, "an idle stream expiring");
    expect(errorOf(await chunk(jobA, "job-a", ids[0]!, body, 1))).toBe(ErrorCode.InvalidArgument);
    // Out of order: the last one open is dropped too.
    expect(errorOf(await chunk(jobA, "job-a", ids[2]!, body, 2))).toBe(ErrorCode.InvalidArgument);
  });

  test("a stream expires at the end of its lifetime even while its chunks keep coming before it idles", async () => {
    const long = echoBody(9, patternBytes(200 * KiB, seeds.a));
    const count = Math.ceil(long.byteLength / L);
    const id = streamId(40);
    let openedMs = 0;
    await eventually(async () => {
      openedMs = Date.now();
      return ackOf(await chunk(jobA, "job-a", id, long, 0)) === "0";
    }, 5_000, "room for a stream");
    let sentMs = openedMs;
    let gapMaxMs = 0;
    let refused: Msg | undefined;
    let refusedMs = 0;
    // A chunk every fifth of the idle time: all of them would take longer than the lifetime.
    for (let i = 1; i < count - 1 && refused === undefined; i++) {
      await pause(impatientIdleMs / 5);
      gapMaxMs = Math.max(gapMaxMs, Date.now() - sentMs);
      sentMs = Date.now();
      const answer = await chunk(jobA, "job-a", id, long, i);
      if (ackOf(answer) !== String(i)) [refused, refusedMs] = [answer, Date.now()];
    }
    expect(refused && errorOf(refused)).toBe(ErrorCode.InvalidArgument);
    expect(refusedMs - openedMs).toBeGreaterThanOrEqual(impatientLifetimeMs);
    // Never idle for long enough: it was the lifetime that ended it.
    expect(gapMaxMs).toBeLessThan(impatientIdleMs);
    expect(chunksHeldOf(served[1]!, "job-a")).toEqual({ streams: 0, replies: 0, bytes: 0 });
  });

  test("held replies are bounded: one that cannot be held is Timeout, never Busy (the operation ran), and the router counts it", async () => {
    const big = echoBody(3, patternBytes(2 * L, seeds.a));
    const first = await sendAll(jobA, "job-a", streamId(20), big);
    const held = first.headers?.get("Pocket-Reply-Chunks") ?? "";
    expect(held).toMatch(/^[0-9a-f]{32};3;/);
    const timeouts = (): number => timeoutsOf(metrics, Echo.name);
    const [runsBefore, timeoutsBefore] = [echoRuns, timeouts()];
    // The operation runs; its reply cannot be held as well.
    expect(errorOf(await sendAll(jobA, "job-a", streamId(21), big))).toBe(ErrorCode.Timeout);
    expect([echoRuns - runsBefore, timeouts() - timeoutsBefore]).toEqual([1, 1]);
    // Through the SDK's caller: a typed Timeout, which a call that must run once does not retry (a read may).
    const e = await new NatsCaller(jobA, Subjects.nodeJob(nodeId, "job-a"), 5_000)
      .call(Echo, { n: 3 }, { payload: patternBytes(2 * L, seeds.a) }).catch((err: unknown) => err);
    expect(isPocketError(e, ErrorCode.Timeout)).toBe(true);
    expect([notCarriedOut(e), mayRetry(Retry.Once, e), mayRetry(Retry.Idempotent, e)]).toEqual([false, false, true]);
    expect(echoRuns - runsBefore).toBe(2);
    // Fetched to its end, the held reply is dropped and another may be held.
    const heldId = held.split(";")[0]!;
    for (const i of [1, 2]) expect(errorOf(await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${heldId};${i}`]))).toBeUndefined();
    expect(errorOf(await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${heldId};2`]))).toBe(ErrorCode.InvalidArgument);
    const second = await sendAll(jobA, "job-a", streamId(22), big);
    const secondId = (second.headers?.get("Pocket-Reply-Chunks") ?? "").split(";")[0]!;
    expect(secondId).toMatch(/^[0-9a-f]{32}$/);
    // Not fetched, it expires; then a reply may be held again, and the old one is unknown.
    let attempt = 100;
    let third: Msg | undefined;
    await eventually(async () => {
      third = await sendAll(jobA, "job-a", streamId(attempt++), big);
      return errorOf(third) === undefined;
    }, 5_000, "the held reply expiring");
    expect(errorOf(await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${secondId};1`]))).toBe(ErrorCode.InvalidArgument);
    const thirdId = (third!.headers?.get("Pocket-Reply-Chunks") ?? "").split(";")[0]!;
    for (const i of [1, 2]) expect(errorOf(await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${thirdId};${i}`]))).toBeUndefined();
  });
});

describe("one job cannot take another's room", () => {
  const small = echoBody(8, patternBytes(3 * L, seeds.a));
  /** A body as long as a job's share allows: 21 chunks of L, the last shorter. */
  const large = echoBody(6, patternBytes(250 * KiB, seeds.b));
  const largeCount = Math.ceil(large.byteLength / L);
  const heldOn = (job?: string): unknown => chunksHeldOf(served[0]!, job);

  afterEach(() => expect(heldOn()).toEqual({ streams: 0, replies: 0, bytes: 0 }));

  /** Drops open streams by sending each a chunk out of order. */
  async function dropAll(nc: NatsConnection, job: string, ids: readonly string[], body: Uint8Array): Promise<void> {
    for (const id of ids) expect(errorOf(await chunk(nc, job, id, body, Math.ceil(body.byteLength / L) - 1))).toBe(ErrorCode.InvalidArgument);
  }

  test("a job with as many streams open as it may have cannot hold up another job's chunked request", async () => {
    const opened: string[] = [];
    let refusal: Msg | undefined;
    for (let i = 0; i <= limits.streamsMax && refusal === undefined; i++) {
      const answer = await chunk(jobA, "job-a", streamId(0x300 + i), small, 0);
      if (ackOf(answer) === "0") opened.push(streamId(0x300 + i));
      else refusal = answer;
    }
    expect([opened.length, refusal && errorOf(refusal)]).toEqual([limits.jobStreamsMax, ErrorCode.Busy]);
    const reply = await callAll(jobB, "job-b", streamId(0x310), small);
    expect(Buffer.isBuffer(reply) && decodeJson(decodeBody(reply).meta)).toEqual({ n: 8, bytes: 3 * L });
    await dropAll(jobA, "job-a", opened, small);
  });

  test("a job holding as many bytes as its share allows cannot hold up another job's chunked request", async () => {
    const [s1, s2] = [streamId(0x320), streamId(0x321)];
    expect(ackOf(await chunk(jobA, "job-a", s1, large, 0))).toBe("0");
    expect(ackOf(await chunk(jobA, "job-a", s2, large, 0))).toBe("0");
    for (let i = 1; i < largeCount - 1; i++) expect(ackOf(await chunk(jobA, "job-a", s1, large, i))).toBe(String(i));
    expect(heldOn("job-a")).toEqual({ streams: 2, replies: 0, bytes: largeCount * L });
    // One more chunk would take job A past its share: Busy, and that stream is dropped.
    expect(errorOf(await chunk(jobA, "job-a", s2, large, 1))).toBe(ErrorCode.Busy);
    expect(heldOn("job-a")).toEqual({ streams: 1, replies: 0, bytes: (largeCount - 1) * L });
    const reply = await callAll(jobB, "job-b", streamId(0x322), small);
    expect(Buffer.isBuffer(reply) && decodeJson(decodeBody(reply).meta)).toEqual({ n: 8, bytes: 3 * L });
    // Job A's stream is whole still: its last chunk completes it, byte-exact.
    const last = await chunk(jobA, "job-a", s1, large, largeCount - 1);
    expect(errorOf(last)).toBeUndefined();
    expect(last.headers?.get("Pocket-Reply-Chunks") ?? "").toMatch(/^[0-9a-f]{32};/);
    const replyId = last.headers!.get("Pocket-Reply-Chunks").split(";")[0]!;
    const parts = [Buffer.from(last.data)];
    for (let i = 1; i < Number(last.headers!.get("Pocket-Reply-Chunks").split(";")[1]); i++) {
      parts.push(Buffer.from((await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${replyId};${i}`])).data));
    }
    const echoed = decodeBody(Buffer.concat(parts));
    expect(Buffer.from(echoed.payload!).equals(patternBytes(250 * KiB, seeds.b))).toBe(true);
  });

  test("a partial stream holds the bytes it was sent, not the length it declares", async () => {
    const id = streamId(0x330);
    expect(ackOf(await chunk(jobA, "job-a", id, large, 0))).toBe("0");
    expect([heldOn("job-a"), heldOn("job-b")]).toEqual([{ streams: 1, replies: 0, bytes: L }, { streams: 0, replies: 0, bytes: 0 }]);
    expect(ackOf(await chunk(jobA, "job-a", id, large, 1))).toBe("1");
    expect(heldOn("job-a")).toEqual({ streams: 1, replies: 0, bytes: 2 * L });
    await dropAll(jobA, "job-a", [id], large);
  });

  test("a stream that declares much with a tiny chunk 0 is refused; chunk 0 must have half the server's L", async () => {
    const firstMin = Math.floor(L / 2);
    const declare = (id: string, first: number): Promise<Msg> =>
      send(jobA, subjectOf("job-a"), large.subarray(0, first), ["Pocket-Chunk", `${id};0;${Math.ceil(large.byteLength / first)};${large.byteLength}`]);
    expect(errorOf(await declare(streamId(0x340), 1024))).toBe(ErrorCode.InvalidArgument);
    expect(errorOf(await declare(streamId(0x341), firstMin - 1))).toBe(ErrorCode.InvalidArgument);
    expect(heldOn("job-a")).toEqual({ streams: 0, replies: 0, bytes: 0 });
    // Half of L is enough: a caller whose nats-server allows less than this one still gets through.
    expect(ackOf(await declare(streamId(0x342), firstMin))).toBe("0");
    expect(errorOf(await send(jobA, subjectOf("job-a"), large.subarray(firstMin, 2 * firstMin), ["Pocket-Chunk", `${streamId(0x342)};2;${Math.ceil(large.byteLength / firstMin)};${large.byteLength}`])))
      .toBe(ErrorCode.InvalidArgument);
  });
});

describe("one job's streams are not another's", () => {
  test("job B can neither continue job A's request stream nor fetch its reply; A finishes both", async () => {
    const data = patternBytes(2 * L, seeds.b);
    const body = echoBody(4, data);
    const id = streamId(0xab);
    await eventually(async () => ackOf(await chunk(jobA, "job-a", id, body, 0)) === "0", 5_000, "room for a stream");
    // B's subjects are its own: the same stream id means nothing there.
    expect(errorOf(await chunk(jobB, "job-b", id, body, 1))).toBe(ErrorCode.InvalidArgument);
    // And nats-server refuses B a publish on A's subjects.
    const probe = await BusProbe.connect(nats.url, auth.issuer.lambda("job-b", "s0", Date.now() + 60_000), "chunks-b-probe");
    await probe.expectPublishRefused(subjectOf("job-a"), body.subarray(L));
    await probe.close();
    expect(ackOf(await chunk(jobA, "job-a", id, body, 1))).toBe("1");
    const last = await chunk(jobA, "job-a", id, body, 2);
    expect(errorOf(last)).toBeUndefined();
    const replyId = last.headers!.get("Pocket-Reply-Chunks").split(";")[0]!;
    expect(errorOf(await send(jobB, subjectOf("job-b"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${replyId};1`]))).toBe(ErrorCode.InvalidArgument);
    const rest = await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${replyId};1`]);
    expect(errorOf(rest)).toBeUndefined();
    expect(decodeJson(decodeBody(Buffer.concat([last.data, rest.data, (await send(jobA, subjectOf("job-a"), new Uint8Array(0), ["Pocket-Reply-Chunk", `${replyId};2`])).data])).meta))
      .toEqual({ n: 4, bytes: data.byteLength });
  });

  test("a reply whose chunks cannot be fetched (its server went away after the operation ran) is Timeout to the caller, not 'no responder'", async () => {
    const nc = await connectWithCreds(nats.url, auth.credentials(Role.Node, "n3"), undefined, { name: "chunks-n3", maxReconnectAttempts: 1 });
    let runs = 0;
    // The operation runs, and its server stops listening before the caller can fetch the rest of the reply.
    const router = new Router().on(Echo, (req, ctx) => {
      runs++;
      sub.unsubscribe();
      return new WithPayload({ n: req.n, bytes: ctx.payload?.byteLength ?? 0 }, ctx.payload ?? new Uint8Array(0));
    });
    const sub = serveOnNats(nc, Subjects.nodeJobs("n3"), router, { jobScoped: true, chunks: limits });
    await nc.flush();
    try {
      const e = await new NatsCaller(jobA, Subjects.nodeJob("n3", "job-a"), 5_000)
        .call(Echo, { n: 10 }, { payload: patternBytes(2 * L, seeds.a) }).catch((err: unknown) => err);
      expect([runs, isPocketError(e, ErrorCode.Timeout), notCarriedOut(e), mayRetry(Retry.Once, e)]).toEqual([1, true, false, false]);
    } finally {
      await nc.close();
    }
  });

  test("errors the SDK's caller meets mid-stream come back typed", async () => {
    const caller = new NatsCaller(jobA, Subjects.nodeJob(nodeId, "job-a"), 5_000);
    const e = await caller.call(Echo, { n: 5 }, { payload: patternBytes(limits.bodyBytesMax, seeds.a) }).catch((err: unknown) => err);
    expect(isPocketError(e, ErrorCode.TooLarge)).toBe(true);
  });
});
