import { NodeOps, WireLimits } from "../../schemas/operations";
import type { Caller } from "../../bus/caller";
import { errorFields, logger } from "../../lib/log";
import type { Extent } from "./namespace";

interface Batch { readonly nodeId: string; readonly jobId: string; readonly extentIds: string[] }

/** Which batches may take each other's extents: one node, one job. */
function batchKey(nodeId: string, jobId: string): string {
  return `${nodeId}\u0000${jobId}`;
}

/** Told, as a free is sent to a node, what to call with the bytes it freed once it answers. */
export type FreeCredit = (nodeId: string) => (freedBytes: number) => void;

/** How long a free waits for others to the same node and job to go with it, and the timer that waits. */
export interface FreeLinger {
  readonly ms: number;
  readonly after: (ms: number, fn: () => void) => { cancel(): void };
}

/**
 * Frees extents on storage nodes in the background, with a bounded number of
 * requests in flight and a bounded backlog. Frees for the same node and job
 * that wait together go in one request (up to a request's bound); with a
 * linger, a free waits that long for others before it is sent. A batch
 * that cannot be sent (node dead, backlog full) is logged: a dead node's
 * bytes are gone with it, and a job's deregistration drops everything it
 * still holds.
 */
export class FreeQueue {
  readonly #log = logger("free-queue");
  readonly #backlog: Batch[] = [];
  /** The last batch waiting for each node and job, while it has room for more ids. */
  readonly #open = new Map<string, Batch>();
  #inflight = 0;
  #dropped = 0;
  #idleWaiters: Array<() => void> = [];
  #lingering: { cancel(): void } | undefined;

  constructor(
    private readonly callerFor: (nodeId: string) => Caller,
    private readonly inflightMax: number,
    private readonly backlogMax: number,
    private readonly credit?: FreeCredit,
    private readonly linger?: FreeLinger,
  ) {}

  get pending(): number {
    return this.#backlog.length + this.#inflight;
  }

  /** Batches waiting for a slot. */
  get queued(): number {
    return this.#backlog.length;
  }

  /** Batches being sent. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Extents not freed because the backlog was full, since start. */
  get dropped(): number {
    return this.#dropped;
  }

  enqueue(jobId: string, extents: ReadonlyArray<Pick<Extent, "nodeId" | "extentId">>): void {
    const byNode = new Map<string, string[]>();
    for (const e of extents) {
      let ids = byNode.get(e.nodeId);
      if (!ids) byNode.set(e.nodeId, (ids = []));
      ids.push(e.extentId);
    }
    for (const [nodeId, ids] of byNode) this.#add(nodeId, jobId, ids);
    if (this.linger === undefined) this.#pump();
    else this.#lingering ??= this.linger.after(this.linger.ms, () => this.flush());
  }

  /** Sends what waits now (as slots allow), lingering or not. */
  flush(): void {
    this.#lingering?.cancel();
    this.#lingering = undefined;
    this.#pump();
  }

  #add(nodeId: string, jobId: string, ids: readonly string[]): void {
    const key = batchKey(nodeId, jobId);
    let i = 0;
    const open = this.#open.get(key);
    if (open !== undefined) {
      i = Math.min(ids.length, WireLimits.extentIdsPerFreeMax - open.extentIds.length);
      for (let k = 0; k < i; k++) open.extentIds.push(ids[k]!);
    }
    for (; i < ids.length; i += WireLimits.extentIdsPerFreeMax) {
      if (this.#backlog.length >= this.backlogMax) {
        this.#log.warn("free backlog full; extents stay until the job ends", { nodeId, jobId, extents: ids.length - i });
        this.#dropped += ids.length - i;
        return;
      }
      const batch = { nodeId, jobId, extentIds: ids.slice(i, i + WireLimits.extentIdsPerFreeMax) };
      this.#backlog.push(batch);
      this.#open.set(key, batch);
    }
    if (this.#open.get(key)?.extentIds.length === WireLimits.extentIdsPerFreeMax) this.#open.delete(key);
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    while (this.#inflight < this.inflightMax && this.#backlog.length > 0) {
      const b = this.#backlog.shift()!;
      const key = batchKey(b.nodeId, b.jobId);
      if (this.#open.get(key) === b) this.#open.delete(key);
      this.#inflight++;
      const credit = this.credit?.(b.nodeId);
      this.callerFor(b.nodeId)
        .call(NodeOps.extentFree, { jobId: b.jobId, extentIds: b.extentIds })
        .then(({ reply }) => credit?.(reply.freedBytes))
        .catch((e: unknown) => this.#log.warn("free failed", { nodeId: b.nodeId, jobId: b.jobId, ...errorFields(e) }))
        .finally(() => {
          this.#inflight--;
          this.#pump();
          if (this.pending === 0) for (const w of this.#idleWaiters.splice(0)) w();
        });
    }
  }
}
