/**
 * Invariant checks. An assertion failing means a bug in this process, not
 * bad input: bad input gets a typed error at the edge, long before an
 * assertion could see it. Assertions stay on in production (each is a
 * comparison or two; `npm run bench:assert` measures what they cost on the
 * hot paths); `POCKET_ASSERT=off` turns the cheap ones' extra checks off.
 *
 * @example
 *   assert(used <= capacity, "node over-committed", () => ({ used, capacity }));
 */
export class AssertionError extends Error {
  override readonly name = "AssertionError";
  constructor(message: string, readonly details?: Record<string, unknown>) {
    super(details === undefined ? message : `${message} ${JSON.stringify(details)}`);
  }
}

/** Whether expensive checks (walks over whole structures) run: on unless POCKET_ASSERT=off. */
export const assertionsDeep = process.env["POCKET_ASSERT"] !== "off";

/** Throws AssertionError when `condition` is false; `details` is computed only then. */
export function assert(condition: boolean, message: string, details?: () => Record<string, unknown>): asserts condition {
  if (!condition) throw new AssertionError(message, details?.());
}

/** Asserts `value` is a safe integer within [min, max]. */
export function assertInRange(value: number, min: number, max: number, what: string): void {
  if (!(Number.isSafeInteger(value) && value >= min && value <= max)) throw new AssertionError(`${what} out of range`, { value, min, max });
}

/** For exhaustive switches: a value the types say cannot exist. */
export function unreachable(value: never, what = "value"): never {
  throw new AssertionError(`unexpected ${what}`, { value: value as unknown });
}
