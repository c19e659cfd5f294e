import { formatBytes } from "../lib/units";

/**
 * A one-line progress bar on stderr: redrawn in place on a terminal, a line
 * per 10% otherwise (logs and CI stay readable).
 */
export class ProgressBar {
  readonly #tty = process.stderr.isTTY === true;
  readonly #startMs = Date.now();
  #done = 0;
  #lastDrawMs = 0;
  #lastDecile = -1;

  constructor(private readonly label: string, private readonly total: number, private readonly unit: "bytes" | "items" = "bytes") {}

  add(n: number): void {
    this.#done = Math.min(this.total, this.#done + n);
    this.#draw(false);
  }

  finish(): void {
    this.#done = this.total;
    this.#draw(true);
    if (this.#tty) process.stderr.write("\n");
  }

  #draw(force: boolean): void {
    const now = Date.now();
    const frac = this.total === 0 ? 1 : this.#done / this.total;
    const decile = Math.floor(frac * 10);
    if (this.#tty) {
      if (!force && now - this.#lastDrawMs < 100) return;
      this.#lastDrawMs = now;
      process.stderr.write(`\r${this.#line(frac, now)}`);
    } else if (force || decile > this.#lastDecile) {
      if (force && decile === this.#lastDecile) return;
      this.#lastDecile = decile;
      process.stderr.write(`${this.#line(frac, now)}\n`);
    }
  }

  #line(frac: number, now: number): string {
    const width = 30;
    const filled = Math.round(frac * width);
    const secs = (now - this.#startMs) / 1000;
    const amount = this.unit === "bytes"
      ? `${formatBytes(this.#done)}/${formatBytes(this.total)} ${secs > 0 ? formatBytes(this.#done / secs) : "-"}/s`
      : `${this.#done}/${this.total}`;
    return `${this.label.padEnd(10)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${amount} ${secs.toFixed(1)}s`;
  }
}
