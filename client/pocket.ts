import fs from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { isPocketError, ErrorCode, InvalidArgumentError, NodeUnavailableError, UnauthorizedError } from "../schemas/errors";
import { ControllerOps, ShardOps, type ExtentRef, type JobHints, type NodeInfo, type Weight } from "../schemas/operations";
import type { Operation, ReplyOf, RequestOf } from "../schemas/operation";
import type { Bus } from "../bus/bus";
import { raceCancel, raceSignal, type Caller, type CallOptions, type CallResult } from "../bus/caller";
import { ControllerCaller, NatsCaller } from "../bus/nats-rpc";
import { connectWithCreds } from "../bus/nats-connect";
import { Subjects } from "../bus/subjects";
import { ConnectFailedError, ConnectionLostError, TcpPool } from "../bus/tcp-client";
import { peekJobClaims } from "../bus/tokens";
import { CallScope, SignalCaller, signalled, type OperationOptions } from "./call-scope";
import { checkOptions } from "./input";
import { JobConnections } from "./job-connections";
import { PocketJob } from "./job";
import { mayRetry, resolvePolicy, Retry, withRetry, type RetryOptions, type RetryPolicy } from "./retry";

export { PocketJob, type Data, type GetOptions, type ListAllOptions, type ListEntry, type ListOptions, type ListPage, type ObjectStat, type DirectoryCount, type PutOptions, type PutResult, type Range, type RecursiveOptions, type StreamPutOptions } from "./job";
export { piecesFor } from "./extents";
export type { OperationOptions } from "./call-scope";

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
  readonly credentials?: string | undefined;
  /**
   * The cluster's CA certificate (PEM text) for a cluster that runs TLS:
   * NATS and the direct transport are then reached over TLS only, and each
   * server's certificate must verify with it. `tlsCaFromEnv()` reads it from
   * the file named by `POCKET_TLS_CA`.
   */
  readonly tlsCa?: string | undefined;
  readonly transport?: ClientTransport | undefined;
  /** Extents moved at once per put or get. */
  readonly extentsInflightMax?: number | undefined;
  readonly requestTimeoutMs?: number | undefined;
  /** Name shown in the NATS server's connection list. */
  readonly name?: string | undefined;
  /** Shards whose address and limits are remembered. */
  readonly shardCacheMax?: number | undefined;
  /**
   * Jobs whose lambda credential this client keeps a NATS connection open
   * with (a driver that reads and writes its jobs' data; default 64). One
   * in use is never closed under its calls: while all are, up to as many
   * again are opened (each closed once idle for a second); past that a
   * call fails with Busy, which the retry policy retries.
   */
  readonly jobConnectionsMax?: number | undefined;
  /**
   * Every call's retry policy (a call's `retry` option overrides it field by
   * field); `false` for none. Default: `defaultRetryPolicy` (3 attempts).
   */
  readonly retry?: RetryOptions | false | undefined;
}

/** Options of `registerJob`. */
export interface RegisterOptions extends OperationOptions {
  /** The job's lease; the controller's default when absent. */
  readonly leaseMs?: number | undefined;
  /** `false`: this client does not renew the lease (the caller does, with `renewLease`). */
  readonly renew?: boolean | undefined;
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

/** Jobs one client keeps alive at once. */
const leasesMax = 10_000;
/** Jobs whose lambda credential one client keeps a NATS connection open with, by default. */
const jobConnectionsMaxDefault = 64;
/** Storage nodes whose caller one job keeps. */
const nodeCallersMax = 256;

/** A node's caller, for the address and key it was made for. */
interface NodeLink {
  readonly caller: Caller;
  readonly addr: string;
  readonly key: string;
}

/** What a job keeps of the direct transport: no lookup and no caller made per request. */
interface JobLinks {
  /** Its shard's caller, once a call through it has succeeded. */
  shard: { readonly caller: Caller; readonly addr: string } | undefined;
  /** Its storage nodes' callers, by node id (insertion-ordered: the oldest goes first past the bound). */
  readonly nodes: Map<string, NodeLink>;
}

const jobLinks = new WeakMap<PocketJob, JobLinks>();

/** What `job` keeps of the direct transport (made on its first call). */
function linksOf(job: PocketJob): JobLinks {
  let links = jobLinks.get(job);
  if (links === undefined) {
    links = { shard: undefined, nodes: new Map() };
    jobLinks.set(job, links);
  }
  return links;
}

/**
 * The client a lambda imports. One per process: connections are reused
 * across calls and across jobs. Every call takes `signal`, `timeoutMs` and
 * `retry` (see `OperationOptions`).
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
  /** jobId → a connection made with that job's lambda credential (bounded; one in use is not closed). */
  readonly #jobConnections: JobConnections;
  readonly controller: Caller;
  readonly #nc: NatsConnection | undefined;
  /** The client's retry policy, checked once (undefined: none). */
  readonly #retry: RetryPolicy | undefined;
  /** The bus every call goes over, for a client made with `over` (the simulation's). */
  readonly #bus: Pick<Bus, "caller"> | undefined;

