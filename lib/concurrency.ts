/**
 * Runs `fn` over `items` with at most `limit` at once; results in input order.
 * Rejects with the first failure after the running ones settle.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let w = 0; w < Math.min(limit, items.length); w++) workers.push(worker());
  await Promise.all(workers);
  if (failure) throw failure.e;
  return out;
}

/** Like mapLimit, but every item runs and each result is kept, success or failure. */
export async function settleLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<Array<PromiseSettledResult<R>>> {
  return mapLimit(items, limit, async (item) => {
    try {
      return { status: "fulfilled", value: await fn(item) } as const;
    } catch (reason) {
      return { status: "rejected", reason } as const;
    }
  });
}
