import { ErrorCode, InvalidArgumentError, isPocketError } from "../schemas/errors";
import { ConnectFailedError } from "../bus/tcp-client";
import { NoResponderError } from "../bus/nats-rpc";
import type { CallScope } from "./call-scope";

/**
 * When a failed call is tried again. Only failures that may pass are
 * retried (`NodeUnavailable`, `Timeout`, `Busy`), and only where running the
 * call again cannot do harm (see `Retry`); waits grow exponentially with
 * jitter; attempts and the time spent retrying are bounded, and a call's
 * signal and `timeoutMs` end the retries too.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included (1: no retry). */
  readonly attemptsMax: number;
  /** The wait before the first retry; each retry doubles it, up to `backoffMaxMs`. */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** No retry starts once this long has passed since the first attempt (or would pass during the wait before it). */
  readonly totalMs: number;
  /** Told of each retry before its wait (for logs and metrics). */
  readonly onRetry?: ((retry: RetryEvent) => void) | undefined;
}

/** What `onRetry` is told. */
export interface RetryEvent {
  /** What is retried, e.g. `get "a/b"`. */
  readonly what: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly error: unknown;
  /** The wait before the next attempt. */
  readonly delayMs: number;
}

/** A policy's fields, each optional: what is left out comes from the client's policy (or the defaults). */
export type RetryOptions = Partial<RetryPolicy>;

/** The policy a client uses unless told otherwise: a transient failure costs at most two retries and about a quarter second of waiting. */
export const defaultRetryPolicy: RetryPolicy = {
  attemptsMax: 3,
  backoffInitialMs: 50,
  backoffMaxMs: 1_000,
  totalMs: 10_000,
};

/** How safe it is to run a call again after a failure. */
export const Retry = {
  /**
   * Running it again changes nothing more, or gives the same end state:
   * reads, lease renewals, and overwriting puts (a put's commit is atomic,
   * so a put tried again just writes the object whole once more). Any
   * transient failure is retried.
   */
  Idempotent: "idempotent",
  /**
   * Running it twice may differ from once (register, deregister, delete,
   * mkdir, a create-only put whose commit went out): retried only when the
   * failure shows the request was not carried out (`Busy`, a connection
   * that never opened, no service on the subject).
   */
  Once: "once",
  /** Never retried (putStream: its source cannot be read again). */
  Never: "never",
} as const;
export type Retry = (typeof Retry)[keyof typeof Retry];

/** Whether a failure may pass: the same request could succeed later. */
export function isTransient(e: unknown): boolean {
  return isPocketError(e, ErrorCode.NodeUnavailable) || isPocketError(e, ErrorCode.Timeout) || isPocketError(e, ErrorCode.Busy);
}

/**
 * Whether a failure shows the request was not carried out (so even a call
 * that must run once may be sent again): Busy, which servers answer only
 * before an operation runs (one that ran but whose reply could not be held
 * or fetched in chunks is Timeout: bus/nats-chunks.ts, bus/nats-rpc.ts); a
 * connection that never opened; no service on the subject. Timeout and a
 * connection lost mid-call are not: the operation may have run.
 */
export function notCarriedOut(e: unknown): boolean {
  return isPocketError(e, ErrorCode.Busy) || e instanceof ConnectFailedError || e instanceof NoResponderError;
}

/** Whether a failed attempt of a call of `kind` may run again. */
export function mayRetry(kind: Retry, e: unknown): boolean {
  if (kind === Retry.Idempotent) return isTransient(e);
  if (kind === Retry.Once) return notCarriedOut(e);
  return false;
}

/** The policy for one call: the call's options over the client's (undefined: no retry). */
export function resolvePolicy(client: RetryOptions | false | undefined, call: RetryOptions | false | undefined): RetryPolicy | undefined {
  if (call === false || (client === false && call === undefined)) return undefined;
  const policy = { ...defaultRetryPolicy, ...defined(client || {}), ...defined(call ?? {}) };
  for (const k of ["attemptsMax", "backoffInitialMs", "backoffMaxMs", "totalMs"] as const) {
    const v = policy[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v < (k === "attemptsMax" ? 1 : 0)) throw new InvalidArgumentError(`retry.${k} must be a number${k === "attemptsMax" ? " of at least 1" : " of ms, 0 or more"}, not ${String(v)}`);
  }
  if (policy.attemptsMax > 100) throw new InvalidArgumentError(`retry.attemptsMax must be at most 100, not ${policy.attemptsMax}`);
  if (policy.onRetry !== undefined && typeof policy.onRetry !== "function") throw new TypeError("retry.onRetry must be a function");
  return policy.attemptsMax > 1 ? policy : undefined;
}

/** The fields of `options` that are set (an `undefined` field leaves the default). */
function defined(options: RetryOptions): RetryOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

/** The wait after failed attempt `n` (from 1): exponential, capped, with "equal jitter" (half fixed, half random) so retrying clients spread out. */
export function backoffMs(policy: RetryPolicy, n: number): number {
  const exp = Math.min(policy.backoffMaxMs, policy.backoffInitialMs * 2 ** Math.min(n - 1, 30));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

/**
 * Runs `attempt` until it succeeds, a failure may not be retried
 * (`retryable`), the policy's attempts or time are spent, or the call's
 * scope is aborted (its reason is thrown, whatever the attempt failed with).
 */
export async function withRetry<T>(scope: CallScope, policy: RetryPolicy | undefined, retryable: (e: unknown) => boolean, attempt: (n: number) => Promise<T>): Promise<T> {
  const startedMs = Date.now();
  for (let n = 1; ; n++) {
    scope.throwIfAborted();
    try {
      return await attempt(n);
    } catch (e) {
      if (scope.aborted) throw scope.reason;
      if (!policy || n >= policy.attemptsMax || !retryable(e)) throw e;
      const delayMs = backoffMs(policy, n);
      const left = scope.remainingMs();
      if (Date.now() - startedMs + delayMs > policy.totalMs || (left !== undefined && left <= delayMs)) throw e;
      policy.onRetry?.({ what: scope.what, attempt: n, error: e, delayMs });
      await scope.sleep(delayMs);
    }
  }
}
