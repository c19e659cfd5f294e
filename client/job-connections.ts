import type { NatsConnection } from "@nats-io/transport-node";
import { BusyError } from "../schemas/errors";

/** One job's connection and the calls using it. */
export interface JobConnection {
  readonly jobId: string;
  readonly nc: Promise<NatsConnection>;
  /** Calls in flight on it. */
  users: number;
  /** When its last call settled (Date.now() ms). */
  idleSinceMs: number;
  /** No longer kept (evicted, or its job forgotten): closed once `users` is 0. */
  retired: boolean;
}

/** How long a connection beyond `connectionsMax` stays open once idle (its job's next call may come soon). */
export const overflowIdleMs = 1_000;

/**
 * NATS connections made with jobs' lambda credentials, one per job (for a
 * client that holds those credentials: a driver that also reads and writes
 * its jobs' data). Each counts the calls in flight on it (`acquire` …
 * `release`), and one in use is never closed under its calls:
 *
 * - Past `connectionsMax`, a new job's connection takes the place of the
 *   least recently used idle one, which is closed.
 * - When every one is in use, up to `overflowMax` more are opened; those
 *   beyond `connectionsMax` are closed once idle for `overflowIdleMs`
 *   (least recently used first), or at once when another job needs room.
 * - Past `connectionsMax + overflowMax` open (closing ones included), all in
 *   use, a call fails with `Busy` (transient: the retry policy tries it again
 *   after a wait) rather than wait for a slot without a bound on how long.
 */
export class JobConnections {
  /** Least recently used first: an entry is moved to the end each time it is acquired. */
  readonly #entries = new Map<string, JobConnection>();
  /** Retired connections still in use (closed when their last call settles); they count towards the hard bound. */
  readonly #retiring = new Set<JobConnection>();
  /** Connections closing (draining): still open, so they count towards the hard bound too. */
  #closing = 0;
  /** Closes idle connections beyond `connectionsMax`; set while there are some. */
  #sweep: NodeJS.Timeout | undefined;

  constructor(
    private readonly open: (jobId: string) => Promise<NatsConnection>,
    readonly connectionsMax: number,
    readonly overflowMax: number,
  ) {}

  /** Open connections: kept (idle or in use), retired ones still in use, and those closing. */
  get size(): number {
    return this.#entries.size + this.#retiring.size + this.#closing;
  }

  /** The job's connection, opened if needed, counted as in use until `release`. Throws Busy past the hard bound. */
  acquire(jobId: string): JobConnection {
    let entry = this.#entries.get(jobId);
    if (entry !== undefined) this.#entries.delete(jobId);
    else entry = this.#connect(jobId);
    this.#entries.set(jobId, entry);
    entry.users++;
    return entry;
  }

  /** A call has settled on `entry`: a retired one is closed once idle, one beyond the bound soon after. */
  release(entry: JobConnection): void {
    entry.users--;
    if (entry.users > 0) return;
    entry.idleSinceMs = Date.now();
    if (entry.retired) {
      if (this.#retiring.delete(entry)) this.#drain(entry);
      return;
    }
    if (this.#entries.size > this.connectionsMax) this.#sweepSoon();
  }

  /** The job's connection without counting a use (for callers that hold it themselves); undefined when none is kept. */
  peek(jobId: string): Promise<NatsConnection> | undefined {
    return this.#entries.get(jobId)?.nc;
  }

  /** The job is gone: its connection is no longer kept, and is closed once its calls have settled. */
  forget(jobId: string): void {
    const entry = this.#entries.get(jobId);
    if (entry !== undefined) this.#retire(entry);
  }

  /** Closes every connection (calls still on them fail). */
  async close(): Promise<void> {
    clearTimeout(this.#sweep);
    this.#sweep = undefined;
    const all = [...this.#entries.values(), ...this.#retiring];
    this.#entries.clear();
    this.#retiring.clear();
    for (const entry of all) {
      entry.retired = true;
      await drain(entry);
    }
  }

  #connect(jobId: string): JobConnection {
    if (this.#entries.size >= this.connectionsMax) this.#evictIdle();
    if (this.size >= this.connectionsMax + this.overflowMax) {
      throw new BusyError(`the NATS connections of ${this.size} jobs are all in use or closing`);
    }
    const entry: JobConnection = { jobId, nc: this.open(jobId), users: 0, idleSinceMs: 0, retired: false };
    // A connection that could not be made is not kept: the next call tries again.
    entry.nc.catch(() => {
      if (this.#entries.get(jobId) === entry) this.#entries.delete(jobId);
    });
    return entry;
  }

  /** Closes the least recently used idle connection, if there is one. */
  #evictIdle(): void {
    for (const entry of this.#entries.values()) {
      if (entry.users > 0) continue;
      this.#retire(entry);
      return;
    }
  }

  #sweepSoon(): void {
    if (this.#sweep !== undefined) return;
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.#shrink();
    }, overflowIdleMs);
    this.#sweep.unref();
  }

  /** Closes connections idle for `overflowIdleMs`, least recently used first, while more than `connectionsMax` are kept. */
  #shrink(): void {
    const idleBeforeMs = Date.now() - overflowIdleMs;
    for (const entry of [...this.#entries.values()]) {
      if (this.#entries.size <= this.connectionsMax) return;
      if (entry.users === 0 && entry.idleSinceMs <= idleBeforeMs) this.#retire(entry);
    }
    // Some beyond the bound are in use, or were idle only briefly: look again later.
    if (this.#entries.size > this.connectionsMax) this.#sweepSoon();
  }

  #retire(entry: JobConnection): void {
    if (this.#entries.get(entry.jobId) === entry) this.#entries.delete(entry.jobId);
    if (entry.retired) return;
    entry.retired = true;
    if (entry.users === 0) this.#drain(entry);
    else this.#retiring.add(entry);
  }

  /** Closes a connection no call uses any more (in the background), counted as open until it is closed. */
  #drain(entry: JobConnection): void {
    this.#closing++;
    void drain(entry).finally(() => { this.#closing--; });
  }
}

/** Drains a connection no call uses any more. */
function drain(entry: JobConnection): Promise<void> {
  // A connection that never opened was reported to the call that asked for it; one already closed has nothing left to drain.
  return entry.nc.then((nc) => (nc.isClosed() ? undefined : nc.drain())).catch(() => undefined);
}
