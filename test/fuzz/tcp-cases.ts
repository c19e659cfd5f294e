import { ErrorCode } from "../../schemas/errors";
import { helloFrameBytesMax, TransportAuth, TransportHello } from "../../bus/handshake";
import { checkerFor } from "../../bus/router";
import { tokenOracle, type GenContext, type TcpEndpoint } from "./context";
import { expectRequest, parseJson, TokenClass, type Expect } from "./expect";
import { invalidJsonText, violate } from "./json";
import type { Prng } from "../../lib/prng";
import { requestSpec, type RequestTarget } from "./requests";
import { chunked, mutateFrame, readFrames, requestFrame, type FrameLimits } from "./wire";

/**
 * TCP cases: byte streams to a shard's or a node's direct-transport port.
 * Most say hello and authenticate as a client must (each round awaited), then
 * send request frames, some mutated, cut into chunks at random; the others
 * break the handshake (no hello, a malformed one, a bad token, garbage,
 * requests pipelined behind it). What the server must do is read from the
 * bytes with the protocol's rules (wire.ts, bus/handshake.ts).
 */

/** What the server must do with a TCP session. */
export type TcpOutcome =
  /** Answer every request in `requests` exactly once and keep the connection open. */
  | { readonly kind: "open" }
  /** Send an error frame with one of `codes` and close (requests before the violation may be answered). */
  | { readonly kind: "close"; readonly codes: readonly ErrorCode[]; readonly why: string }
  /** Either, depending on how the bytes were cut into reads or on a limit only the server knows. */
  | { readonly kind: "either" };

export interface TcpRequest {
  readonly requestId: number;
  readonly name: string;
  readonly expect: Expect;
  /** Must be answered (on a connection that stays open); otherwise it may be, and if it is, as `expect` says. */
  readonly due: boolean;
}

export interface TcpCase {
  readonly kind: "tcp";
  readonly index: number;
  readonly endpoint: TcpEndpoint;
  /** Frames sent one at a time before `chunks`, each once the server answered the one before (the two handshake rounds). */
  readonly rounds: readonly Buffer[];
  /** The hello and auth the server accepts: their replies carry these request ids (the hello's signed over the nonce). */
  readonly hello: { readonly requestId: number; readonly nonce: string } | undefined;
  readonly auth: { readonly requestId: number; readonly token: string } | undefined;
  /** Whether those replies must come (they may not when a framing error in the same read comes first). */
  readonly handshakeDue: boolean;
  readonly chunks: readonly Buffer[];
  /** Complete request frames the server reads once open, in order. */
  readonly requests: readonly TcpRequest[];
  readonly outcome: TcpOutcome;
  readonly note: string;
}

/** Until authentication succeeds the limit is the protocol's, exactly. */
const handshakeLimits: FrameLimits = { accepted: helloFrameBytesMax, refused: helloFrameBytesMax };

const Opening = { Awaited: "awaited", Pipelined: "pipelined", Refused: "refused", Missing: "missing", Garbage: "garbage" } as const;
type Opening = (typeof Opening)[keyof typeof Opening];

export function tcpCase(rng: Prng, ctx: GenContext, index: number): TcpCase {
  const endpoint = rng.chance(0.5) ? ctx.shard : rng.pick(ctx.nodes);
  const opening = rng.weighted<Opening>([[72, Opening.Awaited], [6, Opening.Pipelined], [12, Opening.Refused], [5, Opening.Missing], [5, Opening.Garbage]]);
  const target: RequestTarget = { transport: "tcp", ...(endpoint.service === "nodeJob" ? { nodeId: endpoint.id } : {}) };
  const { stream, notes } = requestStream(rng, ctx, endpoint, target, opening === Opening.Awaited ? endpoint.limits : handshakeLimits);
  const pieces = rng.weighted<number>([[50, 1], [35, rng.int(2, 8)], [15, rng.int(9, 64)]]);
  if (opening === Opening.Awaited) {
    const h = handshake(rng, ctx, "accepted");
    const opened = predictHandshake(Buffer.concat(h.frames), endpoint, ctx);
    if (opened.outcome.kind !== "open" || !opened.auth) throw new Error(`a handshake meant to succeed would not: ${JSON.stringify(opened.outcome)}`);
    return {
      kind: "tcp", index, endpoint, rounds: h.frames, hello: opened.hello, auth: opened.auth, handshakeDue: true,
      chunks: chunked(stream, rng, pieces), ...predictOpen(stream, endpoint, ctx, opened.auth.token), note: `${endpoint.id}: handshake, ${notes}`,
    };
  }
  const first = opening === Opening.Missing ? Buffer.alloc(0)
    : opening === Opening.Garbage ? garbage(rng)
      : Buffer.concat(handshake(rng, ctx, opening === Opening.Pipelined ? "accepted" : "refused").frames);
  const all = Buffer.concat([first, stream]);
  return {
    kind: "tcp", index, endpoint, rounds: [], chunks: chunked(all, rng, pieces), ...predictHandshake(all, endpoint, ctx),
    note: `${endpoint.id}: ${opening} handshake, ${notes}`,
  };
}

