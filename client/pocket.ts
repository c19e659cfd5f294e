import { Readable } from "node:stream";
import fs from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { InvalidArgumentError, isPocketError, ErrorCode, NodeUnavailableError, NotFoundError, IntegrityError } from "../schemas/errors";
import { ControllerOps, NodeOps, ShardOps, WireLimits, type ExtentRef, type JobHints, type NodeInfo, type Weight, type WriteReceipt } from "../schemas/operations";
import type { Operation, ReplyOf, RequestOf } from "../schemas/operation";
import type { Bus } from "../bus/bus";
import type { Caller, CallOptions, CallResult } from "../bus/caller";
import { ControllerCaller, NatsCaller } from "../bus/nats-rpc";
import { connectWithCreds } from "../bus/nats-connect";
import { Subjects } from "../bus/subjects";
import { ConnectFailedError, ConnectionLostError, TcpPool } from "../bus/tcp-client";
import { mapLimit } from "../lib/concurrency";
import { crc32, crc32Combine, isCrc32 } from "../lib/checksum";
import { peekJobClaims } from "../bus/tokens";

export const ClientTransport = {
  /** Object bytes over the direct TCP transport, control over NATS. */
  Auto: "auto",
  /** Everything over NATS (for clients that can reach only NATS). */
  Nats: "nats",
} as const;
export type ClientTransport = (typeof ClientTransport)[keyof typeof ClientTransport];

export interface PocketOptions {
  /** NATS URL(s) of the cluster, e.g. `nats://127.0.0.1:4222`. */
  readonly servers: string | string[];
  /**
   * This process's NATS credential (creds file text): a lambda's (from its
   * job's registration), a driver's or an operator's. `credentialsFromEnv()`
   * reads it from `POCKET_CREDS` or the file named by `POCKET_NATS_CREDS`.
   */
  readonly credentials?: string;
  /**
   * The cluster's CA certificate (PEM text) for a cluster that runs TLS:
   * NATS and the direct transport are then reached over TLS only, and each
   * server's certificate must verify with it. `tlsCaFromEnv()` reads it from
   * the file named by `POCKET_TLS_CA`.
   */
  readonly tlsCa?: string;
  readonly transport?: ClientTransport;
  /** Extents moved at once per put or get. */
  readonly extentsInflightMax?: number;
  readonly requestTimeoutMs?: number;
  /** Name shown in the NATS server's connection list. */
  readonly name?: string;
  /** Shards whose address and limits are remembered. */
  readonly shardCacheMax?: number;
}

type ShardInfo = ReplyOf<typeof ShardOps.info>;

export interface RegisteredJob {
  readonly jobId: string;
  readonly token: string;
  readonly shardId: string;
  readonly expiresAtMs: number;
  readonly leaseExpiresAtMs: number;
  readonly leaseMs: number;
  readonly tier: string;
  readonly weights: readonly Weight[];
  /** The NATS credential the job's lambdas connect with (hand it to them with the token). */
  readonly credentials?: string;
}

/**
 * The credential in the environment: `POCKET_CREDS` (creds text, or its
 * base64url, as `pocket job register` prints it for lambdas) or the file named by
 * `POCKET_NATS_CREDS` (drivers and operators). Undefined when neither is set.
 */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const inline = env["POCKET_CREDS"];
  if (inline) return inline.includes("-----BEGIN") ? inline : Buffer.from(inline, "base64url").toString("utf8");
  const file = env["POCKET_NATS_CREDS"];
  return file ? fs.readFileSync(file, "utf8") : undefined;
}

/**
 * The cluster's CA certificate (PEM text) from the file named by
 * `POCKET_TLS_CA` (`pocket up --tls` prints it); undefined when it is not set.
 *
 * @example
 *   const pocket = await PocketClient.connect({ servers, credentials: credentialsFromEnv(), tlsCa: tlsCaFromEnv() });
 */
export function tlsCaFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = env["POCKET_TLS_CA"];
  return file ? fs.readFileSync(file, "utf8") : undefined;
}

export interface PutOptions {
  /** Fail with `AlreadyExists` instead of overwriting. */
  readonly createOnly?: boolean;
}

export type Data = Uint8Array | string;

/** A lookup can race an overwrite that frees the old extents: retry the whole read this many times. */
const staleReadRetriesMax = 3;
/** Reads whose bytes do not match their checksums are tried again this many times (with a fresh layout) before IntegrityError. */
const integrityRetriesMax = 1;
/** Jobs one client keeps alive at once. */
const leasesMax = 10_000;
/** Jobs whose lambda credential one client keeps a NATS connection open with. */
const jobConnectionsMax = 64;

