/** Text that is not a size, rate or duration. */
export class UnitError extends RangeError {
  override readonly name = "UnitError";
}

const byteUnits: Record<string, number> = {
  "": 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30, ti: 2 ** 40, tib: 2 ** 40,
};

/**
 * Parses a byte size: `512`, `64KiB`, `10GiB`, `1.5GB`.
 * @example parseBytes("10GiB") === 10 * 2 ** 30
 */
export function parseBytes(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? byteUnits[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UnitError(`not a byte size: ${JSON.stringify(text)} (try 512, 64KiB, 10GiB)`);
  return Math.round(Number(m[1]) * unit);
}

const bitUnits: Record<string, number> = { bps: 1, kbps: 1e3, mbps: 1e6, gbps: 1e9, tbps: 1e12 };
/**
 * Parses a network rate into bytes per second: `600Mbps`, `1Gbps`, or a byte rate `100MB/s`.
 * @example parseRate("8Gbps") === 1e9
 */
export function parseRate(text: string): number {
  const t = text.trim();
  const bits = /^([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+ps)$/.exec(t);
  if (bits && bitUnits[bits[2]!.toLowerCase()] !== undefined) return Math.round((Number(bits[1]) * bitUnits[bits[2]!.toLowerCase()]!) / 8);
  const perSec = /^(.*)\/s$/.exec(t);
  if (perSec) return parseBytes(perSec[1]!);
  throw new UnitError(`not a rate: ${JSON.stringify(text)} (try 600Mbps, 1Gbps, 100MB/s)`);
}

/** Formats bytes for people: `1.5 GiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };
/**
 * Parses a duration into milliseconds: `500ms`, `90s`, `10m`, `1h`, `7d`.
 * @example parseDuration("10m") === 600_000
 */
export function parseDuration(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*$/.exec(text);
  if (!m) throw new UnitError(`not a duration: ${JSON.stringify(text)} (try 90s, 10m, 1h)`);
  return Math.round(Number(m[1]) * durationUnits[m[2]!]!);
}
