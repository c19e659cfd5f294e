import type { TimerClock } from "./clock";

export interface RetryOptions {
  /** Attempts in all, the first included. */
  readonly attemptsMax: number;
  /** Wait before attempt n+1 (n from 1): a number, or a function of n (backoff). */
  readonly delayMs: number | ((attempt: number) => number);
  /** Whose `sleep` waits between attempts (a simulated clock in tests). */
  readonly clock: Pick<TimerClock, "sleep">;
  /** Stops early (no further attempt) once it returns true: the caller is shutting down. */
  readonly stopped?: () => boolean;
}

/**
 * Runs `attempt` until it reports success, at most `attemptsMax` times, with
 * a wait between attempts. An attempt that throws counts as a failure; the
 * last error is rethrown when every attempt failed by throwing. Returns
 * whether an attempt succeeded.
 *
 * @example
 *   const done = await retryUntil(async (n) => (await migrate()).failed === 0, { attemptsMax: 5, delayMs: 5_000, clock });
 */
export async function retryUntil(attempt: (n: number) => Promise<boolean>, options: RetryOptions): Promise<boolean> {
  let lastError: { e: unknown } | undefined;
  for (let n = 1; n <= options.attemptsMax; n++) {
    if (options.stopped?.()) return false;
    try {
      if (await attempt(n)) return true;
      lastError = undefined;
    } catch (e) {
      lastError = { e };
    }
    if (n < options.attemptsMax) await options.clock.sleep(typeof options.delayMs === "number" ? options.delayMs : options.delayMs(n));
  }
  if (lastError) throw lastError.e;
  return false;
}
