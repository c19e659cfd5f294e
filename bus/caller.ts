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
