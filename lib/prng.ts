/**
 * A seeded pseudo-random generator for fuzz cases: xorshift128 seeded through
 * splitmix32, so that case `i` of seed `s` is the same bytes on every run and
 * on every machine, whatever ran before it.
 *
 * @example
 *   const rng = Prng.forCase(42, 1_000);
 *   const n = rng.below(10);            // 0..9
 *   const tag = rng.pick(["a", "b"]);
 */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  private constructor(a: number, b: number, c: number, d: number) {
    this.#a = a;
    this.#b = b;
    this.#c = c;
    // xorshift128 must not start from all zeros.
    this.#d = (a | b | c | d) === 0 ? 1 : d;
  }

  /** The generator of one case: depends on the seed and the index only. */
  static forCase(seed: number, index: number): Prng {
    let s = splitmix32(seedWord(seed) ^ splitmix32(seedWord(index) ^ 0x5bd1e995));
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      s = splitmix32(s + i);
      words.push(s);
    }
    return new Prng(words[0]!, words[1]!, words[2]!, words[3]!);
  }

  /** An unsigned 32-bit integer. */
  u32(): number {
    let t = this.#d;
    const s = this.#a;
    this.#d = this.#c;
    this.#c = this.#b;
    this.#b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.#a = (t ^ s ^ (s >>> 19)) >>> 0;
    return this.#a;
  }

  /** A float in [0, 1). */
  float(): number {
    return (this.u32() * 0x20_0000 + (this.u32() >>> 11)) / 2 ** 53;
  }

  /** An integer in [0, n), n ≤ 2^53. */
  below(n: number): number {
    if (n <= 0) throw new RangeError(`below(${n})`);
    return Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError("pick from an empty list");
    return xs[this.below(xs.length)]!;
  }

  /** One of `entries`, each as likely as its weight. */
  weighted<T>(entries: ReadonlyArray<readonly [number, T]>): T {
    const total = entries.reduce((s, [w]) => s + w, 0);
    let x = this.float() * total;
    for (const [w, v] of entries) {
      if (x < w) return v;
      x -= w;
    }
    return entries[entries.length - 1]![1];
  }

  /** A size spread over orders of magnitude: mostly small, sometimes up to `max`. */
  size(max: number): number {
    if (max <= 0) return 0;
    const bits = this.below(Math.ceil(Math.log2(max + 1)) + 1);
    return Math.min(max, this.below(2 ** bits + 1));
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.u32(), i);
    for (; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** `n` characters drawn from `alphabet`. */
  string(n: number, alphabet: string): string {
    let s = "";
    for (let i = 0; i < n; i++) s += alphabet[this.below(alphabet.length)];
    return s;
  }
}

/** splitmix32's output function: a bijective, well-mixed u32. */
function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Folds a non-negative integer up to 2^53 into 32 bits, keeping both halves. */
function seedWord(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`seed and index must be non-negative safe integers, not ${n}`);
  return (n >>> 0) ^ splitmix32(Math.floor(n / 2 ** 32));
}
