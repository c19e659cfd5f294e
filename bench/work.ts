/** What the benchmark driver asks its client processes to do, and what they report. */
export const System = { Pocket: "pocket", Redis: "redis", NatsKv: "nats-kv" } as const;
export type System = (typeof System)[keyof typeof System];

/** Every system, in the order of the first round (later rounds rotate it). */
export const systems: readonly System[] = [System.Pocket, System.Redis, System.NatsKv];

/** How the results name each system. */
export const systemNames: Readonly<Record<System, string>> = { pocket: "Pocket", redis: "Redis", "nats-kv": "NATS KV" };

export type Op = "put" | "get" | "stat";

export type Work =
  /** One request in flight, `warmup` untimed then `count` timed: per-request latency. */
  | { readonly kind: "latency"; readonly system: System; readonly op: Op; readonly size: number; readonly count: number; readonly warmup: number }
  /** `inflight` requests in flight, one key each, for `durationMs`: requests per second. */
  | { readonly kind: "ops"; readonly system: System; readonly op: "put" | "get"; readonly size: number; readonly inflight: number; readonly durationMs: number }
  /** One request at a time on `keys` objects of `size` bytes for `durationMs` (and at least `opsMin` requests): bytes per second. */
  | { readonly kind: "throughput"; readonly system: System; readonly op: "put" | "get"; readonly size: number; readonly keys: number; readonly durationMs: number; readonly opsMin: number }
  /** Metadata lookups against the job's shard, `inflight` pipelined, for `durationMs`. */
  | { readonly kind: "metadata"; readonly inflight: number; readonly durationMs: number }
  /** One object of `size` bytes streamed in and out; peak RSS growth of this process. */
  | { readonly kind: "stream"; readonly size: number };

/** What the reads of one piece of work found: every read is compared with what was written. */
export interface ReadCounts {
  /** Reads made (a streamed read counts each piece it delivered). */
  readonly reads: number;
  /** Reads whose bytes were compared with what was written. */
  readonly verified: number;
  /** Compared reads whose bytes differed (or that found nothing). */
  readonly wrong: number;
  /** The first wrong read, described. */
  readonly firstWrong?: string;
}

export interface WorkResult extends ReadCounts {
  readonly ops: number;
  readonly bytes: number;
  /** Seconds of requests (time spent comparing large reads is left out). */
  readonly seconds: number;
  /** Latency percentiles in microseconds (latency work only). */
  readonly p50Us?: number;
  readonly p99Us?: number;
  /** Stream work: put and get seconds, and peak RSS growth over the baseline. */
  readonly putSeconds?: number;
  readonly getSeconds?: number;
  readonly rssGrowthBytes?: number;
}

export interface WorkerSetup {
  readonly natsUrl: string;
  readonly token: string;
  /** The job's lambda credential (creds text); absent on a bus without authentication. */
  readonly credentials?: string;
  readonly redisPort: number;
  /** The NATS KV column's own nats-server, and its bucket. */
  readonly kvUrl: string;
  readonly kvBucket: string;
  readonly index: number;
}

export type ToWorker = { readonly kind: "work"; readonly id: number; readonly work: Work };
export type FromWorker =
  | { readonly kind: "ready" }
  | { readonly kind: "done"; readonly id: number; readonly result: WorkResult }
  | { readonly kind: "failed"; readonly id: number; readonly message: string };
