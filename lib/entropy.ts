import { randomBytes } from "node:crypto";

/**
 * Where ids and other unpredictable values come from: injected, so that a
 * seeded run (a `Prng` from lib/prng.ts is one) makes the same ones.
 */
export interface Entropy {
  /** `n` random bytes. */
  bytes(n: number): Buffer;
}

/** The operating system's CSPRNG. */
export const systemEntropy: Entropy = { bytes: (n) => randomBytes(n) };
