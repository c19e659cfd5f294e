import { headers, NoRespondersError, PermissionViolationError, RequestError, TimeoutError as NatsTimeoutError } from "@nats-io/transport-node";
import type { Msg, MsgHdrs, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Operation, RequestOf } from "../schemas/operation";
import { errorFromWire, ErrorCode, isPocketError, NodeUnavailableError, TimeoutError, toWireError, UnauthorizedError } from "../schemas/errors";
import { decodeBody, decodeReplyMeta, encodeBody, encodeJson, encodeRequestMeta } from "./body";
import type { Bus, ServeOptions } from "./bus";
import { abortReason, raceSignal, type Caller, type CallOptions, type CallResult } from "./caller";
import {
  chunkBytesOf, ChunkStreams, defaultChunkLimits, fetchReplyChunks, isChunkedReply, sendChunked, type ChunkLimits, type ChunksHeld, type ReceivedBody,
} from "./nats-chunks";
import { Transport, type Router } from "./router";
import { DriverOperations, ErrorHeaders, operationSubject, Subjects } from "./subjects";

export interface NatsServeOptions extends ServeOptions {
  /** Bounds on chunked requests and replies (bodies longer than one message carries); `repliesMax` is the in-flight bound unless given. */
  readonly chunks?: Partial<ChunkLimits>;
}

/** Each served subscription's chunk streams, for `chunksHeldOf`. */
const servedChunks = new WeakMap<Subscription, ChunkStreams>();

/** What a subscription `serveOnNats` returned holds for chunked requests and replies now (all jobs', or one job's), or undefined for another subscription. */
export function chunksHeldOf(sub: Subscription, jobId?: string): ChunksHeld | undefined {
  return servedChunks.get(sub)?.held(jobId);
}

/**
 * Serves a router's operations on NATS under `prefix` (`<prefix>.<operation>`).
 * Bodies longer than one message carries come and go in chunks (nats-chunks.ts).
 * Returns the subscription; drain or unsubscribe it to stop.
 */
export function serveOnNats(nc: NatsConnection, prefix: string, router: Router, options: NatsServeOptions = {}): Subscription {
  const inflightMax = options.inflightMax ?? 1024;
  let inflight = 0;
  const cut = prefix.length + 1;
  const chunks = new ChunkStreams(nc, { ...defaultChunkLimits, repliesMax: inflightMax, ...options.chunks });
  const sub = nc.subscribe(options.jobScoped ? `${prefix}.*.>` : `${prefix}.>`, {
    callback: (err, msg) => {
      if (err) return; // subscription closed or permissions: nothing to answer
      if (!msg.reply) return; // a publish without reply subject is not a request
      let name = msg.subject.slice(cut);
      let jobId: string | undefined;
      if (options.jobScoped) {
        const dot = name.indexOf(".");
        jobId = name.slice(0, dot);
        name = name.slice(dot + 1);
      }
      if (inflight >= inflightMax) {
        router.refused(name, Transport.Nats, ErrorCode.Busy);
        respondError(msg, ErrorCode.Busy, `more than ${inflightMax} requests in flight`);
        return;
      }
      inflight++;
      void handle(router, chunks, msg, name, jobId).finally(() => { inflight--; });
    },
  });
  servedChunks.set(sub, chunks);
  void sub.closed.then(() => chunks.close());
  return sub;
}

async function handle(router: Router, chunks: ChunkStreams, msg: Msg, name: string, jobId: string | undefined): Promise<void> {
  let received: ReceivedBody | undefined;
  let body;
  try {
    received = chunks.receive(msg, jobId);
    if (received === undefined) return; // a chunk, answered
    body = decodeBody(received.body);
  } catch (e) {
    const w = toWireError(e);
    router.refused(name, Transport.Nats, w.code);
    respondError(msg, w.code, w.message);
    return;
  }
  const extras = received.owned ? { jobId, payloadOwned: true } : jobId === undefined ? {} : { jobId };
  const result = await router.dispatch(name, body.meta, body.payload, Transport.Nats, extras);
  if (!result.ok) {
    respondError(msg, result.code, result.message);
    return;
  }
  let reply: Uint8Array;
  try {
    reply = encodeBody(result.meta, result.payload); // a copy: the payload may be let go now
  } finally {
    result.release?.();
  }
  try {
    chunks.reply(msg, reply, jobId);
  } catch (e) {
    // The operation ran; its reply could not be held (Timeout: the caller cannot know the outcome).
    const w = toWireError(e);
    router.refused(name, Transport.Nats, w.code);
    respondError(msg, w.code, w.message);
  }
}