/** Request frames (some mutated, some with garbage between), possibly cut short at the end. */
function requestStream(rng: Prng, ctx: GenContext, endpoint: TcpEndpoint, target: RequestTarget, limits: FrameLimits): { stream: Buffer; notes: string } {
  const count = rng.weighted<number>([[5, 0], [35, 1], [45, rng.int(2, 8)], [15, rng.int(9, 100)]]);
  const parts: Buffer[] = [];
  const notes: string[] = [];
  const room = Math.max(256, Math.floor((limits.accepted - 256) / Math.max(1, Math.min(count, 4))));
  for (let i = 0; i < count; i++) {
    const spec = requestSpec(rng, ctx, endpoint.service, target, room);
    const id = rng.chance(0.05) ? rng.pick([0, 1, 0xffff_ffff]) : rng.u32();
    let frame = requestFrame(id, rng.chance(0.03) ? tcpOddName(rng) : spec.name, spec.meta, spec.payload);
    let note = spec.note;
    if (rng.chance(0.06)) {
      const m = mutateFrame(frame, rng, limits);
      frame = m.bytes;
      note = `${spec.name} ${m.note}`;
    }
    if (rng.chance(0.02)) parts.push(garbage(rng));
    parts.push(frame);
    if (notes.length < 4) notes.push(note);
  }
  let stream = Buffer.concat(parts);
  if (stream.byteLength > 0 && rng.chance(0.05)) stream = stream.subarray(0, rng.below(stream.byteLength));
  return { stream, notes: `${count} frames (${notes.join("; ")}${count > notes.length ? "; …" : ""})` };
}

/** Names only the direct transport can carry: non-ASCII, control bytes, 64 bytes and over. */
function tcpOddName(rng: Prng): string {
  return rng.pick(["", "\u0000", "object.get\u0000", "\u00ff\u00fe", "o".repeat(64), "o".repeat(65), "o".repeat(255), "object.get ", " object.get", "OBJECT.GET", TransportHello.name, TransportAuth.name]);
}

