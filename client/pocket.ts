import { connect, type NatsConnection } from "@nats-io/transport-node";
import { InvalidArgumentError, isPocketError, ErrorCode, NodeUnavailableError, NotFoundError, InternalError } from "../schemas/errors";
import { ControllerOps, NodeOps, ShardOps, type ExtentRef, type JobHints, type NodeInfo, type Weight } from "../schemas/operations";
import type { ReplyOf } from "../schemas/operation";
import type { Caller } from "../bus/caller";
import { NatsCaller } from "../bus/nats-rpc";
import { Subjects } from "../bus/subjects";
import { TcpPool } from "../bus/tcp-client";
import { mapLimit } from "../actors/runtime/concurrency";
import { peekJobClaims } from "../actors/runtime/tokens";

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
  readonly transport?: ClientTransport;
  /** Extents moved at once per put or get. */
  readonly extentsInflightMax?: number;
  readonly requestTimeoutMs?: number;
  /** Name shown in the NATS server's connection list. */
  readonly name?: string;
}

export interface RegisteredJob {
  readonly jobId: string;
  readonly token: string;
  readonly shardId: string;
  readonly expiresAtMs: number;
  readonly weights: readonly Weight[];
}

export interface PutOptions {
  /** Fail with `AlreadyExists` instead of overwriting. */
  readonly createOnly?: boolean;
}

export type Data = Uint8Array | string;

/** A lookup can race an overwrite that frees the old extents: retry the whole read this many times. */
const staleReadRetriesMax = 3;

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
  readonly controller: Caller;

  private constructor(readonly nc: NatsConnection, readonly options: PocketOptions) {
    this.#pool = new TcpPool({ requestTimeoutMs: options.requestTimeoutMs ?? 30_000 });
    this.controller = new NatsCaller(nc, Subjects.controller, options.requestTimeoutMs ?? 30_000);
  }

  static async connect(options: PocketOptions): Promise<PocketClient> {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: options.servers, name: options.name ?? "pocket-client", maxReconnectAttempts: 10 });
    } catch (e) {
      throw new NodeUnavailableError(`cannot reach NATS at ${String(options.servers)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    return new PocketClient(nc, options);
  }

  async registerJob(name: string, hints: JobHints = {}): Promise<RegisteredJob> {
    return (await this.controller.call(ControllerOps.jobRegister, { name, hints })).reply;
  }

  /** Ends a job; every byte it stored is freed. */
  async deregisterJob(token: string): Promise<{ jobId: string; freedBytes: number }> {
    this.#jobs.delete(token);
    return (await this.controller.call(ControllerOps.jobDeregister, { token })).reply;
  }

  /** A handle on one job's namespace (cached per token). */
  job(token: string): PocketJob {
    let j = this.#jobs.get(token);
    if (!j) {
      j = new PocketJob(this, token);
      this.#jobs.set(token, j);
    }
    return j;
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

  /** The caller for a storage node: direct TCP, or NATS in NATS-only mode. */
  nodeCaller(ref: ExtentRef): Caller {
    if (this.options.transport === ClientTransport.Nats) return new NatsCaller(this.nc, Subjects.node(ref.nodeId), this.options.requestTimeoutMs ?? 30_000);
    if (!ref.addr) throw new NodeUnavailableError(`node ${ref.nodeId} has no known address`);
    return this.#pool.caller(ref.addr);
  }

  get extentsInflightMax(): number {
    return this.options.extentsInflightMax ?? 8;
  }

  async close(): Promise<void> {
    this.#pool.close();
    await this.nc.drain().catch(() => undefined);
  }
}

/** One job's namespace. Paths are relative to the job: `a/b/c`. */
export class PocketJob {
  readonly jobId: string;
  readonly shard: Caller;

  constructor(private readonly client: PocketClient, readonly token: string) {
    const claims = peekJobClaims(token);
    this.jobId = claims.jobId;
    this.shard = new NatsCaller(client.nc, Subjects.shard(claims.shardId), client.options.requestTimeoutMs ?? 30_000);
  }

  /** Stores an object; it becomes visible, whole, when this resolves. */
  async put(path: string, data: Data, options: PutOptions = {}): Promise<{ version: number; size: number }> {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    const { writeId, extents } = (await this.shard.call(ShardOps.objectCreate, {
      token: this.token, path, size: bytes.byteLength, createOnly: options.createOnly,
    })).reply;
    try {
      let offset = 0;
      const slices = extents.map((e) => {
        const s = { ref: e, bytes: bytes.subarray(offset, offset + e.length) };
        offset += e.length;
        return s;
      });
      await mapLimit(slices, this.client.extentsInflightMax, async (s) => {
        await this.client.nodeCaller(s.ref).call(NodeOps.extentWrite, { token: this.token, extentId: s.ref.extentId }, { payload: s.bytes });
      });
      const done = (await this.shard.call(ShardOps.objectCommit, { token: this.token, writeId })).reply;
      return { version: done.version, size: done.size };
    } catch (e) {
      await this.shard.call(ShardOps.objectAbort, { token: this.token, writeId }).catch(() => undefined);
      throw e;
    }
  }

  /** Reads a whole object. Never returns a mix of versions. */
  async get(path: string): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const obj = (await this.shard.call(ShardOps.objectLookup, { token: this.token, path })).reply;
      try {
        return await this.#read(obj.extents, obj.size);
      } catch (e) {
        // An extent freed under us means the object was overwritten or deleted since the lookup.
        if (!isPocketError(e, ErrorCode.NotFound) || attempt >= staleReadRetriesMax) throw e;
      }
    }
  }

  async #read(extents: readonly ExtentRef[], size: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(size);
    const offsets: number[] = [];
    let at = 0;
    for (const e of extents) {
      offsets.push(at);
      at += e.length;
    }
    if (at !== size) throw new InternalError(`extents add up to ${at} bytes, object has ${size}`);
    await mapLimit(extents, this.client.extentsInflightMax, async (e, i) => {
      const r = await this.client.nodeCaller(e).call(NodeOps.extentRead, { token: this.token, extentId: e.extentId });
      const got = r.payload ?? new Uint8Array(0);
      if (got.byteLength !== e.length) throw new InternalError(`extent ${e.extentId}: ${got.byteLength} bytes, expected ${e.length}`);
      out.set(got, offsets[i]!);
    });
    return out;
  }

  async stat(path: string): Promise<ReplyOf<typeof ShardOps.stat>> {
    return (await this.shard.call(ShardOps.stat, { token: this.token, path })).reply;
  }

  /** Deletes an object, or a directory with `recursive`. */
  async delete(path: string, options: { recursive?: boolean } = {}): Promise<{ objects: number; bytes: number }> {
    return (await this.shard.call(ShardOps.delete, { token: this.token, path, recursive: options.recursive })).reply;
  }

  async mkdir(path: string): Promise<void> {
    await this.shard.call(ShardOps.mkdir, { token: this.token, path });
  }

  /** One page of a directory listing, in name order. */
  async list(path = "", options: { after?: string; limit?: number } = {}): Promise<ReplyOf<typeof ShardOps.list>> {
    if (options.limit !== undefined && options.limit < 1) throw new InvalidArgumentError("limit must be at least 1");
    return (await this.shard.call(ShardOps.list, { token: this.token, path, after: options.after, limit: options.limit })).reply;
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
    return (await this.shard.call(ShardOps.count, { token: this.token, path, recursive: options.recursive })).reply;
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
