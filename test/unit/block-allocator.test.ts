import { BlockAllocator } from "../../actors/storage/block-allocator";
import { AssertionError } from "../../lib/assert";

test("runs come from fresh space, then from freed runs: exact fit first, else the smallest longer one, split", () => {
  const a = new BlockAllocator(100);
  expect(a.allocate(10)).toBe(0);
  expect(a.allocate(20)).toBe(10);
  expect(a.allocate(5)).toBe(30);
  a.free(0, 10);
  a.free(10, 20);
  expect(a.usedBlocks).toBe(5);
  expect(a.allocate(20)).toBe(10); // exact fit
  expect(a.allocate(4)).toBe(0); // smallest longer run (10), split
  expect(a.allocate(6)).toBe(4); // the rest of it
  expect(a.usedBlocks).toBe(35);
});

test("the last run handed out goes back to fresh space; a request that fits nowhere is refused", () => {
  const a = new BlockAllocator(10);
  expect(a.allocate(6)).toBe(0);
  expect(a.allocate(4)).toBe(6);
  expect(a.allocate(1)).toBeUndefined();
  a.free(6, 4);
  expect(a.allocate(3)).toBe(6);
  expect(a.freeBlocks).toBe(1);
  expect(a.allocate(2)).toBeUndefined();
  expect(() => a.allocate(0)).toThrow(RangeError);
});

test("random allocations and frees never overlap and account every block", () => {
  const a = new BlockAllocator(4096);
  const live = new Map<number, number>();
  const problems: string[] = [];
  let x = 99;
  const rand = (n: number): number => { x = (x * 1103515245 + 12345) >>> 0; return x % n; };
  for (let step = 0; step < 5_000; step++) {
    if (live.size > 0 && rand(3) === 0) {
      const keys = [...live.keys()];
      const start = keys[rand(keys.length)]!;
      a.free(start, live.get(start)!);
      live.delete(start);
    } else {
      const n = 1 + rand(64);
      const start = a.allocate(n);
      if (start === undefined) continue;
      for (const [s, len] of live) if (!(start + n <= s || s + len <= start)) problems.push(`step ${step}: [${start},+${n}) overlaps [${s},+${len})`);
      if (start + n > 4096) problems.push(`step ${step}: [${start},+${n}) past the end`);
      live.set(start, n);
    }
    const sum = [...live.values()].reduce((s, v) => s + v, 0);
    if (step % 500 === 0 && a.usedBlocks !== sum) problems.push(`step ${step}: ${a.usedBlocks} used, ${sum} live`);
  }
  expect(problems).toEqual([]);
  expect(live.size).toBeGreaterThan(10);
});

test("a run freed twice, or a run never handed out, is an assertion, and the allocator is left as it was", () => {
  const a = new BlockAllocator(100);
  expect(a.allocate(40)).toBe(0);
  expect(a.allocate(40)).toBe(40);
  a.free(0, 40);
  expect(() => a.free(0, 40)).toThrow(AssertionError); // the same run again
  expect(a.allocate(4)).toBe(0); // the front of the freed run is in use once more
  expect(() => a.free(0, 40)).toThrow(/freed twice/); // so is this run only partly
  expect(() => a.free(90, 20)).toThrow(/outside the space handed out/); // past the end of the device
  expect(() => a.free(80, 5)).toThrow(/outside the space handed out/); // never handed out (past the bump pointer)
  // The failed frees changed nothing: 44 blocks in use, the other 56 can still be had.
  expect(a.usedBlocks).toBe(44);
  expect(a.allocate(36)).toBe(4);
  expect(a.allocate(20)).toBe(80);
  expect(a.freeBlocks).toBe(0);
});

test("bad arguments from a caller are still RangeErrors, not assertions", () => {
  expect(() => new BlockAllocator(0)).toThrow(RangeError);
  const a = new BlockAllocator(10);
  for (const n of [0, -1, 1.5, Number.NaN]) {
    expect(() => a.allocate(n)).toThrow(RangeError);
    expect(() => a.allocate(n)).not.toThrow(AssertionError);
  }
});

