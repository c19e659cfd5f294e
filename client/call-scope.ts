import { InvalidArgumentError, TimeoutError } from "../schemas/errors";
import { AbortError, raceSignal, type CallOptions } from "../bus/caller";
import type { RetryOptions } from "./retry";

/**
 * Options every operation takes.
 *
 * @example
 *   const ac = new AbortController();
 *   const bytes = await job.get("part-0", { signal: ac.signal, timeoutMs: 5_000, retry: { attemptsMax: 5 } });
 */
export interface OperationOptions {
  /**
   * Abandons the call: it rejects at once with `AbortError` (its `cause` is
   * the signal's reason) and sends nothing more. A call that changes
   * something and rejects with `AbortError` has changed nothing: once its
   * one request that makes the change (a put's commit, a delete) is on its
   * way it can no longer be recalled, so the call finishes and reports
   * what happened.
   */
  readonly signal?: AbortSignal | undefined;
  /**
   * The whole call's deadline in ms, retries and the waits between them
   * included (for `getStream`, until the stream ends): past it the call
   * rejects with `TimeoutError`. Each request also gives up after the
   * client's `requestTimeoutMs`.
   */
  readonly timeoutMs?: number | undefined;
  /** This call's retry policy, over the client's; `false` for none. */
  readonly retry?: RetryOptions | false | undefined;
}

/**
 * One call's signal and deadline: the user's signal and `timeoutMs` folded
 * into one signal that every request of the call carries. `close()` when
 * the call has settled: it removes the listener on the user's signal, stops
 * the deadline's timer, and abandons whatever of the call is still in flight.
 */
export class CallScope {
  readonly #controller = new AbortController();
  readonly #user: AbortSignal | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #deadlineMs: number | undefined;
  /** Changes on their way that an abort must not interrupt (see `committing`). */
  #committing = 0;
  /** An abort that came while a change was on its way: applied if the change fails. */
  #deferred: AbortError | undefined;

  constructor(options: OperationOptions, readonly what: string, readonly requestTimeoutMs: number) {
    const { signal, timeoutMs } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError(`${what}: options.signal must be an AbortSignal`);
    if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) {
      throw new InvalidArgumentError(`${what}: options.timeoutMs must be a number of ms from 1 to ${2 ** 31 - 1}, not ${String(timeoutMs)}`);
    }
    this.#user = signal;
    if (signal?.aborted) this.#controller.abort(this.#aborted(signal));
    else signal?.addEventListener("abort", this.#onUserAbort, { once: true });
    if (timeoutMs !== undefined && !this.aborted) {
      this.#deadlineMs = Date.now() + timeoutMs;
      this.#timer = setTimeout(() => this.#controller.abort(new TimeoutError(`${what}: no result within ${timeoutMs} ms`)), timeoutMs);
    }
  }

  /** Aborted by the user's signal or by the deadline. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#controller.signal.aborted;
  }

  /** What the call rejects with once aborted: an AbortError or a TimeoutError. */
  get reason(): Error {
    return this.#controller.signal.reason as Error;
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  /** Ms left before the deadline (undefined: no deadline). */
  remainingMs(): number | undefined {
    return this.#deadlineMs === undefined ? undefined : Math.max(0, this.#deadlineMs - Date.now());
  }

  /** Options for one request of the call; throws instead once the call is aborted (nothing more is sent). */
  request(payload?: Uint8Array): CallOptions {
    this.throwIfAborted();
    const left = this.remainingMs();
    const timeoutMs = left === undefined ? this.requestTimeoutMs : Math.max(1, Math.min(this.requestTimeoutMs, Math.ceil(left)));
    return payload === undefined ? { signal: this.signal, timeoutMs } : { signal: this.signal, timeoutMs, payload };
  }

  /** `promise`, or the call's abort reason as soon as it is aborted. */
  race<T>(promise: Promise<T>): Promise<T> {
    return raceSignal(promise, this.signal);
  }

  /** Waits `ms`, or rejects with the abort reason as soon as the call is aborted. */
  sleep(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const slept = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
    return this.race(slept).finally(() => clearTimeout(timer));
  }

  /**
   * Runs the request that makes a change (a commit): an abort of the user's
   * signal while it is on its way waits for its outcome. If it succeeds the
   * abort came too late and is dropped; if it fails, the call is aborted
   * then. The deadline is not deferred: a TimeoutError leaves the outcome unknown.
   */
  async committing<T>(change: () => Promise<T>): Promise<T> {
    this.throwIfAborted();
    this.#committing++;
    let done = false;
    try {
      const result = await change();
      done = true;
      return result;
    } finally {
      this.#committing--;
      if (!done && this.#committing === 0 && this.#deferred && !this.aborted) this.#controller.abort(this.#deferred);
    }
  }

  /** Ends the scope: no listener on the user's signal, no timer, and anything of the call still in flight is abandoned. */
  close(): void {
    this.#user?.removeEventListener("abort", this.#onUserAbort);
    clearTimeout(this.#timer);
    if (!this.aborted) this.#controller.abort(new AbortError(`${this.what} has ended`));
  }

  readonly #onUserAbort = (): void => {
    const e = this.#aborted(this.#user!);
    if (this.#committing > 0) this.#deferred ??= e;
    else if (!this.aborted) this.#controller.abort(e);
  };

  #aborted(signal: AbortSignal): AbortError {
    return new AbortError(`${this.what} was aborted`, { cause: signal.reason });
  }
}
