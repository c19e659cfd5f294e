import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { ErrorCode, isPocketError } from "../../schemas/errors";
import { decodeBody, decodeJson, encodeBody, encodeJson } from "../../bus/body";
import { connectWithCreds } from "../../bus/nats-connect";
import { NatsCaller, serveOnNats } from "../../bus/nats-rpc";
import { Router, WithPayload } from "../../bus/router";
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
 * (docs/contract.md), not with the code's own helpers.
 */

const KiB = 1024;
const maxPayloadBytes = 16 * KiB;
/** L: the body bytes one message carries (max_payload − 4096). */
const L = maxPayloadBytes - 4096;
const limits = { streamsMax: 2, repliesMax: 1, bodyBytesMax: 256 * KiB, heldBytesMax: 400 * KiB };
const nodes = { patient: "n1", impatient: "n2" } as const;
/** How soon the impatient node drops an idle stream or held reply: long enough for the steps a test takes before it. */
const impatientIdleMs = 2_000;
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
/** Messages seen on the node's job subjects: [subject, chunk header or "", reply-chunk header or ""]. */
const seen: Array<[string, string, string]> = [];

beforeAll(async () => {
  auth = ClusterAuth.open(fs.mkdtempSync(path.join(os.tmpdir(), "pocket-chunks-auth-")));
  nats = await NatsServer.start({ jetstream: false, include: auth.serverConfigFile, maxPayloadBytes });
  const connect = (creds: string, name: string): Promise<NatsConnection> => connectWithCreds(nats.url, creds, undefined, { name, maxReconnectAttempts: 1 });
  const router = new Router().on(Echo, (req, ctx) => new WithPayload({ n: req.n, bytes: ctx.payload?.byteLength ?? 0 }, ctx.payload ?? new Uint8Array(0)));
  for (const [node, idleMs] of [[nodes.patient, 30_000], [nodes.impatient, impatientIdleMs]] as const) {
    const nc = await connect(auth.credentials(Role.Node, node), `chunks-${node}`);
    servers.push(nc);
    served.push(serveOnNats(nc, Subjects.nodeJobs(node), router, { jobScoped: true, chunks: { ...limits, idleMs } }));
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

  test("over the bounds: a body over the limit is TooLarge; more open streams than allowed, Busy; both expire when left", async () => {
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

  test("the bytes held are bounded: a stream that would take them past the limit is Busy", async () => {
    const large = echoBody(6, patternBytes(250 * KiB, seeds.b));
    await eventually(async () => ackOf(await chunk(jobA, "job-a", streamId(30), large, 0)) === "0", 5_000, "room for a stream");
    // One stream open of two allowed, but 2 × 250 KiB is over 400 KiB.
    expect(errorOf(await chunk(jobA, "job-a", streamId(31), large, 0))).toBe(ErrorCode.Busy);
    expect(decodeJson(decodeBody(await callAll(jobA, "job-a", streamId(32), body) as Buffer).meta)).toEqual({ n: 2, bytes: 3 * L });
    await eventually(async () => ackOf(await chunk(jobA, "job-a", streamId(31), large, 0)) === "0", 5_000, "the large stream expiring");
    expect(errorOf(await chunk(jobA, "job-a", streamId(31), large, 2))).toBe(ErrorCode.InvalidArgument);
  });

  test("held replies are bounded: one more is Busy until the held one is fetched or expires", async () => {
    const big = echoBody(3, patternBytes(2 * L, seeds.a));
    const first = await sendAll(jobA, "job-a", streamId(20), big);
    const held = first.headers?.get("Pocket-Reply-Chunks") ?? "";
    expect(held).toMatch(/^[0-9a-f]{32};3;/);
    // The operation ran; its reply could not be held as well.
    expect(errorOf(await sendAll(jobA, "job-a", streamId(21), big))).toBe(ErrorCode.Busy);
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

  test("errors the SDK's caller meets mid-stream come back typed", async () => {
    const caller = new NatsCaller(jobA, Subjects.nodeJob(nodeId, "job-a"), 5_000);
    const e = await caller.call(Echo, { n: 5 }, { payload: patternBytes(limits.bodyBytesMax, seeds.a) }).catch((err: unknown) => err);
    expect(isPocketError(e, ErrorCode.TooLarge)).toBe(true);
  });
});
