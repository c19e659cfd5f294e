/** What the benchmark driver asks its client processes to do, and what they report. */
export const System = { Pocket: "pocket", Redis: "redis" } as const;
export type System = (typeof System)[keyof typeof System];

export type Op = "put" | "get" | "stat";

export type Work =
  /** One request in flight, `count` times: per-request latency. */
  | { readonly kind: "latency"; readonly system: System; readonly op: Op; readonly size: number; readonly count: number }
  /** `inflight` requests in flight for `durationMs`: requests per second. */
  | { readonly kind: "ops"; readonly system: System; readonly op: "put" | "get"; readonly size: number; readonly inflight: number; readonly durationMs: number }
  /** One request at a time on `keys` objects of `size` bytes for `durationMs`: bytes per second. */
  | { readonly kind: "throughput"; readonly system: System; readonly op: "put" | "get"; readonly size: number; readonly keys: number; readonly durationMs: number }
  /** Metadata lookups against the job's shard, `inflight` pipelined, for `durationMs`. */
  | { readonly kind: "metadata"; readonly inflight: number; readonly durationMs: number }
  /** One object of `size` bytes streamed in and out; peak RSS growth of this process. */
  | { readonly kind: "stream"; readonly size: number };

export interface WorkResult {
  readonly ops: number;
  readonly bytes: number;
  readonly seconds: number;
  /** Latency percentiles in microseconds (latency work only). */
  readonly p50Us?: number;
  readonly p99Us?: number;
  /** Reads whose bytes were compared with what was written. */
  readonly verified: number;
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
  readonly index: number;
}

export type ToWorker = { readonly kind: "work"; readonly id: number; readonly work: Work };
export type FromWorker =
  | { readonly kind: "ready" }
  | { readonly kind: "done"; readonly id: number; readonly result: WorkResult }
  | { readonly kind: "failed"; readonly id: number; readonly message: string };
