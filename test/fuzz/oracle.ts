import { ErrorCode, isErrorCode } from "../../schemas/errors";
import { PayloadDirection } from "../../schemas/operation";
import { isAuthReply, verifyHello } from "../../bus/handshake";
import { checkerFor, describeViolation } from "../../bus/router";
import { operationAt, parseJson, type Expect, type Service } from "./expect";
import type { TcpCase, TcpRequest } from "./tcp-cases";
import { FrameKinds, splitBody, type WireFrame } from "./wire";

/**
 * Judges what came back. A request gets either a reply that matches its
 * operation's reply schema (with a payload only where the operation returns
 * one) or an error with a known code; `Internal` is an untyped failure (an
 * exception no handler turned into a Pocket error) and counts as a finding.
 * Each judge returns what is wrong, or undefined.
 */

/** A reply as either transport delivers it. */
export type ReplyView =
  | { readonly kind: "error"; readonly code: string; readonly message: unknown }
  | { readonly kind: "reply"; readonly meta: Uint8Array; readonly payload: Uint8Array | undefined };

/** Judges one reply to a request named `name` sent to `service`. */
export function judgeReply(service: Service, name: string, expect: Expect, reply: ReplyView): string | undefined {
  if (reply.kind === "error") return judgeError(expect, reply.code, reply.message);
  if (expect.kind === "error") return `a reply where an error was due (${expect.why})`;
  const op = operationAt(service, name);
  if (!op) return `a reply to ${JSON.stringify(name)}, which is not served there`;
  const parsed = parseJson(reply.meta);
  if (!parsed.ok) return "reply meta is not JSON";
  const check = checkerFor(op.reply);
  if (!check.Check(parsed.value)) return `reply does not match ${op.name}'s reply schema (${describeViolation(check, parsed.value)})`;
  if (reply.payload !== undefined && op.payload !== PayloadDirection.Reply) return `a payload of ${reply.payload.byteLength} bytes on a ${op.name} reply, which has none`;
  return undefined;
}

function judgeError(expect: Expect, code: string, message: unknown): string | undefined {
  if (!isErrorCode(code)) return `error code ${JSON.stringify(code)} is not an ErrorCode`;
  if (typeof message !== "string") return `error ${code} without a message`;
  if (code === ErrorCode.Internal) return `untyped error (Internal): ${message.slice(0, 300)}`;
  if (expect.kind === "error" && expect.codes && !expect.codes.includes(code)) {
    return `${code} where ${expect.codes.join(" or ")} was due (${expect.why}): ${message.slice(0, 200)}`;
  }
  return undefined;
}