function respondError(msg: Msg, code: ErrorCode, message: string): void {
  const h = headers();
  h.set(ErrorHeaders.code, code);
  // Header values are single-line; keep them short.
  h.set(ErrorHeaders.message, message.replace(/[\r\n]+/g, " ").slice(0, 512));
  msg.respond(encodeBody(encodeJson({ error: code })), { headers: h });
}

/** Calls operations of one service over NATS request/reply. */
export class NatsCaller implements Caller {
  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly defaultTimeoutMs = 10_000,
  ) {}

  async call<O extends Operation>(op: O, request: RequestOf<O>, options: CallOptions = {}): Promise<CallResult<O>> {
    const subject = operationSubject(this.prefix, op.name);
    const timeout = options.timeoutMs ?? this.defaultTimeoutMs;
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    // A body longer than one message carries goes in chunks, and a reply that long comes in chunks, all within `timeout`.
    const deadline = Date.now() + timeout;
    const send = (data: Uint8Array, h?: MsgHdrs): Promise<Msg> =>
      this.#request(subject, data, h, h ? Math.max(1, deadline - Date.now()) : timeout, timeout, signal);
    const msg = await sendChunked(send, encodeBody(encodeRequestMeta(op.name, request), options.payload), chunkBytesOf(this.nc));
    const code = msg.headers?.get(ErrorHeaders.code);
    if (code) throw errorFromWire(code, msg.headers?.get(ErrorHeaders.message) ?? code);
    const whole = isChunkedReply(msg) ? await fetchReplyChunks(send, msg).catch((e: unknown) => { throw replyLost(e, subject); }) : undefined;
    const body = decodeBody(whole ?? msg.data);
    const reply = decodeReplyMeta(op.name, body.meta) as CallResult<O>["reply"];
    return whole ? { reply, payload: body.payload, payloadOwned: true } : { reply, payload: body.payload };
  }

  /** One request message of a call; NATS failures become Pocket's typed errors. */
  async #request(
    subject: string, data: Uint8Array, h: MsgHdrs | undefined, timeoutMs: number, callTimeoutMs: number, signal: AbortSignal | undefined,
  ): Promise<Msg> {
    try {
      // NATS requests cannot be recalled: an aborted one is no longer waited for, and its mux entry lapses at its timeout.
      return await raceSignal(this.nc.request(subject, data, h ? { timeout: timeoutMs, headers: h } : { timeout: timeoutMs }), signal);
    } catch (e) {
      throw signal?.aborted ? abortReason(signal) : natsRequestError(e, subject, callTimeoutMs);
    }
  }
}

/** Calls the controller: drivers' operations and operators' operations live under different subjects. */
export class ControllerCaller implements Caller {
  readonly #driver: Caller;
  readonly #admin: Caller;

  /** Over a NATS connection, or over any bus (the simulation's). */
  constructor(via: NatsConnection | Pick<Bus, "caller">, defaultTimeoutMs = 10_000) {
    const caller = (prefix: string): Caller => ("caller" in via ? via.caller(prefix, defaultTimeoutMs) : new NatsCaller(via, prefix, defaultTimeoutMs));
    this.#driver = caller(Subjects.controllerDriver);
    this.#admin = caller(Subjects.controllerAdmin);
  }

  call<O extends Operation>(op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    return (DriverOperations.has(op.name) ? this.#driver : this.#admin).call(op, request, options);
  }
}

/**
 * A failure while fetching a chunked reply's chunks: the operation has run,
 * so an error that would read as "not carried out" (Busy, no responder)
 * becomes Timeout, whose outcome is unknown; others pass as they are.
 */
function replyLost(e: unknown, subject: string): unknown {
  if (!isPocketError(e, ErrorCode.Busy) && !(e instanceof NoResponderError)) return e;
  return new TimeoutError(`the operation on ${subject} ran, but its reply's chunks could not all be fetched: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/** No service listened on the request's subject: nothing received it, so any request may be sent again. */
export class NoResponderError extends NodeUnavailableError {}

/** Maps the NATS client's request failures onto Pocket's error classes. */
export function natsRequestError(e: unknown, subject: string, timeoutMs: number): Error {
  const denied = e instanceof PermissionViolationError ? e : e instanceof Error && e.cause instanceof PermissionViolationError ? e.cause : undefined;
  if (denied) return new UnauthorizedError(`this connection's credential may not send to ${subject}`, { cause: e });
  if (e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders())) {
    return new NoResponderError(`no service answers on ${subject}`, { cause: e });
  }
  if (e instanceof NatsTimeoutError || (e instanceof RequestError && e.cause instanceof NatsTimeoutError)) {
    return new TimeoutError(`no reply on ${subject} within ${timeoutMs} ms`, { cause: e });
  }
  return new NodeUnavailableError(`request on ${subject} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
