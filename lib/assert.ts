/**
 * Invariant checks. An assertion failing means a bug in this process, not
 * bad input: bad input gets a typed error at the edge, long before an
 * assertion could see it. Assertions on request paths are a comparison or
 * two and stay on in production; checks that walk a whole structure
 * (`checkInvariants()` of the namespace and the shard) are called by tests
 * and the simulation, not by requests.
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