/** A NATS reply message: the error header, or a body. */
export function natsReplyView(data: Uint8Array, errorCode: string | undefined, errorMessage: string | undefined): ReplyView | string {
  if (errorCode !== undefined) return { kind: "error", code: errorCode, message: errorMessage ?? "" };
  const body = splitBody(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  if (!body) return `reply of ${data.byteLength} bytes is not a body`;
  return { kind: "reply", meta: body.meta, payload: body.payload };
}

/** A TCP reply or error frame. */
export function tcpReplyView(frame: WireFrame): ReplyView {
  if (frame.kind === FrameKinds.Reply) return { kind: "reply", meta: frame.meta, payload: frame.payload };
  const parsed = parseJson(frame.meta);
  const value = (parsed.ok ? parsed.value : undefined) as { code?: unknown; message?: unknown } | undefined;
  return { kind: "error", code: typeof value?.code === "string" ? value.code : `(not a code: ${JSON.stringify(value?.code ?? null)})`, message: value?.message };
}

/** What a TCP session showed: frames the server sent, and whether it closed the connection. */
export interface TcpObserved {
  readonly frames: readonly WireFrame[];
  readonly closedByServer: boolean;
  /** The server sent bytes that do not frame. */
  readonly garbled?: string;
}

/**
 * Whether a session has shown all it must: the server closed it (or is
 * closing it), or answered everything due, and (`settled`) everything it may
 * answer too.
 */
export function tcpSessionDone(c: TcpCase, seen: TcpObserved): { done: boolean; settled: boolean } {
  if (seen.closedByServer || seen.garbled !== undefined) return { done: true, settled: true };
  if (c.outcome.kind === "close") return { done: false, settled: false };
  // Closing: nothing more will be answered.
  if (closingFrame(c, seen) !== undefined) return { done: true, settled: true };
  const answered = new Map<number, number>();
  for (const f of seen.frames) answered.set(f.requestId, (answered.get(f.requestId) ?? 0) + 1);
  const handshake = [c.hello, c.auth].filter((x) => x !== undefined).map((x) => ({ requestId: x.requestId, due: c.handshakeDue }));
  const all = [...handshake, ...c.requests];
  const complete = (rs: ReadonlyArray<{ requestId: number }>): boolean => {
    const due = new Map<number, number>();
    for (const r of rs) due.set(r.requestId, (due.get(r.requestId) ?? 0) + 1);
    for (const [id, n] of due) if ((answered.get(id) ?? 0) < n) return false;
    return true;
  };
  return { done: complete(all.filter((r) => r.due)), settled: complete(all) };
}

/**
 * Judges a whole session: the hello's reply is signed by the endpoint's key
 * over our nonce and the auth's is `{}`; every other frame answers a request
 * we sent, once, as it must; a connection the case must keep open stays open
 * with every request due answered; one it must lose is closed right after an
 * error frame with an expected code.
 */
export function judgeTcpSession(c: TcpCase, seen: TcpObserved): string[] {
  const problems: string[] = [];
  if (seen.garbled !== undefined) problems.push(`the server sent bytes that do not frame: ${seen.garbled}`);
  let helloPending = c.hello !== undefined;
  let authPending = c.auth !== undefined;
  const closing = closingFrame(c, seen);
  const answers = new Map<number, WireFrame[]>();
  for (const f of seen.frames) {
    if (f.kind !== FrameKinds.Reply && f.kind !== FrameKinds.Error) problems.push(`the server sent a frame of kind ${f.kind}`);
    if (f.name !== "") problems.push(`a ${f.kind === FrameKinds.Reply ? "reply" : "error"} frame named ${JSON.stringify(f.name.slice(0, 40))}`);
    const parsed = parseJson(f.meta);
    if (helloPending && c.hello && f.requestId === c.hello.requestId && f.kind === FrameKinds.Reply) {
      helloPending = false;
      const check = verifyHello({ id: c.endpoint.id, key: c.endpoint.key }, c.hello.nonce, parsed.ok ? parsed.value : undefined);
      if (!check.ok) problems.push(`hello reply: ${check.reason}`);
    } else if (!helloPending && authPending && c.auth && f.requestId === c.auth.requestId && f.kind === FrameKinds.Reply) {
      authPending = false;
      if (!parsed.ok || !isAuthReply(parsed.value)) problems.push(`auth reply is not {}: ${f.meta.toString("utf8").slice(0, 80)}`);
    } else if (f === closing && f.kind === FrameKinds.Error) {
      const view = tcpReplyView(f);
      const closeExpect: Expect = c.outcome.kind === "close" ? { kind: "error", codes: c.outcome.codes, why: c.outcome.why } : { kind: "error", why: "a refused connection" };
      const wrong = view.kind === "error" ? judgeError(closeExpect, view.code, view.message) : undefined;
      if (wrong) problems.push(`closing error frame: ${wrong}`);
    } else {
      answers.set(f.requestId, [...(answers.get(f.requestId) ?? []), f]);
    }
  }
  let unanswered = 0;
  const asked = new Map<number, TcpRequest[]>();
  for (const r of c.requests) asked.set(r.requestId, [...(asked.get(r.requestId) ?? []), r]);
  for (const [id, requests] of asked) {
    const got = answers.get(id) ?? [];
    answers.delete(id);
    problems.push(...matchAnswers(c, id, requests, got));
    unanswered += Math.max(0, requests.filter((r) => r.due).length - got.length);
  }
  for (const [id, got] of answers) problems.push(`${got.length} frame(s) for request ${id}, which was not sent`);
  problems.push(...judgeEnding(c, seen, unanswered, c.handshakeDue && (helloPending || authPending)));
  return problems;
}

/**
 * The error frame the server closed the connection with. Connection errors
 * carry request id 0 (or the hello's), which a request may use too: when the
 * connection may close, a last error frame with id 0 that answers no request
 * is the closing one even if the close itself has not been seen yet.
 */
function closingFrame(c: TcpCase, seen: TcpObserved): WireFrame | undefined {
  const last = seen.frames[seen.frames.length - 1];
  if (c.outcome.kind === "open" || last === undefined || last.kind !== FrameKinds.Error) return undefined;
  if (seen.closedByServer) return last;
  if (last.requestId !== 0) return undefined;
  const asked = c.requests.filter((r) => r.requestId === 0);
  const answeredBefore = seen.frames.filter((f) => f.requestId === 0).length - 1;
  if (answeredBefore >= asked.length) return last;
  const fits = asked.some((r) => judgeReply(c.endpoint.service, r.name, r.expect, tcpReplyView(last)) === undefined);
  return fits ? undefined : last;
}

/**
 * Requests may share an id, and replies come in any order: the answers must
 * fit the requests one to one (a bipartite matching), each judged against
 * the request it is matched with.
 */
function matchAnswers(c: TcpCase, id: number, requests: readonly TcpRequest[], answers: readonly WireFrame[]): string[] {
  const verdicts = answers.map((f) => requests.map((r) => judgeReply(c.endpoint.service, r.name, r.expect, tcpReplyView(f))));
  const owner = new Array<number>(requests.length).fill(-1);
  const assign = (a: number, seen: boolean[]): boolean => {
    for (let r = 0; r < requests.length; r++) {
      if (verdicts[a]![r] !== undefined || seen[r]) continue;
      seen[r] = true;
      if (owner[r]! < 0 || assign(owner[r]!, seen)) {
        owner[r] = a;
        return true;
      }
    }
    return false;
  };
  const problems: string[] = [];
  if (answers.length > requests.length) problems.push(`${answers.length} answers to ${requests.length} request(s) with id ${id}`);
  for (let a = 0; a < answers.length; a++) {
    if (assign(a, new Array<boolean>(requests.length).fill(false))) continue;
    const r = verdicts[a]!.findIndex((v) => v !== undefined);
    if (r >= 0) problems.push(`request ${id} (${JSON.stringify(requests[r]!.name.slice(0, 40))}): ${verdicts[a]![r]}`);
  }
  return problems;
}

function judgeEnding(c: TcpCase, seen: TcpObserved, unanswered: number, handshakePending: boolean): string[] {
  const last = seen.frames[seen.frames.length - 1];
  const closedAfterError = seen.closedByServer && last !== undefined && last.kind === FrameKinds.Error;
  switch (c.outcome.kind) {
    case "open": {
      const out: string[] = [];
      if (seen.closedByServer) out.push(`the server closed the connection${last?.kind === FrameKinds.Error ? ` (${describeError(last)})` : ""}, which it had no reason to`);
      else if (unanswered > 0 || handshakePending) out.push(`${unanswered} request(s)${handshakePending ? " and the handshake" : ""} not answered in time`);
      return out;
    }
    case "close":
      if (!seen.closedByServer) return [`the server did not close the connection after ${c.outcome.why}`];
      return closedAfterError ? [] : [`the server closed the connection without an error frame after ${c.outcome.why}`];
    case "either":
      if (seen.closedByServer) return closedAfterError ? [] : ["the server closed the connection without an error frame"];
      if (closingFrame(c, seen) !== undefined) return [];
      return unanswered > 0 || handshakePending ? [`${unanswered} request(s)${handshakePending ? " and the handshake" : ""} not answered in time`] : [];
  }
}

function describeError(f: WireFrame): string {
  const v = tcpReplyView(f);
  return v.kind === "error" ? `${v.code}: ${String(v.message).slice(0, 200)}` : "a reply";
}