  private constructor(nc: NatsConnection | undefined, readonly options: PocketOptions, bus?: Pick<Bus, "caller">) {
    this.#nc = nc;
    this.#bus = bus;
    this.#pool = new TcpPool({ requestTimeoutMs: this.requestTimeoutMs, tls: options.tlsCa !== undefined ? { ca: options.tlsCa } : undefined });
    this.controller = new SignalCaller(new ControllerCaller(bus ?? nc!, this.requestTimeoutMs));
    this.#retry = resolvePolicy(options.retry, undefined);
    const jobConnectionsMax = options.jobConnectionsMax ?? jobConnectionsMaxDefault;
    this.#jobConnections = new JobConnections((jobId) => this.#connectJob(jobId), jobConnectionsMax, jobConnectionsMax);
  }

  /** How long one request waits for its reply. */
  get requestTimeoutMs(): number {
    return this.options.requestTimeoutMs ?? 30_000;
  }

  /**
   * A client whose every call goes over `bus` (no NATS connection, no direct
   * transport, no lease renewal timers): the simulation's clients. It does
   * not retry unless given a policy (a seeded run replays its faults as they came).
   */
  static over(bus: Pick<Bus, "caller">, options: Omit<PocketOptions, "servers" | "transport"> = {}): PocketClient {
    checkJobConnectionsMax(options.jobConnectionsMax);
    return new PocketClient(undefined, { ...options, retry: options.retry ?? false, servers: [], transport: ClientTransport.Nats }, bus);
  }

