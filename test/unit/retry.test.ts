import { ManualClock } from "../../lib/clock";
import { retryUntil } from "../../lib/retry";

/** Runs a retry on a manual clock, firing its waits as they come. */
async function run(attempt: (n: number) => Promise<boolean>, options: { attemptsMax: number; delayMs: number | ((n: number) => number); stopped?: () => boolean }) {
  const clock = new ManualClock(0);
  const tried: Array<{ n: number; atMs: number }> = [];
  const p = retryUntil(async (n) => { tried.push({ n, atMs: clock.now() }); return attempt(n); }, { ...options, clock });
  let settled = false;
  const out = p.then((v) => ({ value: v }), (e: unknown) => ({ error: e })).finally(() => { settled = true; });
  while (!settled) {
    await new Promise((r) => setImmediate(r));
    clock.fireNext();
  }
  return { ...(await out), tried };
}

test("stops at the first success, waiting between attempts", async () => {
  const r = await run(async (n) => n === 3, { attemptsMax: 5, delayMs: 100 });
  expect(r).toEqual({ value: true, tried: [{ n: 1, atMs: 0 }, { n: 2, atMs: 100 }, { n: 3, atMs: 200 }] });
});

test("gives up after attemptsMax, with a backoff when asked", async () => {
  const r = await run(async () => false, { attemptsMax: 3, delayMs: (n) => 100 * 2 ** (n - 1) });
  expect(r).toEqual({ value: false, tried: [{ n: 1, atMs: 0 }, { n: 2, atMs: 100 }, { n: 3, atMs: 300 }] });
});

test("an attempt that throws is a failure; the last error comes back when all threw", async () => {
  const r = await run(async (n) => { throw new Error(`attempt ${n}`); }, { attemptsMax: 2, delayMs: 10 });
  expect((r as { error: Error }).error.message).toBe("attempt 2");
  expect(r.tried).toHaveLength(2);
});

test("stops early when the caller is stopping", async () => {
  let stop = false;
  const r = await run(async () => { stop = true; return false; }, { attemptsMax: 5, delayMs: 10, stopped: () => stop });
  expect(r).toEqual({ value: false, tried: [{ n: 1, atMs: 0 }] });
});