/**
 * The client a lambda imports. One per process: connections are reused
 * across calls and across jobs.
 *
 * @example
 *   const pocket = await PocketClient.connect({ servers: process.env.POCKET_NATS_URL! });
 *   const job = pocket.job(process.env.POCKET_TOKEN!);
 *   await job.put("shuffle/part-0", bytes);
 *   const back = await job.get("shuffle/part-0");
 *   await pocket.close();
 */
export class PocketClient {
  readonly #pool: TcpPool;
  readonly #jobs = new Map<string, PocketJob>();
  /** token → lease renewal timer, for jobs this client registered. */
  readonly #leases = new Map<string, NodeJS.Timeout>();
  /** shardId → address and limits (insertion-ordered: the oldest goes first past the bound). */
  readonly #shards = new Map<string, Promise<ShardInfo>>();
  /** jobId → lambda credential, for jobs this client registered (or was given one for). */
  readonly #jobCredentials = new Map<string, string>();
  /** jobId → a connection made with that job's lambda credential (insertion-ordered, bounded). */
  readonly #jobConnections = new Map<string, Promise<NatsConnection>>();
  readonly controller: Caller;
  readonly #nc: NatsConnection | undefined;
  /** The bus every call goes over, for a client made with `over` (the simulation's). */
  readonly #bus: Pick<Bus, "caller"> | undefined;

  private constructor(nc: NatsConnection | undefined, readonly options: PocketOptions, bus?: Pick<Bus, "caller">) {
    this.#nc = nc;
    this.#bus = bus;
    this.#pool = new TcpPool({ requestTimeoutMs: options.requestTimeoutMs ?? 30_000, tls: options.tlsCa !== undefined ? { ca: options.tlsCa } : undefined });
    this.controller = new ControllerCaller(bus ?? nc!, options.requestTimeoutMs ?? 30_000);
  }

  /**
   * A client whose every call goes over `bus` (no NATS connection, no direct
   * transport, no lease renewal timers): the simulation's clients.
   */
  static over(bus: Pick<Bus, "caller">, options: Omit<PocketOptions, "servers" | "transport"> = {}): PocketClient {
    return new PocketClient(undefined, { ...options, servers: [], transport: ClientTransport.Nats }, bus);
  }

  /** This client's own NATS connection. */
  get nc(): NatsConnection {
    if (!this.#nc) throw new Error("this client runs over a bus of its own, not a NATS connection");
    return this.#nc;
  }

  /** A caller for a job's operations at `prefix`: over the client's bus, or NATS with the job's credential. */
  async #jobCaller(prefix: string, jobId: string): Promise<Caller> {
    const timeoutMs = this.options.requestTimeoutMs ?? 30_000;
    if (this.#bus) return this.#bus.caller(prefix, timeoutMs);
    return new NatsCaller(await this.natsFor(jobId), prefix, timeoutMs);
  }

  static async connect(options: PocketOptions): Promise<PocketClient> {
    const nc = await connectWithCreds(options.servers, options.credentials, undefined, {
      name: options.name ?? "pocket-client", maxReconnectAttempts: 10, ...natsTls(options),
    });
    return new PocketClient(nc, options);
  }

  /**
   * The NATS connection a job's requests go on: one made with the job's own
   * lambda credential when this client has it (a driver that also reads and
   * writes its job's data), else this client's own (a lambda's).
   */
  natsFor(jobId: string): Promise<NatsConnection> {
    const creds = this.#jobCredentials.get(jobId);
    if (creds === undefined || !this.#nc) return Promise.resolve(this.nc);
    let c = this.#jobConnections.get(jobId);
    if (!c) {
      if (this.#jobConnections.size >= jobConnectionsMax) {
        const [oldest, conn] = this.#jobConnections.entries().next().value!;
        this.#jobConnections.delete(oldest);
        void conn.then((nc) => nc.drain()).catch(() => undefined);
      }
      c = connectWithCreds(this.options.servers, creds, undefined, { name: `${this.options.name ?? "pocket-client"}-${jobId}`, maxReconnectAttempts: 10, ...natsTls(this.options) });
      c.catch(() => this.#jobConnections.delete(jobId));
      this.#jobConnections.set(jobId, c);
    }
    return c;
  }

  #forgetJobConnection(jobId: string): void {
    this.#jobCredentials.delete(jobId);
    const c = this.#jobConnections.get(jobId);
    this.#jobConnections.delete(jobId);
    void c?.then((nc) => nc.drain()).catch(() => undefined);
  }

  /**
   * Registers a job. While this client is open it renews the job's lease
   * (every third of it), so the job lives as long as its driver; a driver
   * that dies stops renewing and the controller reclaims the job when the
   * lease runs out. `renew: false` leaves renewal to the caller.
   */
  async registerJob(name: string, hints: JobHints = {}, options: { leaseMs?: number; renew?: boolean } = {}): Promise<RegisteredJob> {
    const reg = (await this.controller.call(ControllerOps.jobRegister, { name, hints, ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}) })).reply;
    if (options.renew !== false && !this.#bus) this.#keepAlive(reg.token, reg.leaseMs);
    if (reg.credentials !== undefined) this.#rememberCredentials(reg.jobId, reg.credentials);
    return reg;
  }

  /** Renews a job's lease now. */
  async renewLease(token: string): Promise<{ jobId: string; leaseExpiresAtMs: number }> {
    return (await this.controller.call(ControllerOps.jobRenew, { token })).reply;
  }

  #keepAlive(token: string, leaseMs: number): void {
    if (this.#leases.size >= leasesMax) return;
    const timer = setInterval(() => {
      this.renewLease(token).catch((e: unknown) => {
        // A job that is gone stays gone; other errors (the controller restarting) are retried next time.
        if (isPocketError(e, ErrorCode.UnknownJob) || isPocketError(e, ErrorCode.Unauthorized)) this.#stopRenewing(token);
      });
    }, Math.max(250, Math.floor(leaseMs / 3)));
    timer.unref();
    this.#leases.set(token, timer);
  }

  #stopRenewing(token: string): void {
    const t = this.#leases.get(token);
    if (t) clearInterval(t);
    this.#leases.delete(token);
  }

