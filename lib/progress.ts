import { formatBytes } from "./units";

/** Where a progress bar draws: a stream with `write`, and whether it is a terminal. */
export interface ProgressSink {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface ProgressOptions {
  /** What is expected in all; undefined when unknown (no percentage, no ETA). */
  readonly total?: number;
  readonly unit?: "bytes" | "items";
  /** Where it draws; process.stderr by default. */
  readonly out?: ProgressSink;
  /** Redraw one line in place (a terminal) rather than print a line per tenth (a log). Default: whether `out` is a TTY. */
  readonly redraw?: boolean;
  /** The clock, in milliseconds; Date.now by default. */
  readonly now?: () => number;
  /** When the work began (by `now`), if before the bar was made: rates and ETAs count from it. Default: now. */
  readonly startMs?: number;
}

/** Least time between two redraws of a terminal line. */
const redrawEveryMs = 100;
/** Least time between two lines of a log when the total is unknown. */
const logLineEveryMs = 1_000;
const barWidth = 30;

/**
 * A one-line progress bar: bytes (or items) done of the total, rate and ETA.
 * On a terminal it is redrawn in place at most every 100 ms; in a log it
 * prints a line per tenth of the total (once a second when the total is
 * unknown), so logs and CI stay readable.
 *
 * @example
 *   const bar = new ProgressBar("put", { total: size });
 *   for await (const chunk of source) bar.add(chunk.byteLength);
 *   bar.finish();
 */
export class ProgressBar {
  readonly #out: ProgressSink;
  readonly #redraw: boolean;
  readonly #now: () => number;
  readonly #startMs: number;
  readonly #unit: "bytes" | "items";
  #total: number | undefined;
  #done = 0;
  #lastDrawMs = -Infinity;
  #lastDecile = 0;
  /** What the last line printed (log form) showed as done. */
  #printedDone = -1;
  #ended = false;

  constructor(private readonly label: string, options: ProgressOptions = {}) {
    this.#out = options.out ?? process.stderr;
    this.#redraw = options.redraw ?? this.#out.isTTY === true;
    this.#now = options.now ?? Date.now;
    this.#startMs = options.startMs ?? this.#now();
    this.#unit = options.unit ?? "bytes";
    this.#total = options.total;
  }

  /** What has been done so far. */
  get done(): number { return this.#done; }

  add(n: number): void {
    this.#done += n;
    // A total that was short (the object grew under us) grows with what is done.
    if (this.#total !== undefined && this.#done > this.#total) this.#total = this.#done;
    this.#draw(false);
  }

  /** Draws the finished line (100%, the elapsed time and average rate) and ends it. */
  finish(): void {
    if (this.#ended) return;
    this.#total = this.#done;
    this.#draw(true);
    this.#end();
  }

  /** Ends the line as it stands (a failed or interrupted transfer). */
  fail(): void {
    if (this.#ended) return;
    this.#draw(true);
    this.#end();
  }

  #end(): void {
    this.#ended = true;
    if (this.#redraw) this.#out.write("\n");
  }

  #draw(force: boolean): void {
    if (this.#ended) return;
    const now = this.#now();
    if (this.#redraw) {
      if (!force && now - this.#lastDrawMs < redrawEveryMs) return;
      this.#lastDrawMs = now;
      this.#out.write(`\r${this.line(now)}\x1b[K`);
      return;
    }
    if (this.#total === undefined) {
      if (!force && now - this.#lastDrawMs < logLineEveryMs) return;
      this.#lastDrawMs = now;
      this.#out.write(`${this.line(now)}\n`);
      return;
    }
    // A line per tenth; at the end (finished or failed), one more unless the last line already showed it.
    const decile = Math.floor(this.#fraction() * 10);
    if (decile <= this.#lastDecile && !(force && this.#done !== this.#printedDone)) return;
    this.#lastDecile = decile;
    this.#printedDone = this.#done;
    this.#out.write(`${this.line(now)}\n`);
  }

  #fraction(): number {
    if (this.#total === undefined) return 0;
    return this.#total === 0 ? 1 : Math.min(1, this.#done / this.#total);
  }

  #amount(n: number): string {
    return this.#unit === "bytes" ? formatBytes(Math.round(n)) : String(Math.round(n));
  }

  /** The bar's text at time `now`: label, bar and percentage (total known), amount, rate, ETA or elapsed time. */
  line(now: number = this.#now()): string {
    const secs = Math.max(0, now - this.#startMs) / 1000;
    const rate = secs > 0 ? this.#done / secs : 0;
    const perSec = `${this.#amount(rate)}/s`;
    if (this.#total === undefined) return `${this.label.padEnd(10)} ${this.#amount(this.#done)}  ${perSec}  ${formatSeconds(secs)}`;
    const frac = this.#fraction();
    const filled = Math.round(frac * barWidth);
    const left = this.#total - this.#done;
    const when = left <= 0 ? `in ${formatSeconds(secs)}` : rate > 0 ? `ETA ${formatSeconds(left / rate)}` : "ETA -";
    return `${this.label.padEnd(10)} [${"#".repeat(filled)}${".".repeat(barWidth - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  `
      + `${this.#amount(this.#done)}/${this.#amount(this.#total)}  ${perSec}  ${when}`;
  }
}

/** Seconds as `4.2s`, `1m05s` or `2h03m`. */
export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  const whole = Math.round(s);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")}m`;
}
