import assert from "node:assert/strict";

/** A connection as the budget sees it. */
export interface BudgetMember {
  /** Room was made for it: it reports again (called from a microtask). */
  wake(): void;
  /** The budget is full: stop reading now. */
  pauseForBudget(): void;
}

export interface BudgetUsage {
  /** Partial frame plus requests waiting or being handled. */
  readonly heldBytes: number;
  readonly handledBytes: number;
  /** Size of the frame being reassembled once its length is known; 0 between frames. */
  readonly nextFrameBytes: number;
  /** A frame completed since the last report: its admission is used up. */
  readonly frameDone: boolean;
  /** Paused for its own reasons (window, write buffer, authentication in progress). */
  readonly blocked: boolean;
  /** Subject to the budget's pauses (false until authentication succeeds: those bytes are bounded per connection). */
  readonly gated: boolean;
}

interface Account {
  held: number;
  handled: number;
  /** Held, or for an admitted frame its full size plus one read chunk. */
  committed: number;
  /** Size of the partial frame admitted; 0 if none. */
  admitted: number;
  /** While waiting for admission: the frame's size, and what the member would commit. */
  waitingFrameBytes: number;
  needBytes: number;
  /** Bytes that cannot be freed while the member is paused by the budget (its partial frame). */
  stuck: number;
}

/**
 * One server's budget for bytes held by its connections. A connection's next
 * frame is admitted, in arrival order, only when its whole size plus one read
 * chunk fits; until then that connection does not read. While any frame
 * waits, or less than one chunk of room is left, connections between frames
 * stop reading too, so held bytes stay within the budget plus one chunk.
 * Should the budget be held only by connections it paused (which cannot free
 * anything), the first waiting frame is admitted anyway, so it never locks up.
 */
export class InflightBudget {
  readonly #accounts = new Map<BudgetMember, Account>();
  /** Frames of known size waiting for room, first come first served. */
  readonly #admissions = new Set<BudgetMember>();
  /** Between frames and reading. */
  readonly #readers = new Set<BudgetMember>();
  /** Between frames, paused until there is room. */
  readonly #heldBack = new Set<BudgetMember>();
  #held = 0;
  #committed = 0;
  #stuck = 0;
  #open = true;

  constructor(readonly bytesMax: number, readonly chunkBytes: number) {}

  get heldBytes(): number {
    return this.#held;
  }

  /** Records what a member holds; returns whether it may read on. */
  report(m: BudgetMember, u: BudgetUsage): boolean {
    let a = this.#accounts.get(m);
    if (!a) {
      a = { held: 0, handled: 0, committed: 0, admitted: 0, waitingFrameBytes: 0, needBytes: 0, stuck: 0 };
      this.#accounts.set(m, a);
    }
    if (u.frameDone) a.admitted = 0;
    a.handled = u.handledBytes;
    const mayRead = this.#decide(m, a, u);
    const before = a.committed;
    const committed = a.admitted > 0 ? Math.max(u.heldBytes, u.handledBytes + a.admitted + this.chunkBytes) : u.heldBytes;
    this.#set(m, a, u.heldBytes, committed);
    if (committed < before) this.#pump();
    this.#closeIfFull();
    return mayRead;
  }

  /** Forgets a member (its connection closed) and gives its bytes to those waiting. */
  leave(m: BudgetMember): void {
    const a = this.#accounts.get(m);
    if (!a) return;
    this.#admissions.delete(m);
    this.#readers.delete(m);
    this.#heldBack.delete(m);
    this.#set(m, a, 0, 0);
    this.#accounts.delete(m);
    this.#pump();
  }

  #decide(m: BudgetMember, a: Account, u: BudgetUsage): boolean {
    this.#readers.delete(m);
    this.#heldBack.delete(m);
    if (!u.gated || u.blocked) {
      this.#admissions.delete(m);
      return !u.gated && !u.blocked;
    }
    if (a.admitted > 0) return true;
    if (u.nextFrameBytes > 0) {
      a.waitingFrameBytes = u.nextFrameBytes;
      a.needBytes = u.handledBytes + u.nextFrameBytes + this.chunkBytes;
      if ((this.#admissions.size === 0 || this.#first() === m) && this.#canAdmit(a)) {
        this.#admissions.delete(m);
        a.admitted = u.nextFrameBytes;
        return true;
      }
      this.#admissions.add(m); // keeps its place if already waiting
      return false;
    }
    this.#admissions.delete(m);
    if (this.#open && this.#admissions.size === 0) {
      this.#readers.add(m);
      return true;
    }
    this.#heldBack.add(m);
    return false;
  }

  /** A waiting frame fits, or every other byte is held by members the budget paused and nothing else will be freed. */
  #canAdmit(a: Account): boolean {
    const others = this.#committed - a.committed;
    return others + a.needBytes <= this.bytesMax || (a.handled === 0 && others === this.#stuck - a.stuck);
  }

  /** Admits waiting frames in order while they may be, then lets members between frames read if room is left. */
  #pump(): void {
    for (let head = this.#first(); head !== undefined; head = this.#first()) {
      const a = this.#accounts.get(head)!;
      if (!this.#canAdmit(a)) break;
      this.#admissions.delete(head);
      a.admitted = a.waitingFrameBytes;
      this.#set(head, a, a.held, Math.max(a.held, a.needBytes));
      queueMicrotask(() => head.wake());
    }
    // Reopen with a chunk of slack beyond the closing point, so pauses do not flap on every chunk.
    if (this.#open || this.#admissions.size > 0 || this.#committed + 2 * this.chunkBytes > this.bytesMax) return;
    this.#open = true;
    for (const m of [...this.#heldBack]) {
      this.#heldBack.delete(m);
      this.#restuck(m, this.#accounts.get(m)!);
      queueMicrotask(() => m.wake());
    }
  }

  #closeIfFull(): void {
    if (!this.#open || (this.#admissions.size === 0 && this.#committed + this.chunkBytes <= this.bytesMax)) return;
    this.#open = false;
    for (const m of this.#readers) {
      this.#heldBack.add(m);
      this.#restuck(m, this.#accounts.get(m)!);
      m.pauseForBudget();
    }
    this.#readers.clear();
  }

  #first(): BudgetMember | undefined {
    return this.#admissions.values().next().value;
  }

  #set(m: BudgetMember, a: Account, held: number, committed: number): void {
    this.#held += held - a.held;
    this.#committed += committed - a.committed;
    a.held = held;
    a.committed = committed;
    this.#restuck(m, a);
    assert(this.#held >= 0 && this.#committed >= this.#stuck && this.#stuck >= 0, "budget accounts out of balance");
  }

  #restuck(m: BudgetMember, a: Account): void {
    const stuck = this.#admissions.has(m) || this.#heldBack.has(m) ? a.held - a.handled : 0;
    this.#stuck += stuck - a.stuck;
    a.stuck = stuck;
  }
}