  /** Ends a job; every byte it stored is freed. */
  async deregisterJob(token: string): Promise<{ jobId: string; freedBytes: number }> {
    const job = this.#jobs.get(token);
    this.#jobs.delete(token);
    this.#stopRenewing(token);
    const r = (await this.controller.call(ControllerOps.jobDeregister, { token })).reply;
    if (job) this.#forgetJobConnection(job.jobId);
    return r;
  }

  #rememberCredentials(jobId: string, credentials: string): void {
    if (this.#jobCredentials.size >= leasesMax) this.#jobCredentials.delete(this.#jobCredentials.keys().next().value!);
    this.#jobCredentials.set(jobId, credentials);
  }

  /**
   * A handle on one job's namespace (cached per token). `credentials`: the
   * job's lambda credential, when this client connected with another one.
   */
  job(token: string, credentials?: string): PocketJob {
    let j = this.#jobs.get(token);
    if (credentials !== undefined) this.#rememberCredentials(peekJobClaims(token).jobId, credentials);
    if (!j) {
      if (this.#jobs.size >= 1024) this.#jobs.delete(this.#jobs.keys().next().value!);
      j = new PocketJob(this, token);
      this.#jobs.set(token, j);
    }
    return j;
  }

  /**
   * A shard's direct-transport address, transport key and limits, asked of the
   * shard over NATS (on the job's subjects: an authenticated source) once and remembered.
   */
  shardInfo(shardId: string, jobId: string): Promise<ShardInfo> {
    let info = this.#shards.get(shardId);
    if (!info) {
      if (this.#shards.size >= (this.options.shardCacheMax ?? 256)) this.#shards.delete(this.#shards.keys().next().value!);
      info = this.#jobCaller(Subjects.shardJob(shardId, jobId), jobId)
        .then((caller) => caller.call(ShardOps.info, {}))
        .then((r) => r.reply);
      info.catch(() => this.#shards.delete(shardId));
      this.#shards.set(shardId, info);
    }
    return info;
  }

  /**
   * Calls a shard operation: over the direct transport in auto mode, over
   * NATS otherwise. A shard whose remembered address no longer answers is
   * looked up again once (it may have restarted elsewhere).
   */
  async callShard<O extends Operation>(job: PocketJob, op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    const { shardId, jobId, token } = job;
    if (this.options.transport === ClientTransport.Nats) {
      return (await this.#jobCaller(Subjects.shardJob(shardId, jobId), jobId)).call(op, request, options);
    }
    // The job holds its shard's caller once resolved: no lookup, no await before the request goes out.
    const held = shardLinks.get(job);
    if (held) {
      try {
        return await held.caller.call(op, request, options);
      } catch (e) {
        if (!(e instanceof ConnectFailedError || e instanceof ConnectionLostError)) throw e;
        shardLinks.delete(job);
        this.#shards.delete(shardId);
        this.#pool.drop(held.addr);
        if (!(e instanceof ConnectFailedError)) throw e;
      }
    }
    for (let attempt = 0; ; attempt++) {
      const info = await this.shardInfo(shardId, jobId);
      try {
        const caller = this.#pool.caller(info.addr, { id: info.shardId, key: info.key }, token);
        const r = await caller.call(op, request, options);
        shardLinks.set(job, { caller, addr: info.addr });
        return r;
      } catch (e) {
        // A NodeUnavailable the shard replied with (it cannot reach nodes) says nothing about its address.
        if (!(e instanceof ConnectFailedError || e instanceof ConnectionLostError)) throw e;
        // The address may be stale (the shard restarted elsewhere, or another process has its port): ask again next time.
        this.#shards.delete(shardId);
        this.#pool.drop(info.addr);
        // Only a connection that never carried the request (or a peer that did not prove itself) is safe to retry at once.
        if (!(e instanceof ConnectFailedError) || attempt > 0) throw e;
      }
    }
  }

  /**
   * Calls a storage node for a job: direct TCP to the address and key the
   * job's shard gave (the node must prove it holds the key), or NATS in NATS-only mode.
   */
  async callNode<O extends Operation>(ref: ExtentRef, op: O, request: RequestOf<O> & { token?: string }, options?: CallOptions): Promise<CallResult<O>> {
    const token = request.token ?? "";
    if (this.options.transport === ClientTransport.Nats) {
      const jobId = peekJobClaims(token).jobId;
      return (await this.#jobCaller(Subjects.nodeJob(ref.nodeId, jobId), jobId)).call(op, request, options);
    }
    if (!ref.addr || !ref.key) throw new NodeUnavailableError(`node ${ref.nodeId} has no known address`);
    return this.#pool.caller(ref.addr, { id: ref.nodeId, key: ref.key }, token).call(op, request, options);
  }

  async listJobs(): Promise<ReplyOf<typeof ControllerOps.jobList>["jobs"]> {
    return (await this.controller.call(ControllerOps.jobList, {})).reply.jobs;
  }

  async listNodes(): Promise<NodeInfo[]> {
    return (await this.controller.call(ControllerOps.nodeList, {})).reply.nodes;
  }

  async listShards(): Promise<ReplyOf<typeof ControllerOps.shardList>["shards"]> {
    return (await this.controller.call(ControllerOps.shardList, {})).reply.shards;
  }

  get extentsInflightMax(): number {
    return this.options.extentsInflightMax ?? 8;
  }

  async close(): Promise<void> {
    for (const t of this.#leases.values()) clearInterval(t);
    this.#leases.clear();
    this.#pool.close();
    const jobConnections = [...this.#jobConnections.values()];
    this.#jobConnections.clear();
    for (const c of jobConnections) await c.then((nc) => nc.drain()).catch(() => undefined);
    await this.#nc?.drain().catch(() => undefined);
  }
}

/** The NATS connection's TLS settings for a client's options. */
function natsTls(options: PocketOptions): { tls?: { ca: string } } {
  return options.tlsCa !== undefined ? { tls: { ca: options.tlsCa } } : {};
}

/** A byte range of an object: `length` bytes from `offset` (to the end when absent). */
export interface Range {
  readonly offset?: number;
  readonly length?: number;
}

export interface StreamPutOptions extends PutOptions {
  /** The stream's length, if known: the layout is made at once instead of extent by extent. */
  readonly size?: number;
}

interface Piece {
  readonly ref: ExtentRef;
  readonly offset: number;
  readonly length: number;
}

/** The parts of extents that cover `[offset, offset + length)`. */
export function piecesFor(extents: readonly ExtentRef[], offset: number, length: number): Piece[] {
  const pieces: Piece[] = [];
  const end = offset + length;
  let start = 0;
  for (const ref of extents) {
    const stop = start + ref.length;
    if (stop > offset && start < end) {
      const from = Math.max(offset, start) - start;
      const to = Math.min(end, stop) - start;
      pieces.push({ ref, offset: from, length: to - from });
    }
    if (stop >= end) break;
    start = stop;
  }
  return pieces;
}

function clampRange(size: number, range: Range): { offset: number; length: number } {
  const offset = range.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`bad offset ${offset}`);
  if (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length < 0)) throw new InvalidArgumentError(`bad length ${range.length}`);
  const from = Math.min(offset, size);
  return { offset: from, length: Math.min(size - from, range.length ?? size) };
}

/**
 * Fails with IntegrityError unless `bytes` are `[offset, offset + length)` of
 * something of `total` bytes whose committed CRC-32 is `crc`. A whole read is
 * checked by its own crc; a range by combining the crcs of the bytes around
 * it (from whoever served it) with its own: prefix ‖ range ‖ suffix must give
 * `crc`. This catches bytes damaged in a store or on the way; crcs are no
 * defence against a peer that forges them on purpose.
 */
function checkBytes(what: string, bytes: Uint8Array, want: { offset: number; length: number; total: number; crc: number | undefined }, around: { prefixCrc?: number; suffixCrc?: number }): void {
  if (bytes.byteLength !== want.length) throw new IntegrityError(`${what}: ${bytes.byteLength} bytes, expected ${want.length}`);
  if (want.crc === undefined) throw new IntegrityError(`${what}: the layout carries no crc to check the bytes by`);
  const suffixLength = want.total - want.offset - want.length;
  // An empty part's crc is 0, whatever the server says.
  const prefixCrc = want.offset === 0 ? 0 : around.prefixCrc;
  const suffixCrc = suffixLength === 0 ? 0 : around.suffixCrc;
  if (!isCrc32(prefixCrc) || !isCrc32(suffixCrc)) throw new IntegrityError(`${what}: no crcs of the bytes around the range`);
  const got = crc32Combine(crc32Combine(prefixCrc, crc32(bytes), want.length), suffixCrc, suffixLength);
  if (got !== want.crc) {
    throw new IntegrityError(`${what}: bytes [${want.offset}, ${want.offset + want.length}) do not match the committed crc ${want.crc} (got ${got}); not returned`);
  }
}

/** An inline object's bytes from object.get, checked against its committed crc. */
function checkedInline(r: CallResult<typeof ShardOps.objectGet>, range: Range): Buffer {
  const got = r.payload ?? new Uint8Array(0);
  const { offset, length } = clampRange(r.reply.size, range);
  checkBytes(`inline object ${r.reply.path}`, got, { offset, length, total: r.reply.size, crc: r.reply.crc }, r.reply);
  return Buffer.from(got);
}

/**
 * A put's receipts: held until one commit's worth (`receiptsPerCallMax`) is
 * full, which then goes to the shard (`send`, one batch at a time); `rest()`
 * gives what the commit carries.
 */
class ReceiptBatches {
  #batch: WriteReceipt[] = [];
  #sent: Promise<void> = Promise.resolve();

  constructor(private readonly send: (receipts: WriteReceipt[]) => Promise<void>) {}

  /** Adds a receipt; resolves once a batch it completed has been handed in. */
  add(receipt: WriteReceipt): Promise<void> {
    this.#batch.push(receipt);
    if (this.#batch.length < WireLimits.receiptsPerCallMax) return Promise.resolve();
    const full = this.#batch;
    this.#batch = [];
    this.#sent = this.#sent.then(() => this.send(full));
    return this.#sent;
  }

  /** Waits for the batches sent so far; returns the receipts left for the commit. */
  async rest(): Promise<WriteReceipt[]> {
    await this.#sent;
    return this.#batch;
  }
}

/** Object sizes a job keeps writes reserved ahead for. */
const aheadSizesMax = 4;
/** Reserved writes kept per size. */
const aheadPerSizeMax = 2;
/** A reserved write older than this is not used (the shard sweeps pending writes after 120 s by default). */
const aheadKeptMs = 30_000;

/**
 * Writes the shard laid out ahead for the next puts of a size that repeats
 * (a shuffle's partitions): such a put skips object.create and costs one
 * round trip to the nodes and one to the shard. Bounded in sizes, per size
 * and in age; an unused one expires at the shard and its room is freed then.
 */
class WritesAhead {
  readonly #bySize = new Map<number, Array<{ readonly writeId: string; readonly extents: readonly ExtentRef[]; readonly atMs: number }>>();

  /** A fresh reserved write of exactly `size` bytes, if one is kept. */
  take(size: number): { writeId: string; extents: readonly ExtentRef[] } | undefined {
    const list = this.#bySize.get(size);
    const now = Date.now();
    while (list && list.length > 0) {
      const w = list.shift()!;
      if (now - w.atMs < aheadKeptMs) return w;
    }
    return undefined;
  }

  /** Whether one more reserved write of `size` would be kept. */
  wants(size: number): boolean {
    return (this.#bySize.get(size)?.length ?? 0) < aheadPerSizeMax;
  }

  keep(size: number, writes: ReadonlyArray<{ writeId: string; extents: readonly ExtentRef[] }> | undefined): void {
    if (!writes || writes.length === 0) return;
    let list = this.#bySize.get(size);
    if (!list) {
      if (this.#bySize.size >= aheadSizesMax) this.#bySize.delete(this.#bySize.keys().next().value!);
      this.#bySize.set(size, (list = []));
    }
    const now = Date.now();
    for (const w of writes) if (list.length < aheadPerSizeMax) list.push({ ...w, atMs: now });
  }

  drop(size: number): void {
    this.#bySize.delete(size);
  }

  get empty(): boolean {
    return this.#bySize.size === 0;
  }

  /** Every reserved write kept, now no longer kept. */
  takeAll(): Array<{ writeId: string }> {
    const all = [...this.#bySize.values()].flat();
    this.#bySize.clear();
    return all;
  }
}

/** Each job's resolved shard caller (direct transport), once a call through it has succeeded. */
const shardLinks = new WeakMap<PocketJob, { readonly caller: Caller; readonly addr: string }>();

/** One job's namespace. Paths are relative to the job: `a/b/c`. */
export class PocketJob {
  readonly jobId: string;
  readonly shardId: string;
  readonly #ahead = new WritesAhead();
  /** The size of the last put (laid out on nodes): a size that repeats gets writes reserved ahead. */
  #lastPutSize = -1;
  /** The shard's limits (inline threshold, extent size), asked once. */
  #limits: ShardInfo | undefined;

  constructor(private readonly client: PocketClient, readonly token: string) {
    const claims = peekJobClaims(token);
    this.jobId = claims.jobId;
    this.shardId = claims.shardId;
  }

  /** Calls the job's shard: over the direct transport when it can be reached, else over NATS. */
  async #shard<O extends Operation>(op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    return this.client.callShard(this, op, request, options);
  }

  /** Stores an object; it becomes visible, whole, when this resolves. */
  async put(path: string, data: Data, options: PutOptions = {}): Promise<{ version: number; size: number }> {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    const limits = this.#limits ?? (this.#limits = await this.client.shardInfo(this.shardId, this.jobId));
    if (bytes.byteLength <= limits.inlineBytesMax) {
      const request = { token: this.token, path, createOnly: options.createOnly, crc: crc32(bytes) };
      const r = await this.#shard(ShardOps.objectPut, request, { payload: bytes });
      return { version: r.reply.version, size: r.reply.size };
    }
    const size = bytes.byteLength;
    const repeated = this.#lastPutSize === size;
    this.#lastPutSize = size;
    const reserved = this.#ahead.take(size);
    if (reserved) {
      try {
        return await this.#putInto(reserved, path, bytes, options, { reserved: true, repeated });
      } catch (e) {
        // A reservation that lapsed (the shard swept it, or a node finds its grant expired): put it the usual way.
        if (!isPocketError(e, ErrorCode.NotFound) && !isPocketError(e, ErrorCode.Unauthorized)) throw e;
        this.#ahead.drop(size);
      }
    }
    const create = (): Promise<CallResult<typeof ShardOps.objectCreate>> => this.#shard(ShardOps.objectCreate, {
      token: this.token, path, size, createOnly: options.createOnly, ...(repeated && this.#ahead.wants(size) ? { ahead: 1 } : {}),
    });
    let created: ReplyOf<typeof ShardOps.objectCreate>;
    try {
      created = (await create()).reply;
    } catch (e) {
      // Room held by this job's own reserved writes is given back before the put is refused for want of it.
      if (!isPocketError(e, ErrorCode.CapacityExceeded) || this.#ahead.empty) throw e;
      const held = this.#ahead.takeAll();
      for (const w of held) await this.#abort(w.writeId);
      created = (await create()).reply;
    }
    this.#ahead.keep(size, created.ahead);
    return this.#putInto(created, path, bytes, options, { reserved: false, repeated });
  }

  /**
   * Writes `bytes` into a laid-out write and commits it: one round trip to the
   * nodes, one to the shard. A write reserved ahead names its path at commit;
   * the commit also reserves the next write of this size while puts of it repeat.
   */
  async #putInto(
    write: { writeId: string; extents: readonly ExtentRef[] }, path: string, bytes: Uint8Array, options: PutOptions,
    how: { readonly reserved: boolean; readonly repeated: boolean },
  ): Promise<{ version: number; size: number }> {
    const { writeId, extents } = write;
    try {
      let offset = 0;
      const slices = extents.map((e) => {
        const s = { ref: e, bytes: bytes.subarray(offset, offset + e.length) };
        offset += e.length;
        return s;
      });
      const receipts = this.#receipts(writeId);
      await mapLimit(slices, this.client.extentsInflightMax, async (s) => receipts.add(await this.#writeExtent(s.ref, s.bytes)));
      const size = bytes.byteLength;
      const done = (await this.#shard(ShardOps.objectCommit, {
        token: this.token, writeId, receipts: await receipts.rest(),
        ...(how.reserved ? { path, createOnly: options.createOnly } : {}),
        ...(how.repeated && this.#ahead.wants(size) ? { ahead: 1, size } : {}),
      })).reply;
      this.#ahead.keep(size, done.ahead);
      return { version: done.version, size: done.size };
    } catch (e) {
      await this.#abort(writeId);
      throw e;
    }
  }

  /**
   * Stores an object from a stream, with backpressure: at most
   * `extentsInflightMax + 1` extents of it are in memory at once.
   */
  async putStream(path: string, source: AsyncIterable<Uint8Array | string>, options: StreamPutOptions = {}): Promise<{ version: number; size: number }> {
    const limits = await this.client.shardInfo(this.shardId, this.jobId);
    const extentBytes = limits.extentBytesMax;
    const created = (await this.#shard(ShardOps.objectCreate, {
      token: this.token, path, size: options.size, createOnly: options.createOnly,
    })).reply;
    const known = options.size !== undefined ? [...created.extents] : undefined;
    const receipts = this.#receipts(created.writeId);
    const writes = new Set<Promise<void>>();
    let failure: unknown;
    let extendChain: Promise<unknown> = Promise.resolve();
    let total = 0;
    const flush = async (chunk: Buffer): Promise<void> => {
      // Extents are appended in the order they are asked for: ask one at a time.
      let ref: ExtentRef;
      if (known) {
        ref = known.shift() ?? (() => { throw new InvalidArgumentError(`the stream is longer than its declared size ${options.size}`); })();
        if (ref.length !== chunk.byteLength) throw new InvalidArgumentError(`the stream does not match its declared size ${options.size}`);
      } else {
        const next = extendChain.then(() => this.#shard(ShardOps.objectExtend, { token: this.token, writeId: created.writeId, lengths: [chunk.byteLength] }));
        extendChain = next.catch(() => undefined);
        ref = (await next).reply.extents[0]!;
      }
      await receipts.add(await this.#writeExtent(ref, chunk));
    };
    const start = (chunk: Buffer): void => {
      const p = flush(chunk).catch((e: unknown) => { failure ??= e; }).finally(() => writes.delete(p));
      writes.add(p);
    };
    try {
      let buf = Buffer.allocUnsafe(extentBytes);
      let used = 0;
      for await (const part of source) {
        const bytes = typeof part === "string" ? Buffer.from(part, "utf8") : part;
        let at = 0;
        while (at < bytes.byteLength) {
          const n = Math.min(bytes.byteLength - at, extentBytes - used);
          buf.set(bytes.subarray(at, at + n), used);
          used += n;
          at += n;
          total += n;
          if (used === extentBytes) {
            start(buf);
            buf = Buffer.allocUnsafe(extentBytes);
            used = 0;
            while (writes.size >= this.client.extentsInflightMax && failure === undefined) await Promise.race(writes);
          }
          if (failure !== undefined) throw failure;
        }
      }
      if (used > 0) start(buf.subarray(0, used));
      while (writes.size > 0) await Promise.race(writes);
      if (failure !== undefined) throw failure;
      if (known && known.length > 0) throw new InvalidArgumentError(`the stream ended at ${total} bytes, short of its declared size ${options.size}`);
      const done = (await this.#shard(ShardOps.objectCommit, { token: this.token, writeId: created.writeId, receipts: await receipts.rest() })).reply;
      return { version: done.version, size: done.size };
    } catch (e) {
      while (writes.size > 0) await Promise.race(writes);
      await this.#abort(created.writeId);
      throw e;
    }
  }

  /**
   * Reads a whole object, or a range of it. Never returns a mix of versions,
   * nor bytes that do not match the committed checksums: those are read once
   * more (layout and bytes: a fault on the way may pass), then IntegrityError.
   */
  async get(path: string, range: Range = {}): Promise<Buffer> {
    let integrityRetries = 0;
    for (let attempt = 0; ; attempt++) {
      const r = await this.#shard(ShardOps.objectGet, { token: this.token, path, offset: range.offset, length: range.length });
      try {
        if (r.reply.inline) return checkedInline(r, range);
        const { offset, length } = clampRange(r.reply.size, range);
        return await this.#readPieces(piecesFor(r.reply.extents, offset, length), length);
      } catch (e) {
        if (isPocketError(e, ErrorCode.Integrity) && integrityRetries++ < integrityRetriesMax) continue;
        // An extent freed under us means the object was overwritten or deleted since the lookup.
        // A node drained and removed after our lookup (its extents were moved): the layout has changed too.
        const stale = isPocketError(e, ErrorCode.NotFound) || isPocketError(e, ErrorCode.NodeUnavailable);
        if (!stale || attempt >= staleReadRetriesMax) throw e;
      }
    }
  }

  /**
   * Reads an object (or a range) as a stream, with backpressure: at most
   * `extentsInflightMax` extents are fetched ahead of the consumer. A consumer
   * that stops early (destroys the stream) releases everything.
   * If the object is overwritten while it streams, the stream fails with
   * NotFound rather than mix versions; bytes that do not match the committed
   * checksums fail it with IntegrityError (nothing of them is emitted).
   */
  getStream(path: string, range: Range = {}): Readable {
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      const r = await self.#shard(ShardOps.objectGet, { token: self.token, path, offset: range.offset, length: range.length });
      if (r.reply.inline) {
        const bytes = checkedInline(r, range);
        if (bytes.byteLength > 0) yield bytes;
        return;
      }
      const { offset, length } = clampRange(r.reply.size, range);
      const pieces = piecesFor(r.reply.extents, offset, length);
      const ahead: Array<Promise<Buffer>> = [];
      let next = 0;
      try {
        while (next < pieces.length || ahead.length > 0) {
          while (next < pieces.length && ahead.length < self.client.extentsInflightMax) {
            const p = self.#readPiece(pieces[next++]!).then((r) => r.bytes);
            p.catch(() => undefined); // observed below, or abandoned if the consumer stops
            ahead.push(p);
          }
          yield await ahead.shift()!;
        }
      } finally {
        ahead.length = 0;
      }
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: 1 });
  }

  /** Writes one extent under its grant, with its crc; returns the node's receipt for the commit. */
  async #writeExtent(ref: ExtentRef, bytes: Uint8Array): Promise<WriteReceipt> {
    const crc = crc32(bytes);
    const r = await this.client.callNode(ref, NodeOps.extentWrite, { token: this.token, extentId: ref.extentId, grant: ref.grant, crc }, { payload: bytes });
    if (r.reply.length !== bytes.byteLength || r.reply.crc !== crc) {
      throw new IntegrityError(`extent ${ref.extentId}: the node stored ${r.reply.length} bytes with crc ${r.reply.crc}; sent ${bytes.byteLength} with crc ${crc}`);
    }
    return { extentId: ref.extentId, crc, receipt: r.reply.receipt };
  }

  /** Collects a put's receipts; batches past what one commit carries go to the shard with object.written. */
  #receipts(writeId: string): ReceiptBatches {
    return new ReceiptBatches(async (receipts) => {
      await this.#shard(ShardOps.objectWritten, { token: this.token, writeId, receipts });
    });
  }

  /** Reads one piece and checks it against its extent's committed crc (IntegrityError otherwise). */
  async #readPiece(p: Piece): Promise<{ bytes: Buffer; owned: boolean }> {
    const whole = p.offset === 0 && p.length === p.ref.length;
    const r = await this.client.callNode(p.ref, NodeOps.extentRead, {
      token: this.token, extentId: p.ref.extentId, offset: whole ? undefined : p.offset, length: whole ? undefined : p.length,
    });
    const got = r.payload ?? new Uint8Array(0);
    checkBytes(`extent ${p.ref.extentId}`, got, { offset: p.offset, length: p.length, total: p.ref.length, crc: p.ref.crc }, r.reply);
    return { bytes: Buffer.from(got.buffer, got.byteOffset, got.byteLength), owned: r.payloadOwned === true };
  }

  async #readPieces(pieces: readonly Piece[], length: number): Promise<Buffer> {
    // One piece in a buffer of its own (a large extent read whole): hand it over as it came, no copy.
    if (pieces.length === 1 && pieces[0]!.length === length) {
      const only = await this.#readPiece(pieces[0]!);
      return only.owned ? only.bytes : Buffer.from(only.bytes);
    }
    const out = Buffer.allocUnsafe(length);
    const at: number[] = [];
    let pos = 0;
    for (const p of pieces) {
      at.push(pos);
      pos += p.length;
    }
    if (pos !== length) throw new IntegrityError(`extents cover ${pos} bytes, expected ${length}`);
    await mapLimit(pieces, this.client.extentsInflightMax, async (p, i) => {
      out.set((await this.#readPiece(p)).bytes, at[i]!);
    });
    return out;
  }

  async #abort(writeId: string): Promise<void> {
    try {
      await this.#shard(ShardOps.objectAbort, { token: this.token, writeId });
    } catch {
      // The shard frees an abandoned write's extents itself when its deadline passes.
    }
  }

  async stat(path: string): Promise<ReplyOf<typeof ShardOps.stat>> {
    return (await this.#shard(ShardOps.stat, { token: this.token, path })).reply;
  }

  /** Deletes an object, or a directory with `recursive`. */
  async delete(path: string, options: { recursive?: boolean } = {}): Promise<{ objects: number; bytes: number }> {
    return (await this.#shard(ShardOps.delete, { token: this.token, path, recursive: options.recursive })).reply;
  }

  async mkdir(path: string): Promise<void> {
    await this.#shard(ShardOps.mkdir, { token: this.token, path });
  }

  /** One page of a directory listing, in name order. */
  async list(path = "", options: { after?: string; limit?: number } = {}): Promise<ReplyOf<typeof ShardOps.list>> {
    if (options.limit !== undefined && options.limit < 1) throw new InvalidArgumentError("limit must be at least 1");
    return (await this.#shard(ShardOps.list, { token: this.token, path, after: options.after, limit: options.limit })).reply;
  }

  /** Every entry of a directory, page by page. */
  async *listAll(path = "", pageSize = 1000): AsyncGenerator<ReplyOf<typeof ShardOps.list>["entries"][number]> {
    let after: string | undefined;
    for (;;) {
      const page = await this.list(path, { after, limit: pageSize });
      for (const e of page.entries) yield e;
      if (!page.more || page.entries.length === 0) return;
      after = page.entries[page.entries.length - 1]!.name;
    }
  }

  async count(path = "", options: { recursive?: boolean } = {}): Promise<ReplyOf<typeof ShardOps.count>> {
    return (await this.#shard(ShardOps.count, { token: this.token, path, recursive: options.recursive })).reply;
  }

  /** True if an object or directory exists at `path`. */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }
}