  /** This client's own NATS connection. */
  get nc(): NatsConnection {
    if (!this.#nc) throw new Error("this client runs over a bus of its own, not a NATS connection");
    return this.#nc;
  }

  /**
   * Calls a job's operation at `prefix`: over the client's bus, or over NATS
   * with the job's credential when this client has it (the job's connection
   * counted as in use until the call settles), else with the client's own.
   */
  async #callJob<O extends Operation>(prefix: string, jobId: string, op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    const timeoutMs = this.requestTimeoutMs;
    if (this.#bus) return this.#bus.caller(prefix, timeoutMs).call(op, request, signalled(options));
    if (!this.#jobCredentials.has(jobId)) return new NatsCaller(this.nc, prefix, timeoutMs).call(op, request, signalled(options));
    const entry = this.#jobConnections.acquire(jobId);
    try {
      const nc = await raceCancel(raceSignal(entry.nc, options?.signal), options?.cancel);
      return await new NatsCaller(nc, prefix, timeoutMs).call(op, request, signalled(options));
    } finally {
      this.#jobConnections.release(entry);
    }
  }

  /**
   * Connects to the cluster's NATS servers (with `credentials`, and over TLS
   * verified by `tlsCa` when given). Nothing else is reached until a call
   * needs it.
   */
  static async connect(options: PocketOptions): Promise<PocketClient> {
    checkOptions(options, "PocketClient.connect(options)");
    checkJobConnectionsMax(options.jobConnectionsMax);
    resolvePolicy(options.retry, undefined);
    const nc = await connectWithCreds(options.servers, options.credentials, undefined, {
      name: options.name ?? "pocket-client", maxReconnectAttempts: 10, ...natsTls(options),
    });
    return new PocketClient(nc, options);
  }

  /**
   * The NATS connection a job's requests go on: one made with the job's own
   * lambda credential when this client has it (a driver that also reads and
   * writes its job's data), else this client's own (a lambda's). A job's
   * connection handed out here is not counted as in use: the client may
   * close it to make room once no call of its own uses it.
   */
  natsFor(jobId: string): Promise<NatsConnection> {
    if (!this.#jobCredentials.has(jobId) || !this.#nc) return Promise.resolve(this.nc);
    const kept = this.#jobConnections.peek(jobId);
    if (kept !== undefined) return kept;
    const entry = this.#jobConnections.acquire(jobId);
    this.#jobConnections.release(entry);
    return entry.nc;
  }

  /** A connection made with a job's lambda credential. */
  #connectJob(jobId: string): Promise<NatsConnection> {
    const creds = this.#jobCredentials.get(jobId);
    if (creds === undefined) return Promise.reject(new UnauthorizedError(`this client holds no credential of job ${jobId}`));
    return connectWithCreds(this.options.servers, creds, undefined, { name: `${this.options.name ?? "pocket-client"}-${jobId}`, maxReconnectAttempts: 10, ...natsTls(this.options) });
  }

  /**
   * Registers a job. While this client is open it renews the job's lease
   * (every third of it), so the job lives as long as its driver; a driver
   * that dies stops renewing and the controller reclaims the job when the
   * lease runs out. `renew: false` leaves renewal to the caller.
   */
  async registerJob(name: string, hints: JobHints = {}, options: RegisterOptions = {}): Promise<RegisteredJob> {
    if (typeof name !== "string") throw new TypeError(`registerJob(name): name must be a string, not ${typeof name}`);
    checkOptions(hints, "registerJob(name, hints)");
    checkOptions(options, "registerJob(name, hints, options)");
    const request = { name, hints, ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}) };
    const reg = await this.runCall(options, "registerJob", name, Retry.Once, (scope) => scope.committing(async () =>
      (await this.controller.call(ControllerOps.jobRegister, request, scope.request())).reply));
    if (options.renew !== false && !this.#bus) this.#keepAlive(reg.token, reg.leaseMs);
    if (reg.credentials !== undefined) this.#rememberCredentials(reg.jobId, reg.credentials);
    return reg;
  }

  /** Renews a job's lease now. */
  async renewLease(token: string, options: OperationOptions = {}): Promise<{ jobId: string; leaseExpiresAtMs: number }> {
    checkToken(token, "renewLease(token)");
    checkOptions(options, "renewLease(token, options)");
    return this.runCall(options, "renewLease", undefined, Retry.Idempotent, async (scope) =>
      (await this.controller.call(ControllerOps.jobRenew, { token }, scope.request())).reply);
  }

  #keepAlive(token: string, leaseMs: number): void {
    if (this.#leases.size >= leasesMax) return;
    const timer = setInterval(() => {
      // Not retried here: the next renewal comes in a third of the lease.
      this.renewLease(token, { retry: false }).catch((e: unknown) => {
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

  /**
   * Ends a job; every byte it stored is freed. This client stops renewing
   * its lease once the job is gone (a deregistration that failed or was
   * aborted leaves it renewed).
   */
  async deregisterJob(token: string, options: OperationOptions = {}): Promise<{ jobId: string; freedBytes: number }> {
    checkToken(token, "deregisterJob(token)");
    checkOptions(options, "deregisterJob(token, options)");
    try {
      const r = await this.runCall(options, "deregisterJob", undefined, Retry.Once, (scope) => scope.committing(async () =>
        (await this.controller.call(ControllerOps.jobDeregister, { token }, scope.request())).reply));
      this.#forgetJob(token);
      return r;
    } catch (e) {
      if (isPocketError(e, ErrorCode.UnknownJob) || isPocketError(e, ErrorCode.Unauthorized)) this.#forgetJob(token);
      throw e;
    }
  }

  /** A job is gone: its handle, lease renewal, credential and connection (closed once its calls have settled) are let go. */
  #forgetJob(token: string): void {
    this.#jobs.delete(token);
    this.#stopRenewing(token);
    // From the token itself: the job's handle may never have been made, or have been evicted.
    const jobId = jobIdOf(token);
    if (jobId === undefined) return;
    this.#jobCredentials.delete(jobId);
    this.#jobConnections.forget(jobId);
  }

  /**
   * Runs one call of the SDK (PocketJob's too): its signal and deadline in
   * a scope, its attempts under the retry policy while `retryable` (a kind
   * of call, or a test of the failure) says a failure may be run again.
   * @internal
   */
  async runCall<T>(
    options: OperationOptions, op: string, path: string | undefined, retryable: Retry | ((e: unknown) => boolean), attempt: (scope: CallScope) => Promise<T>,
  ): Promise<T> {
    const policy = options.retry === undefined ? this.#retry : resolvePolicy(this.options.retry, options.retry);
    const scope = new CallScope(options, op, path, this.requestTimeoutMs);
    try {
      const may = typeof retryable === "function" ? retryable : retryTests[retryable];
      return await scope.race(withRetry(scope, policy, may, () => attempt(scope)));
    } finally {
      scope.close();
    }
  }

  /**
   * A scope for one call (its signal and deadline; `close()` it when the call settles) and the call's retry policy.
   * @internal
   */
  callScope(options: OperationOptions, op: string, path?: string): { scope: CallScope; policy: RetryPolicy | undefined } {
    const policy = options.retry === undefined ? this.#retry : resolvePolicy(this.options.retry, options.retry);
    return { scope: new CallScope(options, op, path, this.requestTimeoutMs), policy };
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
    checkToken(token, "job(token)");
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
      info = this.#callJob(Subjects.shardJob(shardId, jobId), jobId, ShardOps.info, {}).then((r) => r.reply);
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
    const { shardId, jobId } = job;
    if (this.options.transport === ClientTransport.Nats) return this.#callJob(Subjects.shardJob(shardId, jobId), jobId, op, request, options);
    // The job holds its shard's caller once resolved: no lookup, no await before the request goes out.
    const links = linksOf(job);
    const held = links.shard;
    if (held) {
      try {
        return await held.caller.call(op, request, options);
      } catch (e) {
        if (!(e instanceof ConnectFailedError || e instanceof ConnectionLostError)) throw e;
        if (links.shard === held) links.shard = undefined;
        this.#shards.delete(shardId);
        this.#pool.drop(held.addr);
        if (!(e instanceof ConnectFailedError)) throw e;
      }
    }
    return this.#callShardAfresh(job, links, op, request, options);
  }

  /** Calls the job's shard at the address it is looked up at now (once more if that turns out stale before the request went out). */
  async #callShardAfresh<O extends Operation>(job: PocketJob, links: JobLinks, op: O, request: RequestOf<O>, options: CallOptions | undefined): Promise<CallResult<O>> {
    const { shardId, jobId } = job;
    for (let attempt = 0; ; attempt++) {
      const info = await raceCancel(raceSignal(this.shardInfo(shardId, jobId), options?.signal), options?.cancel);
      try {
        const caller = this.#pool.caller(info.addr, { id: info.shardId, key: info.key }, job.token);
        const r = await caller.call(op, request, options);
        links.shard = { caller, addr: info.addr };
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
   * job's shard gave (the node must prove it holds the key), or NATS in
   * NATS-only mode. `job`: the job the request is for, when the caller has
   * its handle (its node callers are then kept and reused); else the job is
   * the one `request.token` names.
   */
  callNode<O extends Operation>(ref: ExtentRef, op: O, request: RequestOf<O> & { token?: string }, options?: CallOptions, job?: PocketJob): Promise<CallResult<O>> {
    try {
      if (this.options.transport === ClientTransport.Nats) {
        const jobId = job?.jobId ?? peekJobClaims(request.token ?? "").jobId;
        return this.#callJob(Subjects.nodeJob(ref.nodeId, jobId), jobId, op, request, options);
      }
      return this.#nodeCaller(ref, job, request.token ?? "").call(op, request, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The caller of the node `ref` is on: the one the job keeps for that node at that address and key, else a new one (kept if the job is known). */
  #nodeCaller(ref: ExtentRef, job: PocketJob | undefined, token: string): Caller {
    const { addr, key, nodeId } = ref;
    if (!addr || !key) throw new NodeUnavailableError(`node ${nodeId} has no known address`);
    if (job === undefined) return this.#pool.caller(addr, { id: nodeId, key }, token);
    const nodes = linksOf(job).nodes;
    const held = nodes.get(nodeId);
    if (held !== undefined && held.addr === addr && held.key === key) return held.caller;
    if (held === undefined && nodes.size >= nodeCallersMax) nodes.delete(nodes.keys().next().value!);
    const caller = this.#pool.caller(addr, { id: nodeId, key }, job.token);
    nodes.set(nodeId, { caller, addr, key });
    return caller;
  }

  async listJobs(options: OperationOptions = {}): Promise<ReplyOf<typeof ControllerOps.jobList>["jobs"]> {
    return this.runCall(options, "listJobs", undefined, Retry.Idempotent, async (scope) => (await this.controller.call(ControllerOps.jobList, {}, scope.request())).reply.jobs);
  }

  async listNodes(options: OperationOptions = {}): Promise<NodeInfo[]> {
    return this.runCall(options, "listNodes", undefined, Retry.Idempotent, async (scope) => (await this.controller.call(ControllerOps.nodeList, {}, scope.request())).reply.nodes);
  }

  async listShards(options: OperationOptions = {}): Promise<ReplyOf<typeof ControllerOps.shardList>["shards"]> {
    return this.runCall(options, "listShards", undefined, Retry.Idempotent, async (scope) => (await this.controller.call(ControllerOps.shardList, {}, scope.request())).reply.shards);
  }

  get extentsInflightMax(): number {
    return this.options.extentsInflightMax ?? 8;
  }

  async close(): Promise<void> {
    for (const t of this.#leases.values()) clearInterval(t);
    this.#leases.clear();
    this.#pool.close();
    await this.#jobConnections.close();
    await this.#nc?.drain().catch(() => undefined);
  }
}

/** A job token is a string (whether it is a valid one is the controller's or the shard's to say). */
function checkToken(token: unknown, what: string): void {
  if (typeof token !== "string") throw new TypeError(`${what}: token must be a string, not ${token === null ? "null" : typeof token}`);
}

/** `jobConnectionsMax`, when given, is a whole number, at least 1. */
function checkJobConnectionsMax(value: unknown): void {
  if (value === undefined || (typeof value === "number" && Number.isSafeInteger(value) && value >= 1)) return;
  throw new InvalidArgumentError(`jobConnectionsMax must be a whole number, at least 1, not ${String(value)}`);
}

/** Whether a failure of a call of each kind may be retried (made once, not per call). */
const retryTests: Readonly<Record<Retry, (e: unknown) => boolean>> = {
  [Retry.Idempotent]: (e) => mayRetry(Retry.Idempotent, e),
  [Retry.Once]: (e) => mayRetry(Retry.Once, e),
  [Retry.Never]: () => false,
};

/** The job a token names; undefined for a string that is not a job token. */
function jobIdOf(token: string): string | undefined {
  try {
    return peekJobClaims(token).jobId;
  } catch (e) {
    if (e instanceof UnauthorizedError) return undefined;
    throw e;
  }
}

/** The NATS connection's TLS settings for a client's options. */
function natsTls(options: PocketOptions): { tls?: { ca: string } } {
  return options.tlsCa !== undefined ? { tls: { ca: options.tlsCa } } : {};
}