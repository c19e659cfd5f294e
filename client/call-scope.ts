import { InvalidArgumentError, TimeoutError } from "../schemas/errors";
import type { Operation, RequestOf } from "../schemas/operation";
import { AbortError, CancelGroup, type Caller, type CallOptions, type CallResult } from "../bus/caller";
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

/** The scopes watching one signal, and the one listener that tells them. */
interface SignalWatch {
  readonly scopes: Set<CallScope>;
  readonly listener: () => void;
}

/**
 * One call's signal and deadline. Requests carry the scope's cancel hook
 * (not while a change is on its way: see `committing`), which cancels them
 * all when the call ends early, and a timeout capped by what is left of the
 * deadline; the call itself ends at once when either fires (`race`). The
 * user's signal gets one listener however many calls and requests share it,
 * and a call with neither a signal nor a deadline costs nothing here.
 * `close()` when the call has settled: it stops watching the user's signal
 * and stops the deadline's timer.
 */
export class CallScope {
  /**
   * The scopes of the calls in flight given each signal: one listener per
   * signal however many calls share it (a signal shared by a hundred calls
   * gets one listener, not a hundred). The listener goes when the last of
   * them closes, or when the signal fires.
   */
  static readonly #watches = new WeakMap<AbortSignal, SignalWatch>();

  readonly #user: AbortSignal | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #deadlineMs: number | undefined;
  /** Why the call ended early, once it has: an AbortError or a TimeoutError. */
  #reason: Error | undefined;
  /** Told when the call ends early (made when first needed). */
  #waiters: Set<(reason: Error) => void> | undefined;
  /** The call's requests in flight, cancelled when it ends early (with a signal or a deadline only). */
  readonly #cancel: CancelGroup | undefined;
  /** Changes on their way that an abort must not interrupt (see `committing`). */
  #committing = 0;
  /** An abort that came while a change was on its way: applied if the change fails. */
  #deferred: AbortError | undefined;

