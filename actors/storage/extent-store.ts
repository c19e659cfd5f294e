import type { Tier } from "../../schemas/operations";

/** Bytes read from a store. */
export interface ExtentBytes {
  readonly bytes: Uint8Array;
  /**
   * Present when `bytes` is a view of memory the store reuses once the extent
   * is freed: call it once, when the bytes have been sent or copied; until
   * then the store leaves that memory as it is.
   */
  readonly release?: (() => void) | undefined;
}

/**
 * Where a storage node keeps extent bytes. One implementation per tier.
 * Extents are written once and never reused: a stale reader gets `NotFound`, never other bytes.
 */
export interface ExtentStore {
  readonly tier: Tier;
  readonly capacityBytes: number;
  /** Bytes held now (exact: a 1 KB extent counts 1 KB). */
  readonly usedBytes: number;
  readonly extentCount: number;
  readonly jobCount: number;
  /** The jobs it holds bytes for. */
  jobIds(): IterableIterator<string>;
  /**
   * Stores bytes; throws `AlreadyExists` or `CapacityExceeded`. `owned`: the
   * caller gives the buffer up (no one else holds or reuses it), so the store
   * may keep it rather than copy it.
   */
  write(jobId: string, extentId: string, bytes: Uint8Array, owned?: boolean): Promise<void>;
  /** Reads `[offset, offset+length)`; throws `NotFound` or `InvalidArgument`. */
  read(jobId: string, extentId: string, offset: number, length: number | undefined): Promise<ExtentBytes>;
  /** Frees extents; unknown ids are skipped. Returns bytes freed. */
  free(jobId: string, extentIds: readonly string[]): Promise<number>;
  /** Frees all of a job's extents. Returns bytes freed. */
  dropJob(jobId: string): Promise<number>;
  close(): Promise<void>;
}
