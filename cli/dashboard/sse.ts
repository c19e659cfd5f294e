import type { ServerResponse } from "node:http";
import { errorFields, logger } from "../../lib/log";

/** One Server-Sent Events message, formatted once and written to every client as is. */
export function sseFrame(name: string, data: unknown): string {
  // JSON holds no raw newline, so the data is one `data:` line.
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

export interface SseLimits {
  /** Event frames waiting for a slow client, at most; past it the oldest are dropped and the client is told how many. */
  readonly backlogMax: number;
  /** A client whose socket has taken nothing for this long is disconnected (its page reconnects and starts afresh). */
  readonly stalledMaxMs: number;
}

/**
 * A page following the live feed. Frames go straight to the socket while it
 * takes them; while it does not, events wait in a bounded backlog (oldest
 * dropped first, then a `dropped` message says how many) and snapshots are
 * coalesced: only the newest one waits, since each replaces the last.
 */
export class SseClient {
  readonly #backlog: string[] = [];
  #snapshot: string | undefined;
  #dropped = 0;
  /** Dropped since the client was last told. */
  #droppedUnsaid = 0;
  #blockedSinceMs: number | undefined;
  #closed = false;

  constructor(private readonly res: ServerResponse, private readonly limits: SseLimits, private readonly now: () => number) {
    res.on("drain", () => this.#flush());
    res.on("close", () => { this.#closed = true; });
    // A socket that failed is closed too (a page that went away); the page, if any, reconnects and starts afresh.
    res.on("error", (e) => {
      this.#closed = true;
      logger("dashboard").debug("a live page's stream failed", errorFields(e));
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Events dropped for this client so far. */
  get dropped(): number {
    return this.#dropped;
  }

  /** An event frame: delivered in order, or dropped oldest-first when the backlog is full. */
  event(frame: string): void {
    if (this.#closed) return;
    if (this.#blockedSinceMs === undefined) {
      this.#write(frame);
      return;
    }
    this.#backlog.push(frame);
    if (this.#backlog.length > this.limits.backlogMax) {
      this.#backlog.shift();
      this.#dropped++;
      this.#droppedUnsaid++;
    }
    this.#checkStalled();
  }

  /** A snapshot frame: replaces any snapshot still waiting. */
  snapshot(frame: string): void {
    if (this.#closed) return;
    if (this.#blockedSinceMs === undefined) {
      this.#write(frame);
      return;
    }
    this.#snapshot = frame;
    this.#checkStalled();
  }

  /** Ends the response (the server is closing). */
  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.res.end();
  }

  #write(frame: string): void {
    if (!this.res.write(frame)) this.#blockedSinceMs ??= this.now();
  }

  /** The socket took what it had: send what waited, oldest first, until it is full again. */
  #flush(): void {
    this.#blockedSinceMs = undefined;
    if (this.#droppedUnsaid > 0) {
      this.#write(sseFrame("dropped", { count: this.#droppedUnsaid, total: this.#dropped }));
      this.#droppedUnsaid = 0;
    }
    while (this.#blockedSinceMs === undefined && this.#backlog.length > 0) this.#write(this.#backlog.shift()!);
    if (this.#blockedSinceMs === undefined && this.#snapshot !== undefined) {
      const s = this.#snapshot;
      this.#snapshot = undefined;
      this.#write(s);
    }
  }

  #checkStalled(): void {
    if (this.#blockedSinceMs !== undefined && this.now() - this.#blockedSinceMs > this.limits.stalledMaxMs) {
      this.#closed = true;
      this.res.destroy();
    }
  }
}
