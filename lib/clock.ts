/**
 * Time, injected: decision logic never reads the wall clock itself, and
 * shells set timers only through a Clock, so a whole cluster can run on a
 * simulated one.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** A running timer; `cancel` is idempotent. */
export interface Timer {
  cancel(): void;
}

/** A clock that also runs timers. */
export interface TimerClock extends Clock {
  /** Runs `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): Timer;
  /** Runs `fn` every `ms`, first `ms` from now. */
  every(ms: number, fn: () => void): Timer;
  /** Resolves `ms` from now. */
  sleep(ms: number): Promise<void>;
}

/** The machine's clock and Node's timers. */
export const systemClock: TimerClock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    return { cancel: () => clearInterval(t) };
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

interface Pending {
  atMs: number;
  seq: number;
  readonly fn: () => void;
  /** Repeat period, for `every`: the same entry goes back on the heap after it fires. */
  readonly periodMs: number | undefined;
  cancelled: boolean;
}

/**
 * A clock tests, replays and the simulation move by hand. Timers fire in
 * (time, creation) order as time advances, each seeing `now()` at its own
 * due time: the same calls give the same order, run after run.
 */
export class ManualClock implements TimerClock {
  #ms: number;
  #seq = 0;
  /** Binary min-heap by (atMs, seq). */
  readonly #heap: Pending[] = [];

  constructor(ms = 0) {
    this.#ms = ms;
  }

  now(): number {
    return this.#ms;
  }

  after(ms: number, fn: () => void): Timer {
    return this.#add(ms, fn, undefined);
  }

  every(ms: number, fn: () => void): Timer {
    return this.#add(ms, fn, Math.max(1, ms));
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /** When the next timer is due, or undefined if none is. */
  nextAtMs(): number | undefined {
    this.#dropCancelled();
    return this.#heap[0]?.atMs;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const until = this.#ms + ms;
    while (this.fireNext(until)) { /* each call fires one timer */ }
    this.#ms = Math.max(this.#ms, until);
  }

  /**
   * Fires the next timer due at or before `untilMs`, moving time to it.
   * False when none is due by then (time does not move).
   */
  fireNext(untilMs = Infinity): boolean {
    this.#dropCancelled();
    const next = this.#heap[0];
    if (!next || next.atMs > untilMs) return false;
    this.#pop();
    this.#ms = Math.max(this.#ms, next.atMs);
    if (next.periodMs !== undefined) {
      next.atMs += next.periodMs;
      next.seq = this.#seq++;
      this.#push(next);
    }
    next.fn();
    return true;
  }

  /** Moves time without firing anything (a clock jump seen by whoever reads this clock). */
  jump(ms: number): void {
    this.#ms += ms;
  }

  #add(ms: number, fn: () => void, periodMs: number | undefined): Timer {
    const p: Pending = { atMs: this.#ms + Math.max(0, ms), seq: this.#seq++, fn, periodMs, cancelled: false };
    this.#push(p);
    return { cancel: () => { p.cancelled = true; } };
  }

  #push(p: Pending): void {
    const heap = this.#heap;
    heap.push(p);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (heap.length === 0 || !last) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }

  #dropCancelled(): void {
    while (this.#heap[0]?.cancelled) this.#pop();
  }
}

/**
 * One actor's view of a shared clock, `offsetMs` apart from it: timers run
 * on the shared clock, `now()` reads shifted (a host whose clock jumped).
 */
export class OffsetClock implements TimerClock {
  offsetMs = 0;
  constructor(private readonly base: TimerClock) {}
  now(): number { return this.base.now() + this.offsetMs; }
  after(ms: number, fn: () => void): Timer { return this.base.after(ms, fn); }
  every(ms: number, fn: () => void): Timer { return this.base.every(ms, fn); }
  sleep(ms: number): Promise<void> { return this.base.sleep(ms); }
}

function before(a: Pending, b: Pending): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}
