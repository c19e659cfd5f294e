import { randomBytes } from "node:crypto";
import { headers, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { BusyError, errorFromWire, InternalError, InvalidArgumentError, TimeoutError, TooLargeError } from "../schemas/errors";
import { ChunkHeaders, ErrorHeaders } from "./subjects";

/*
 * Bodies longer than one NATS message may carry, over any nats-server (its
 * default `max_payload` is 1 MiB). With L = the connection's `max_payload`
 * minus `chunkHeadroomBytes`:
 *
 * - A request body longer than L travels as n = ceil(length / L) requests to
 *   the same subject, in order, each sent once the previous one is answered.
 *   Chunk i carries bytes [i·L, min(length, (i+1)·L)) and the header
 *   `Pocket-Chunk: <streamId>;<i>;<n>;<length>` (streamId: 32 lowercase hex
 *   digits, random per request). Chunks 0 .. n-2 are answered with an empty
 *   body and `Pocket-Chunk-Ack: <i>`; the last one with the operation's reply.
 * - A reply body longer than the server's L comes as its first L bytes with
 *   `Pocket-Reply-Chunks: <streamId>;<n>;<length>`; the caller asks for chunks
 *   1 .. n-1 in order, each with an empty request to the same subject carrying
 *   `Pocket-Reply-Chunk: <streamId>;<i>`, answered with that chunk's bytes.
 *
 * Every chunk is a request of its own because a responder may answer each
 * request once (credentials' `resp` permission). Streams are keyed by subject
 * and stream id: a job's subjects are its own, so no job reaches another's.
 * A body that fits one message goes as it always did: no headers, no state.
 *
 * What a server holds is bounded for all jobs together and for each job on
 * its own (`ChunkLimits`), so one job cannot take every other job's room: a
 * partial stream holds the bytes it has received (never what it declares),
 * chunk 0 must be at least half the server's L (or the whole body), and a
 * stream or held reply lives at most `lifetimeMs` however it is continued.
 * Busy is answered only before an operation runs; the reply of one that
 * ran but cannot be held is Timeout (the caller cannot know the outcome).
 */

/** Bytes of `max_payload` left for headers: a chunk carries at most `max_payload − chunkHeadroomBytes` bytes of body. */
export const chunkHeadroomBytes = 4096;

/** The least L, and the floor of `firstChunkBytesMin`: a server whose `max_payload` is below headroom plus this is refused. */
export const chunkBytesMin = 1024;

/** nats-server's own default `max_payload`, assumed while a connection has not heard the server's INFO. */
const natsDefaultMaxPayload = 1024 * 1024;

/**
 * What one served prefix holds for chunked requests and replies. The bounds
 * named `job…` apply to each job of a job-scoped prefix (`<prefix>.<jobId>.…`)
 * on its own, the others to all jobs together; on a prefix that names no
 * job, only the others apply.
 */
export interface ChunkLimits {
  /** Largest body one request stream may declare (and one caller accepts as a reply). */
  readonly bodyBytesMax: number;
  /** Request streams partly received at once, all jobs together. */
  readonly streamsMax: number;
  /** Request streams partly received at once for one job. */
  readonly jobStreamsMax: number;
  /** Replies held for their callers to fetch, all jobs together (`serveOnNats` makes it its in-flight bound unless given). */
  readonly repliesMax: number;
  /** Bytes held, all jobs together: what partial request streams have received so far, and held replies. */
  readonly heldBytesMax: number;
  /** Bytes held for one job, the same way: its share of `heldBytesMax`, at least `bodyBytesMax` so its largest body fits. */
  readonly jobHeldBytesMax: number;
  /** A partial stream not continued, or a held reply not fetched, for this long is dropped. */
  readonly idleMs: number;
  /** A partial stream or a held reply is dropped this long after its first chunk, however often it is continued. */
  readonly lifetimeMs: number;
}

export const defaultChunkLimits: ChunkLimits = {
  // An extent of the largest size a node accepts plus its meta, as the direct transport's clients allow.
  bodyBytesMax: 72 * 1024 * 1024,
  // A partial stream holds what it was sent, so counts bound bookkeeping more than memory: a job's lambdas may
  // each have several extents on the way to one node, and it takes eight jobs to fill the node's streams.
  streamsMax: 256,
  jobStreamsMax: 32,
  // serveOnNats's default in-flight bound: a held reply is rarely refused for its count.
  repliesMax: 1024,
  heldBytesMax: 256 * 1024 * 1024,
  // Three jobs at their full share still leave room for a fourth.
  jobHeldBytesMax: 80 * 1024 * 1024,
  idleMs: 30_000,
  lifetimeMs: 60_000,
};

/**
 * The shortest chunk 0 a server with chunk length `l` accepts for a body
 * longer than it: half its own L (a caller whose nats-server has a
 * `max_payload` down to about half this one's still gets through), and at
 * least `chunkBytesMin`. So a stream has at most about 2·n / L chunks.
 */
export function firstChunkBytesMin(l: number): number {
  return Math.max(chunkBytesMin, Math.floor(l / 2));
}

/** L: the body bytes one message of this connection carries (`max_payload` minus the headroom for headers). */
export function chunkBytesOf(nc: NatsConnection): number {
  const maxPayload = nc.info?.max_payload ?? natsDefaultMaxPayload;
  const l = maxPayload - chunkHeadroomBytes;
  if (l < chunkBytesMin) throw new InvalidArgumentError(`nats-server's max_payload of ${maxPayload} bytes leaves no room for chunks; it must be at least ${chunkHeadroomBytes + chunkBytesMin}`);
  return l;
}

/** A fresh stream id: 16 random bytes as 32 lowercase hex digits. */
export function newStreamId(): string {
  return randomBytes(16).toString("hex");
}

export interface ChunkHeader {
  readonly streamId: string;
  readonly index: number;
  readonly count: number;
  readonly totalBytes: number;
}

const streamIdPattern = /^[0-9a-f]{32}$/;
const decimalPattern = /^(0|[1-9][0-9]{0,15})$/;

function decimal(s: string | undefined): number | undefined {
  if (s === undefined || !decimalPattern.test(s)) return undefined;
  const v = Number(s);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** `<streamId>;<index>;<count>;<totalBytes>`, or undefined when it is not one (index < count ≤ totalBytes). */
export function parseChunkHeader(value: string): ChunkHeader | undefined {
  const [streamId, i, n, t, extra] = value.split(";");
  const index = decimal(i);
  const count = decimal(n);
  const totalBytes = decimal(t);
  if (extra !== undefined || streamId === undefined || !streamIdPattern.test(streamId)) return undefined;
  if (index === undefined || count === undefined || totalBytes === undefined) return undefined;
  if (index >= count || count > totalBytes) return undefined;
  return { streamId, index, count, totalBytes };
}

/** `<streamId>;<count>;<totalBytes>` of a reply sent in chunks, or undefined (at least 2 chunks, at most one per byte). */
export function parseReplyChunksHeader(value: string): Omit<ChunkHeader, "index"> | undefined {
  const [streamId, n, t, extra] = value.split(";");
  const count = decimal(n);
  const totalBytes = decimal(t);
  if (extra !== undefined || streamId === undefined || !streamIdPattern.test(streamId)) return undefined;
  if (count === undefined || totalBytes === undefined || count < 2 || count > totalBytes) return undefined;
  return { streamId, count, totalBytes };
}

/** `<streamId>;<index>` of a held reply's chunk, or undefined (index ≥ 1). */
export function parseReplyChunkHeader(value: string): { readonly streamId: string; readonly index: number } | undefined {
  const [streamId, i, extra] = value.split(";");
  const index = decimal(i);
  if (extra !== undefined || streamId === undefined || !streamIdPattern.test(streamId) || index === undefined || index < 1) return undefined;
  return { streamId, index };
}

function oneHeader(name: string, value: string): MsgHdrs {
  const h = headers();
  h.set(name, value);
  return h;
}

// ---------------------------------------------------------------- the caller's side

/** Sends one message of a call (with headers, for chunks) and returns its reply; throws the call's typed errors. */
export type SendMessage = (data: Uint8Array, headers?: MsgHdrs) => Promise<Msg>;

/**
 * Sends a request body: in one message when it fits `chunkBytes`, else in
 * chunks, each once the previous one is acknowledged. Resolves to the answer
 * to the last message sent: the operation's reply, or the error a chunk was
 * refused with (in its headers, as any reply's).
 */
export function sendChunked(send: SendMessage, body: Uint8Array, chunkBytes: number): Promise<Msg> {
  if (body.byteLength <= chunkBytes) return send(body);
  return sendInChunks(send, body, chunkBytes);
}

async function sendInChunks(send: SendMessage, body: Uint8Array, chunkBytes: number): Promise<Msg> {
  const streamId = newStreamId();
  const count = Math.ceil(body.byteLength / chunkBytes);
  for (let index = 0; ; index++) {
    const from = index * chunkBytes;
    const h = oneHeader(ChunkHeaders.chunk, `${streamId};${index};${count};${body.byteLength}`);
    const answer = await send(body.subarray(from, Math.min(body.byteLength, from + chunkBytes)), h);
    if (index === count - 1 || answer.headers?.get(ErrorHeaders.code)) return answer;
    const ack = answer.headers?.get(ChunkHeaders.chunkAck);
    if (ack !== String(index)) throw new InternalError(`chunk ${index} of ${count} was answered without its acknowledgement (${JSON.stringify(ack ?? "").slice(0, 40)})`);
  }
}

/** True when a reply carries only its first chunk (the rest is fetched with `fetchReplyChunks`). */
export function isChunkedReply(msg: Msg): boolean {
  return msg.headers !== undefined && msg.headers.get(ChunkHeaders.replyChunks) !== "";
}

/**
 * The whole body of a reply sent in chunks: its first chunk, then each
 * further one asked for in order. Returns a buffer of its own.
 */
export async function fetchReplyChunks(send: SendMessage, first: Msg, bodyBytesMax = defaultChunkLimits.bodyBytesMax): Promise<Buffer> {
  const declared = parseReplyChunksHeader(first.headers?.get(ChunkHeaders.replyChunks) ?? "");
  if (!declared) throw new InternalError(`a reply with a malformed ${ChunkHeaders.replyChunks} header`);
  const { streamId, count, totalBytes } = declared;
  if (totalBytes > bodyBytesMax) throw new TooLargeError(`a reply of ${totalBytes} bytes is over this caller's limit of ${bodyBytesMax}`);
  const chunkBytes = first.data.byteLength;
  if (chunkBytes === 0 || count !== Math.ceil(totalBytes / chunkBytes)) {
    throw new InternalError(`a first reply chunk of ${chunkBytes} bytes does not make ${count} chunks of ${totalBytes} bytes`);
  }
  const out = Buffer.allocUnsafeSlow(totalBytes);
  out.set(first.data, 0);
  let at = chunkBytes;
  for (let index = 1; index < count; index++) {
    const answer = await send(new Uint8Array(0), oneHeader(ChunkHeaders.replyChunk, `${streamId};${index}`));
    const code = answer.headers?.get(ErrorHeaders.code);
    if (code) throw errorFromWire(code, answer.headers?.get(ErrorHeaders.message) || code);
    const want = index === count - 1 ? totalBytes - at : chunkBytes;
    if (answer.data.byteLength !== want) throw new InternalError(`reply chunk ${index} of ${count} has ${answer.data.byteLength} bytes, expected ${want}`);
    out.set(answer.data, at);
    at += want;
  }
  return out;
}

// ---------------------------------------------------------------- the server's side

/** A request body as the server hands it on: `owned` when it was reassembled into a buffer of its own. */
export interface ReceivedBody {
  readonly body: Uint8Array;
  readonly owned: boolean;
}

/** What a server holds for chunked requests and replies (all jobs, or one). */
export interface ChunksHeld {
  /** Request streams partly received. */
  readonly streams: number;
  /** Replies held for their callers to fetch. */
  readonly replies: number;
  /** Bytes of the buffers they hold, counted from the buffers themselves. */
  readonly bytes: number;
}

/**
 * When a partial stream or a held reply is dropped: `idleMs` after it was
 * last used, and `lifetimeMs` after it opened whatever happens.
 */
class Expiry {
  readonly #idle: NodeJS.Timeout;
  readonly #end: NodeJS.Timeout;
  readonly #endsAtMs: number;

  constructor(drop: () => void, limits: Pick<ChunkLimits, "idleMs" | "lifetimeMs">) {
    this.#idle = setTimeout(drop, limits.idleMs);
    this.#end = setTimeout(drop, limits.lifetimeMs);
    this.#idle.unref();
    this.#end.unref();
    this.#endsAtMs = Date.now() + limits.lifetimeMs;
  }

  /** Its lifetime is over (its timer may not have run yet). */
  get over(): boolean {
    return Date.now() >= this.#endsAtMs;
  }

  /** Used now: the idle countdown starts again (the lifetime's does not). */
  touch(): void {
    this.#idle.refresh();
  }

  cancel(): void {
    clearTimeout(this.#idle);
    clearTimeout(this.#end);
  }
}

interface PartialStream {
  /** The job the stream's subject names ("" on a prefix that names none). */
  readonly jobId: string;
  readonly count: number;
  readonly totalBytes: number;
  /** Length of chunk 0, which every chunk but the last has. */
  readonly chunkBytes: number;
  /** Each chunk received, copied: the stream holds what it was sent, not what it declared. */
  readonly chunks: Buffer[];
  received: number;
  readonly expiry: Expiry;
}

interface HeldReply {
  readonly jobId: string;
  readonly body: Uint8Array;
  readonly count: number;
  readonly chunkBytes: number;
  next: number;
  readonly expiry: Expiry;
}

/** What one job holds now: an entry lives while either is above 0. */
interface JobHolding {
  streams: number;
  bytes: number;
}

/**
 * One served prefix's chunked requests and replies, bounded in streams,
 * replies and bytes for all jobs together and for each job; what is not
 * continued within `idleMs`, or is older than `lifetimeMs`, is dropped.
 */
export class ChunkStreams {
  readonly #partial = new Map<string, PartialStream>();
  readonly #held = new Map<string, HeldReply>();
  /** Per job; as many entries at most as streams and replies held. */
  readonly #jobs = new Map<string, JobHolding>();
  #heldBytes = 0;

  constructor(private readonly nc: NatsConnection, readonly limits: ChunkLimits = defaultChunkLimits) {
    const { bodyBytesMax, jobHeldBytesMax, heldBytesMax, jobStreamsMax, streamsMax } = limits;
    if (jobHeldBytesMax < bodyBytesMax || heldBytesMax < jobHeldBytesMax || streamsMax < jobStreamsMax || jobStreamsMax < 1) {
      throw new InvalidArgumentError(`chunk limits out of order: want bodyBytesMax ≤ jobHeldBytesMax ≤ heldBytesMax and 1 ≤ jobStreamsMax ≤ streamsMax (${JSON.stringify(limits)})`);
    }
  }

  /** Partial request streams, held replies and the bytes their buffers take, now: all jobs', or `jobId`'s. */
  held(jobId?: string): ChunksHeld {
    let streams = 0;
    let replies = 0;
    let bytes = 0;
    for (const s of this.#partial.values()) {
      if (jobId !== undefined && s.jobId !== jobId) continue;
      streams++;
      for (const c of s.chunks) bytes += c.byteLength;
    }
    for (const r of this.#held.values()) {
      if (jobId !== undefined && r.jobId !== jobId) continue;
      replies++;
      bytes += r.body.byteLength;
    }
    return { streams, replies, bytes };
  }

  /**
   * A request's body: `msg.data` when it came whole. For a chunk: undefined
   * once it is acknowledged, or the whole body with the last one. For a
   * request of a held reply's chunk: undefined once answered. Throws typed
   * errors (and drops the stream) for chunks that do not follow the protocol
   * or go past a bound. `jobId`: the job the subject names, if it names one.
   */
  receive(msg: Msg, jobId?: string): ReceivedBody | undefined {
    const h = msg.headers;
    const chunk = h?.get(ChunkHeaders.chunk) ?? "";
    const fetch = h?.get(ChunkHeaders.replyChunk) ?? "";
    if (chunk === "" && fetch === "") return { body: msg.data, owned: false };
    if (chunk !== "" && fetch !== "") throw new InvalidArgumentError(`a request may not carry both ${ChunkHeaders.chunk} and ${ChunkHeaders.replyChunk}`);
    if (chunk !== "") {
      const c = parseChunkHeader(chunk);
      if (!c) throw new InvalidArgumentError(`malformed ${ChunkHeaders.chunk} header: want <32 hex digits>;<index>;<count>;<totalBytes> with index < count <= totalBytes`);
      return this.#chunk(msg, c, jobId ?? "");
    }
    const f = parseReplyChunkHeader(fetch);
    if (!f) throw new InvalidArgumentError(`malformed ${ChunkHeaders.replyChunk} header: want <32 hex digits>;<index ≥ 1>`);
    this.#fetch(msg, keyOf(msg.subject, f.streamId), f.index);
    return undefined;
  }

  /**
   * Answers `msg` with a reply body: as is when it fits one message, else its
   * first chunk, holding the rest for the caller to fetch. When it cannot be
   * held, throws Timeout, not Busy: the operation has run, only its reply is
   * lost, so the caller must not take it for one that never ran.
   */
  reply(msg: Msg, body: Uint8Array, jobId?: string): void {
    const chunkBytes = chunkBytesOf(this.nc);
    if (body.byteLength <= chunkBytes) {
      msg.respond(body);
      return;
    }
    const job = jobId ?? "";
    const full = this.#held.size >= this.limits.repliesMax
      ? `${this.#held.size} replies already held for callers to fetch, the limit`
      : this.#noRoom(job, body.byteLength);
    if (full !== undefined) throw new TimeoutError(`the operation ran, but its reply of ${body.byteLength} bytes cannot be held for fetching: ${full}`);
    const streamId = newStreamId();
    const key = keyOf(msg.subject, streamId);
    const count = Math.ceil(body.byteLength / chunkBytes);
    this.#held.set(key, { jobId: job, body, count, chunkBytes, next: 1, expiry: new Expiry(() => this.#dropHeld(key), this.limits) });
    this.#charge(job, body.byteLength, 0);
    msg.respond(body.subarray(0, chunkBytes), { headers: oneHeader(ChunkHeaders.replyChunks, `${streamId};${count};${body.byteLength}`) });
  }

  /** Drops everything held (the subscription is closed). */
  close(): void {
    for (const key of [...this.#partial.keys()]) this.#dropPartial(key);
    for (const key of [...this.#held.keys()]) this.#dropHeld(key);
  }

  #chunk(msg: Msg, c: ChunkHeader, jobId: string): ReceivedBody | undefined {
    const key = keyOf(msg.subject, c.streamId);
    if (c.index === 0) return this.#open(msg, key, c, jobId);
    const s = this.#partial.get(key);
    if (!s) throw new InvalidArgumentError(`chunk ${c.index} of stream ${c.streamId}, which is not open on ${msg.subject} (never opened here, failed, complete or expired)`);
    const data = msg.data;
    try {
      if (s.expiry.over) throw new InvalidArgumentError(`chunk ${c.index} of stream ${c.streamId}, which expired ${this.limits.lifetimeMs} ms after its chunk 0`);
      if (c.count !== s.count || c.totalBytes !== s.totalBytes) {
        throw new InvalidArgumentError(`chunk ${c.index} declares ${c.count} chunks of ${c.totalBytes} bytes; chunk 0 declared ${s.count} of ${s.totalBytes}`);
      }
      if (c.index !== s.chunks.length) throw new InvalidArgumentError(`chunk ${c.index} out of order: chunk ${s.chunks.length} comes next`);
      const want = c.index === s.count - 1 ? s.totalBytes - s.received : s.chunkBytes;
      if (data.byteLength !== want) throw new InvalidArgumentError(`chunk ${c.index} of ${data.byteLength} bytes; it must have ${want}`);
      this.#take(jobId, data.byteLength, 0);
    } catch (e) {
      this.#dropPartial(key);
      throw e;
    }
    s.chunks.push(Buffer.from(data));
    s.received += data.byteLength;
    if (s.chunks.length === s.count) return { body: this.#complete(key, s), owned: true };
    s.expiry.touch();
    acknowledge(msg, c.index);
    return undefined;
  }

  /** Chunk 0: checks what it declares against its own length and the bounds, and opens the stream. */
  #open(msg: Msg, key: string, c: ChunkHeader, jobId: string): ReceivedBody | undefined {
    if (this.#partial.has(key)) {
      this.#dropPartial(key);
      throw new InvalidArgumentError(`chunk 0 of stream ${c.streamId} again: a stream id is used once`);
    }
    if (c.totalBytes > this.limits.bodyBytesMax) throw new TooLargeError(`a request of ${c.totalBytes} bytes is over the limit of ${this.limits.bodyBytesMax}`);
    const data = msg.data;
    const least = Math.min(c.totalBytes, firstChunkBytesMin(chunkBytesOf(this.nc)));
    if (data.byteLength < least || c.count !== Math.ceil(c.totalBytes / data.byteLength) || (c.count === 1 && data.byteLength !== c.totalBytes)) {
      throw new InvalidArgumentError(`chunk 0 of ${data.byteLength} bytes does not make ${c.count} chunks of ${c.totalBytes} bytes (chunk 0 must have at least ${least})`);
    }
    if (c.count === 1) return { body: data, owned: false };
    const { streamsMax, jobStreamsMax } = this.limits;
    const streams = this.#jobs.get(jobId)?.streams ?? 0;
    if (this.#partial.size >= streamsMax || (jobId !== "" && streams >= jobStreamsMax)) {
      throw new BusyError(`${this.#partial.size} chunked requests are open, ${streams} of them this job's; limits ${streamsMax} and ${jobStreamsMax} per job`);
    }
    this.#take(jobId, data.byteLength, 1);
    this.#partial.set(key, {
      jobId, count: c.count, totalBytes: c.totalBytes, chunkBytes: data.byteLength, chunks: [Buffer.from(data)], received: data.byteLength,
      expiry: new Expiry(() => this.#dropPartial(key), this.limits),
    });
    acknowledge(msg, 0);
    return undefined;
  }

  /** The whole body of a stream whose last chunk came, in a buffer of its own; the stream is dropped. */
  #complete(key: string, s: PartialStream): Buffer {
    const body = Buffer.allocUnsafeSlow(s.totalBytes);
    let at = 0;
    for (const c of s.chunks) {
      body.set(c, at);
      at += c.byteLength;
    }
    this.#dropPartial(key);
    return body;
  }

  #fetch(msg: Msg, key: string, index: number): void {
    const r = this.#held.get(key);
    if (!r) throw new InvalidArgumentError(`no reply held for this stream on ${msg.subject} (never held here, fetched, failed or expired)`);
    if (index !== r.next || msg.data.byteLength > 0 || r.expiry.over) {
      this.#dropHeld(key);
      throw new InvalidArgumentError(msg.data.byteLength > 0 ? "a request for a reply chunk carries no body"
        : r.expiry.over ? `a reply held for ${this.limits.lifetimeMs} ms expires` : `reply chunk ${index} out of order: chunk ${r.next} comes next`);
    }
    const from = index * r.chunkBytes;
    const bytes = r.body.subarray(from, Math.min(r.body.byteLength, from + r.chunkBytes));
    r.next++;
    if (r.next === r.count) this.#dropHeld(key);
    else r.expiry.touch();
    msg.respond(bytes);
  }

  /** Why `bytes` more cannot be held for `jobId` ("": a prefix that names no job), or undefined when they can. */
  #noRoom(jobId: string, bytes: number): string | undefined {
    const { heldBytesMax, jobHeldBytesMax } = this.limits;
    if (this.#heldBytes + bytes > heldBytesMax) return `${this.#heldBytes} bytes held for all jobs, ${bytes} more would pass the limit of ${heldBytesMax}`;
    const mine = this.#jobs.get(jobId)?.bytes ?? 0;
    if (jobId !== "" && mine + bytes > jobHeldBytesMax) return `${mine} bytes held for this job, ${bytes} more would pass its limit of ${jobHeldBytesMax}`;
    return undefined;
  }

  /** Charges a request stream's `bytes` (and `streams` opened) to `jobId`, or throws Busy past a bound. */
  #take(jobId: string, bytes: number, streams: number): void {
    const full = this.#noRoom(jobId, bytes);
    if (full !== undefined) throw new BusyError(`a chunked request cannot be held: ${full}`);
    this.#charge(jobId, bytes, streams);
  }

  /** Adds (or with negative numbers, takes back) bytes and streams held for `jobId`. */
  #charge(jobId: string, bytes: number, streams: number): void {
    this.#heldBytes += bytes;
    const j = this.#jobs.get(jobId) ?? { streams: 0, bytes: 0 };
    j.bytes += bytes;
    j.streams += streams;
    if (j.bytes === 0 && j.streams === 0) this.#jobs.delete(jobId);
    else this.#jobs.set(jobId, j);
  }

  #dropPartial(key: string): void {
    const s = this.#partial.get(key);
    if (!s) return;
    s.expiry.cancel();
    this.#partial.delete(key);
    this.#charge(s.jobId, -s.received, -1);
  }

  #dropHeld(key: string): void {
    const r = this.#held.get(key);
    if (!r) return;
    r.expiry.cancel();
    this.#held.delete(key);
    this.#charge(r.jobId, -r.body.byteLength, 0);
  }
}

/** Streams are per subject: a job's subjects are its own, so its stream ids mean nothing on another job's. */
function keyOf(subject: string, streamId: string): string {
  return `${subject} ${streamId}`;
}

function acknowledge(msg: Msg, index: number): void {
  msg.respond(new Uint8Array(0), { headers: oneHeader(ChunkHeaders.chunkAck, String(index)) });
}