  /** `op` and `path` name the call in errors (e.g. `get "a/b"`). */
  constructor(options: OperationOptions, readonly op: string, readonly path: string | undefined, readonly requestTimeoutMs: number) {
    const { signal, timeoutMs } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError(`${this.what}: options.signal must be an AbortSignal`);
    if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) {
      throw new InvalidArgumentError(`${this.what}: options.timeoutMs must be a number of ms from 1 to ${2 ** 31 - 1}, not ${String(timeoutMs)}`);
    }
    if (signal?.aborted) {
      this.#reason = this.#aborted(signal);
      return;
    }
    if (signal) {
      this.#user = signal;
      CallScope.#watch(signal, this);
    }
    if (timeoutMs !== undefined) {
      this.#deadlineMs = Date.now() + timeoutMs;
      this.#timer = setTimeout(() => this.#end(new TimeoutError(`${this.what}: no result within ${timeoutMs} ms`)), timeoutMs);
    }
    if (signal || timeoutMs !== undefined) this.#cancel = new CancelGroup();
  }

  /** The call, as errors name it. */
  get what(): string {
    return this.path === undefined ? this.op : `${this.op} ${JSON.stringify(this.path)}`;
  }

  /** The call has ended early: aborted, or past its deadline. */
  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  /** What the call rejects with once it has ended early. */
  get reason(): Error {
    return this.#reason!;
  }

  throwIfAborted(): void {
    if (this.#reason !== undefined) throw this.#reason;
  }

  /** Ms left before the deadline (undefined: no deadline). */
  remainingMs(): number | undefined {
    return this.#deadlineMs === undefined ? undefined : Math.max(0, this.#deadlineMs - Date.now());
  }

  /** Options for one request of the call; throws instead once the call has ended (nothing more is sent). */
  request(payload?: Uint8Array): CallOptions {
    this.throwIfAborted();
    const left = this.remainingMs();
    const timeoutMs = left === undefined ? this.requestTimeoutMs : Math.max(1, Math.min(this.requestTimeoutMs, Math.ceil(left)));
    // A change on its way is not recalled.
    const cancel = this.#committing > 0 ? undefined : this.#cancel;
    if (cancel === undefined) return payload === undefined ? { timeoutMs } : { timeoutMs, payload };
    return payload === undefined ? { cancel, timeoutMs } : { cancel, timeoutMs, payload };
  }

  /** `promise`, or the call's reason as soon as it ends early (the promise's own outcome is then dropped). */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.#reason !== undefined) {
      promise.catch(() => undefined); // abandoned: its failure has no one to go to
      return Promise.reject(this.#reason);
    }
    if (this.#user === undefined && this.#timer === undefined) return promise;
    return new Promise<T>((resolve, reject) => {
      const waiters = (this.#waiters ??= new Set());
      waiters.add(reject);
      promise.then(
        (value) => { waiters.delete(reject); resolve(value); },
        (e: unknown) => { waiters.delete(reject); reject(e); },
      );
    });
  }

  /** Calls `then` with the reason if the call ends early; returns what stops that. */
  onEnd(then: (reason: Error) => void): () => void {
    if (this.#reason !== undefined) {
      then(this.#reason);
      return () => undefined;
    }
    const waiters = (this.#waiters ??= new Set());
    waiters.add(then);
    return () => { waiters.delete(then); };
  }

  /** Waits `ms`, or rejects with the call's reason as soon as it ends early. */
  sleep(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const slept = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
    return this.race(slept).finally(() => clearTimeout(timer));
  }

  /**
   * Runs the request that makes a change (a commit): it goes without the
   * user's signal, and an abort while it is on its way waits for its
   * outcome. If it succeeds the abort came too late and is dropped; if it
   * fails, the call is aborted then. The deadline is not deferred: a
   * TimeoutError leaves the outcome unknown.
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
      if (!done && this.#committing === 0 && this.#deferred) this.#end(this.#deferred);
    }
  }

  /** Ends the scope: it no longer watches the user's signal, no timer. */
  close(): void {
    if (this.#user !== undefined) CallScope.#unwatch(this.#user, this);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#waiters?.clear();
  }

  /** Ends the call early: its waiters are told, its requests in flight cancelled. */
  #end(reason: Error): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#cancel?.cancel(reason);
    const waiters = this.#waiters;
    if (waiters === undefined) return;
    for (const w of [...waiters]) w(reason);
    waiters.clear();
  }

  /** The user's signal fired. */
  #onUserAbort(): void {
    const e = this.#aborted(this.#user!);
    if (this.#committing > 0) this.#deferred ??= e;
    else this.#end(e);
  }

  static #watch(signal: AbortSignal, scope: CallScope): void {
    let watch = CallScope.#watches.get(signal);
    if (watch === undefined) {
      const scopes = new Set<CallScope>();
      const listener = (): void => {
        CallScope.#watches.delete(signal);
        for (const s of scopes) s.#onUserAbort();
        scopes.clear();
      };
      watch = { scopes, listener };
      CallScope.#watches.set(signal, watch);
      signal.addEventListener("abort", listener, { once: true });
    }
    watch.scopes.add(scope);
  }

  static #unwatch(signal: AbortSignal, scope: CallScope): void {
    const watch = CallScope.#watches.get(signal);
    if (watch === undefined || !watch.scopes.delete(scope) || watch.scopes.size > 0) return;
    CallScope.#watches.delete(signal);
    signal.removeEventListener("abort", watch.listener);
  }

  #aborted(signal: AbortSignal): AbortError {
    return new AbortError(`${this.what} was aborted`, { cause: signal.reason });
  }
}

/**
 * A request's options for a caller that knows only AbortSignals (NATS, a
 * simulated bus): the call's cancel hook handed over as its signal.
 */
export function signalled(options: CallOptions | undefined): CallOptions | undefined {
  const cancel = options?.cancel;
  return cancel === undefined ? options : { ...options, cancel: undefined, signal: cancel.signal };
}

/** A caller that knows only AbortSignals (the controller's, over NATS), handed each call's cancel hook as one. */
export class SignalCaller implements Caller {
  constructor(private readonly inner: Caller) {}

  call<O extends Operation>(op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>> {
    return this.inner.call(op, request, signalled(options));
  }
}
