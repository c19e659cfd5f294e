/**
 * Resolves as `promise` does, or rejects once `timeoutMs` has passed without
 * it settling, naming `what`: a wait that must end (a read that stops at the
 * end of a stream, a close that settles every request) fails here, with its
 * name, instead of at the test's timeout. For a condition to poll, see
 * `eventually` in ./cluster.
 *
 * @example
 *   const kinds = await within(readAll(), 5_000, "a read that stops at the last event");
 */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
