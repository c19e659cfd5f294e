import type { Operation, ReplyOf, RequestOf } from "../schemas/operation";

export interface CallOptions {
  /** Bytes sent with the request (operations whose payload direction is `request`). */
  readonly payload?: Uint8Array;
  /** How long to wait for the reply. */
  readonly timeoutMs?: number;
  /**
   * Abandons the call: a request not yet sent is not sent, one in flight
   * stops being waited for (its reply is dropped), and the call rejects with
   * `abortReason(signal)`. A request already sent may still be carried out.
   */
  readonly signal?: AbortSignal;
  /**
   * Like `signal`, for many requests at once: the requests of one call join
   * the call's `CancelHook` instead of each listening on the caller's signal
   * (no listener, and nothing allocated, per request). A request cancelled
   * through it rejects with the hook's `reason`. Callers that know only
   * signals use `hook.signal`.
   */
  readonly cancel?: CancelHook;
}

/** A request a `CancelHook` can cancel (a transport's pending request). */
export interface Cancellable {
  /** Stops waiting for the request (a request not yet sent is not sent) and rejects it with `reason`. */
  cancel(reason: Error): void;
}

/**
 * Cancels a group of requests at once (one call's): a request joins while
 * it waits and leaves when it settles; once the group is cancelled, every
 * member is told, and a request that joins later is cancelled at once.
 */
export interface CancelHook {
  /** Why the group was cancelled; undefined until it is. */
  readonly reason: Error | undefined;
  join(request: Cancellable): void;
  leave(request: Cancellable): void;
  /** An AbortSignal aborted with `reason` when the group is cancelled, for callers that know only signals. */
  readonly signal: AbortSignal;
}

export interface CallResult<O extends Operation> {
  readonly reply: ReplyOf<O>;
  readonly payload: Uint8Array | undefined;
  /** The payload's buffer is this reply's own (a large frame reassembled for it): the caller may keep it without copying. */
  readonly payloadOwned?: boolean;
}

/**
 * The client side of a transport: sends one operation to one service and
 * returns its reply, or throws the typed Pocket error the service replied with.
 */
export interface Caller {
  /** Calls `op` on the service this caller is bound to. */
  call<O extends Operation>(op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>>;
}

/**
 * A call abandoned because its AbortSignal fired. It carries the name and
 * code Node's own APIs use for this (`name` "AbortError", `code`
 * "ABORT_ERR"); `cause` is the signal's reason.
 */
export class AbortError extends Error {
  readonly code = "ABORT_ERR";
  constructor(message = "the operation was aborted", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AbortError";
  }
}

/** What a call abandoned by `signal` rejects with: the signal's reason when it is an Error, else an AbortError. */
export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new AbortError(undefined, { cause: signal.reason });
}

/**
 * `promise`, or a rejection with `abortReason(signal)` as soon as `signal`
 * fires (the promise's own outcome is then dropped). The abort listener is
 * removed when either settles.
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  // A group's own signal: join the group rather than add a listener per request.
  const group = groupOfSignal.get(signal);
  if (group !== undefined) return raceCancel(promise, group);
  if (signal.aborted) {
    promise.catch(() => undefined); // abandoned: its failure has no one to go to
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => { signal.removeEventListener("abort", onAbort); resolve(value); },
      (e: unknown) => { signal.removeEventListener("abort", onAbort); reject(e); },
    );
  });
}

/** Each `CancelGroup`'s signal, once asked for: `raceSignal` joins the group instead of listening on it. */
const groupOfSignal = new WeakMap<AbortSignal, CancelGroup>();

/**
 * A `CancelHook`: the members it holds are the requests of one call in
 * flight (bounded by the transports' windows and the call's own). Nothing
 * is allocated until a request joins.
 *
 * @example
 *   const group = new CancelGroup();
 *   const read = node.call(NodeOps.extentRead, request, { cancel: group });
 *   group.cancel(new AbortError());   // `read` rejects with that AbortError
 */
export class CancelGroup implements CancelHook {
  #reason: Error | undefined;
  #members: Set<Cancellable> | undefined;
  #controller: AbortController | undefined;

  get reason(): Error | undefined {
    return this.#reason;
  }

  join(request: Cancellable): void {
    if (this.#reason !== undefined) request.cancel(this.#reason);
    else (this.#members ??= new Set()).add(request);
  }

  leave(request: Cancellable): void {
    this.#members?.delete(request);
  }

  /** Cancels every member, now and to come; the first reason stays. */
  cancel(reason: Error): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    const members = this.#members;
    this.#members = undefined;
    if (members !== undefined) for (const m of members) m.cancel(reason);
    this.#controller?.abort(reason);
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
      groupOfSignal.set(this.#controller.signal, this);
    }
    return this.#controller.signal;
  }
}

/** `promise`, or a rejection with the hook's reason as soon as it cancels (the promise's own outcome is then dropped). */
export function raceCancel<T>(promise: Promise<T>, cancel: CancelHook | undefined): Promise<T> {
  if (cancel === undefined) return promise;
  if (cancel.reason !== undefined) {
    promise.catch(() => undefined); // abandoned: its failure has no one to go to
    return Promise.reject(cancel.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const member: Cancellable = { cancel: reject };
    cancel.join(member);
    promise.then(
      (value) => { cancel.leave(member); resolve(value); },
      (e: unknown) => { cancel.leave(member); reject(e); },
    );
  });
}