function garbage(rng: Prng): Buffer {
  return rng.chance(0.3) ? Buffer.from(rng.pick(["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "PING\r\n", "\u0016\u0003\u0001\u0002\u0000\u0001", "CONNECT {}\r\n"])) : rng.bytes(1 + rng.size(256));
}

/**
 * The two handshake rounds as frames: a hello and an auth a server accepts,
 * or a pair broken somewhere (the hello malformed, missing or in the old
 * one-round form; the auth with a bad token, malformed, replaced or first).
 */
function handshake(rng: Prng, ctx: GenContext, want: "accepted" | "refused"): { frames: Buffer[] } {
  const helloId = rng.u32();
  const authId = (helloId + 1) >>> 0;
  const nonce = rng.string(43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
  const hello = { v: 1, nonce };
  const helloFrame = (meta: unknown, payload?: Buffer): Buffer => requestFrame(helloId, TransportHello.name, Buffer.from(JSON.stringify(meta) ?? "null"), payload);
  const authFrame = (meta: unknown, payload?: Buffer): Buffer => requestFrame(authId, TransportAuth.name, Buffer.from(JSON.stringify(meta) ?? "null"), payload);
  const liveToken = rng.pick([ctx.job.token, ctx.job.token, ctx.other.token, ctx.tokens.ghost, ctx.tokens.wrongShard, ...ctx.tokens.attachable.slice(0, 1)]);
  if (want === "accepted") return { frames: [helloFrame(hello), authFrame({ token: liveToken })] };
  const goodAuth = authFrame({ token: liveToken });
  return rng.weighted<() => { frames: Buffer[] }>([
    [20, () => ({ frames: [helloFrame(hello), authFrame({ token: rng.pick([ctx.tokens.expired, ...ctx.tokens.forged, `${ctx.job.token}x`]) })] })],
    [12, () => ({ frames: [helloFrame(violate(hello, TransportHello.request, rng)), goodAuth] })],
    [8, () => ({ frames: [helloFrame({ ...hello, token: liveToken })] })],
    [12, () => ({ frames: [helloFrame(hello), authFrame(violate({ token: liveToken }, TransportAuth.request, rng))] })],
    [6, () => ({ frames: [requestFrame(helloId, TransportHello.name, Buffer.from(invalidJsonText(JSON.stringify(hello), rng))), goodAuth] })],
    [6, () => ({ frames: [helloFrame(hello), requestFrame(authId, TransportAuth.name, Buffer.from(invalidJsonText(JSON.stringify({ token: liveToken }), rng)))] })],
    [5, () => ({ frames: [helloFrame(hello, rng.bytes(1 + rng.size(64))), goodAuth] })],
    [5, () => ({ frames: [helloFrame(hello), authFrame({ token: liveToken }, rng.bytes(1 + rng.size(64)))] })],
    [6, () => ({ frames: [goodAuth, helloFrame(hello)] })],
    [6, () => ({ frames: [helloFrame(hello), helloFrame(hello), goodAuth] })],
    [6, () => ({ frames: [requestFrame(helloId, rng.pick(["transport.Hello", "object.get", "", "transport.hello\u0000"]), Buffer.from(JSON.stringify(hello))), goodAuth] })],
    [6, () => ({ frames: [mutateFrame(helloFrame(hello), rng, handshakeLimits).bytes, goodAuth] })],
    [6, () => ({ frames: [helloFrame(hello), mutateFrame(goodAuth, rng, handshakeLimits).bytes] })],
    [4, () => ({ frames: [helloFrame(hello), authFrame({ token: "t".repeat(rng.int(3000, 4100)) })] })],
  ])();
}

/**
 * Once open: every complete request is answered and the connection stays
 * open, unless a frame breaks the protocol (then the server closes with an
 * error frame, and a framing error further on in the same read can come
 * first) or declares a length only the server knows whether it takes (then
 * it may read on, or close).
 */
function predictOpen(stream: Buffer, endpoint: TcpEndpoint, ctx: GenContext, sessionToken: string): { requests: TcpRequest[]; outcome: TcpOutcome } {
  const strict = readFrames(stream, endpoint.limits);
  const reading = strict.uncertain ? readFrames(stream, { accepted: endpoint.limits.refused, refused: endpoint.limits.refused }) : strict;
  const tokens = tokenOracle(ctx);
  const notRequest = reading.frames.findIndex((f) => f.kind !== 1);
  const frames = notRequest < 0 ? reading.frames : reading.frames.slice(0, notRequest);
  const open = notRequest < 0 && strict.violation === undefined && !strict.uncertain;
  const requests = frames.map((f) => ({
    requestId: f.requestId,
    name: f.name,
    expect: expectRequest({ service: endpoint.service, transport: "tcp", sessionToken }, f.name, f.meta, f.payload, tokens),
    due: open,
  }));
  if (strict.uncertain) return { requests, outcome: { kind: "either" } };
  if (notRequest >= 0) {
    const codes = unique([ErrorCode.InvalidArgument, ...(strict.violation !== undefined ? [strict.violation] : [])]);
    return { requests, outcome: { kind: "close", codes, why: "a frame that is not a request" } };
  }
  if (strict.violation !== undefined) return { requests, outcome: { kind: "close", codes: [strict.violation], why: "a malformed frame" } };
  return { requests, outcome: { kind: "open" } };
}

type Handshake = Pick<TcpCase, "hello" | "auth" | "handshakeDue" | "requests" | "outcome">;

/**
 * The handshake (bus/handshake.ts): first a well-formed hello (else
 * Unauthorized for another request, InvalidArgument for a malformed one),
 * then a well-formed auth with a good token (else Unauthorized for another
 * request or a bad token, InvalidArgument for a malformed one); a reply or
 * error frame from the client is InvalidArgument. Frames are held to the
 * pre-authentication limit, and a framing error later in the same read can
 * come first. Requests pipelined behind the auth may be refused or answered.
 */
function predictHandshake(bytes: Buffer, endpoint: TcpEndpoint, ctx: GenContext): Handshake {
  const reading = readFrames(bytes, handshakeLimits);
  let hello: TcpCase["hello"];
  const close = (code: ErrorCode, why: string): Handshake => ({
    hello, auth: undefined, handshakeDue: false, requests: [],
    outcome: { kind: "close", codes: unique(reading.violation === undefined ? [code] : [code, reading.violation]), why },
  });
  for (let i = 0; i < reading.frames.length; i++) {
    const f = reading.frames[i]!;
    if (f.kind !== 1) return close(ErrorCode.InvalidArgument, "a reply or error frame from a client");
    const op = hello === undefined ? TransportHello : TransportAuth;
    if (f.name !== op.name) return close(ErrorCode.Unauthorized, hello === undefined ? "a first frame that is not a hello" : "a frame other than the auth after the hello");
    const parsed = parseJson(f.meta);
    if (f.payload !== undefined || !parsed.ok || !checkerFor(op.request).Check(parsed.value)) return close(ErrorCode.InvalidArgument, `a malformed ${op === TransportHello ? "hello" : "auth"}`);
    if (hello === undefined) {
      hello = { requestId: f.requestId, nonce: (parsed.value as { nonce: string }).nonce };
      continue;
    }
    const token = (parsed.value as { token: string }).token;
    const cls = tokenOracle(ctx)(token).cls;
    if (cls === TokenClass.Bad || cls === TokenClass.Expired) return close(ErrorCode.Unauthorized, `an auth with a ${cls} token`);
    const auth = { requestId: f.requestId, token };
    const rest = bytes.subarray(readFrames(bytes, handshakeLimits, i + 1).consumed);
    if (rest.byteLength === 0) return { hello, auth, handshakeDue: true, requests: [], outcome: { kind: "open" } };
    const pipelined = predictOpen(rest, endpoint, ctx, token).requests.map((r) => ({ ...r, due: false }));
    return { hello, auth, handshakeDue: false, requests: pipelined, outcome: { kind: "either" } };
  }
  if (reading.violation !== undefined) return close(reading.violation, "a malformed frame in the handshake");
  return { hello, auth: undefined, handshakeDue: true, requests: [], outcome: { kind: "open" } };
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}
