import { formatSeconds, ProgressBar } from "../../lib/progress";

const MiB = 1024 * 1024;

/** A sink that keeps what was drawn, and a clock the test moves. */
function rig(isTTY: boolean): { out: { text: string; write(s: string): boolean; isTTY: boolean }; clock: { ms: number }; now: () => number } {
  const out = { text: "", isTTY, write(s: string) { this.text += s; return true; } };
  const clock = { ms: 1_000 };
  return { out, clock, now: () => clock.ms };
}

test("on a terminal: one line redrawn in place, at most every 100 ms, with bytes, rate and ETA; the finished line says how long it took", () => {
  const { out, clock, now } = rig(true);
  const bar = new ProgressBar("get", { total: 100 * MiB, out, now });
  clock.ms += 1_000;
  bar.add(25 * MiB);
  clock.ms += 50;
  bar.add(1 * MiB); // within 100 ms of the last draw: not drawn
  expect(out.text).toBe(`\rget        [########......................]  25%  25.0 MiB/100 MiB  25.0 MiB/s  ETA 3.0s\x1b[K`);
  clock.ms += 950;
  bar.add(24 * MiB);
  expect(out.text.split("\r").at(-1)).toBe("get        [###############...............]  50%  50.0 MiB/100 MiB  25.0 MiB/s  ETA 2.0s\x1b[K");
  clock.ms += 2_000;
  bar.add(50 * MiB);
  bar.finish();
  expect(out.text.endsWith("100%  100 MiB/100 MiB  25.0 MiB/s  in 4.0s\x1b[K\n")).toBe(true);
  expect(out.text).not.toContain("\n\r");
});

test("in a log: a line per tenth, the last at 100%; a failure ends where it stopped", () => {
  const { out, clock, now } = rig(false);
  const bar = new ProgressBar("put", { total: 10 * MiB, out, now });
  for (let i = 0; i < 40; i++) {
    clock.ms += 10;
    bar.add(MiB / 4);
  }
  bar.finish();
  const lines = out.text.trim().split("\n");
  expect(lines.map((l) => /(\d+)%/.exec(l)![1])).toEqual(["10", "20", "30", "40", "50", "60", "70", "80", "90", "100"]);
  expect(out.text).not.toContain("\r");

  const failed = rig(false);
  const stopped = new ProgressBar("get", { total: 10 * MiB, out: failed.out, now: failed.now });
  stopped.add(3 * MiB);
  stopped.add(MiB / 2);
  stopped.fail();
  stopped.add(MiB); // nothing after the end
  expect(failed.out.text.trim().split("\n").map((l) => /(\d+)%/.exec(l)![1])).toEqual(["30", "35"]);
});

test("an unknown total: bytes and rate, no percentage; counted from when the work began", () => {
  const { out, clock, now } = rig(true);
  const began = clock.ms;
  clock.ms += 2_000;
  const bar = new ProgressBar("put", { out, now, startMs: began });
  bar.add(8 * MiB);
  expect(out.text).toBe("\rput        8.00 MiB  4.00 MiB/s  2.0s\x1b[K");
});

test("durations read as seconds, minutes or hours", () => {
  expect([formatSeconds(4.24), formatSeconds(65), formatSeconds(7_380)]).toEqual(["4.2s", "1m05s", "2h03m"]);
});
