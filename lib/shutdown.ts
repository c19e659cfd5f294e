/**
 * Runs the steps of a shutdown in order, each one even when a step before it
 * failed (a drain that fails must not leave a store open or a port
 * listening), then throws the first failure; each later failure goes to
 * `alsoFailed` (to be logged), so none is lost.
 *
 * @example
 *   await closeInTurn([() => bus.drain(), () => store.close(), () => http.close()],
 *     (e) => log.error("stop: another step failed too", errorFields(e)));
 */
export async function closeInTurn(steps: ReadonlyArray<() => unknown>, alsoFailed: (error: unknown) => void): Promise<void> {
  let first: { readonly error: unknown } | undefined;
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      if (first === undefined) first = { error: e };
      else alsoFailed(e);
    }
  }
  if (first !== undefined) throw first.error;
}
