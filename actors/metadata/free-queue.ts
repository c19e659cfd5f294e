import { NodeOps, WireLimits } from "../../schemas/operations";
import type { Caller } from "../../bus/caller";
import { errorFields, logger } from "../../lib/log";
import type { Extent } from "./namespace";

interface Batch { readonly nodeId: string; readonly jobId: string; readonly extentIds: string[] }

/**
 * Frees extents on storage nodes in the background, with a bounded number of
 * requests in flight and a bounded backlog. A batch that cannot be sent (node
 * dead, backlog full) is logged: a dead node's bytes are gone with it, and a
 * job's deregistration drops everything it still holds.
 */
export class FreeQueue {
  readonly #log = logger("free-queue");
  readonly #backlog: Batch[] = [];
  #inflight = 0;
  #dropped = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(
    private readonly callerFor: (nodeId: string) => Caller,
    private readonly inflightMax: number,
    private readonly backlogMax: number,
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
    for (const [nodeId, ids] of byNode) {
      for (let i = 0; i < ids.length; i += WireLimits.extentIdsPerFreeMax) {
        if (this.#backlog.length >= this.backlogMax) {
          this.#log.warn("free backlog full; extents stay until the job ends", { nodeId, jobId, extents: ids.length - i });
          this.#dropped += ids.length - i;
          break;
        }
        this.#backlog.push({ nodeId, jobId, extentIds: ids.slice(i, i + WireLimits.extentIdsPerFreeMax) });
      }
    }
    this.#pump();
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    while (this.#inflight < this.inflightMax && this.#backlog.length > 0) {
      const b = this.#backlog.shift()!;
      this.#inflight++;
      this.callerFor(b.nodeId)
        .call(NodeOps.extentFree, { jobId: b.jobId, extentIds: b.extentIds })
        .catch((e: unknown) => this.#log.warn("free failed", { nodeId: b.nodeId, jobId: b.jobId, ...errorFields(e) }))
        .finally(() => {
          this.#inflight--;
          this.#pump();
          if (this.pending === 0) for (const w of this.#idleWaiters.splice(0)) w();
        });
    }
  }
}
