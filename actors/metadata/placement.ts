import type { Weight } from "../../schemas/operations";

/**
 * Smooth weighted round-robin over a weight map: over any window, each node
 * gets extents in proportion to its weight, interleaved (not in runs).
 * Pure: the same weights and `fits` answers give the same sequence.
 */
export class WeightedPicker {
  readonly #current = new Map<string, number>();

  constructor(readonly weights: readonly Weight[]) {}

  /** The next node that `fits`, or undefined if none does. */
  pick(fits: (nodeId: string) => boolean): string | undefined {
    let total = 0;
    let best: string | undefined;
    let bestScore = -Infinity;
    for (const w of this.weights) {
      if (w.weight <= 0 || !fits(w.nodeId)) continue;
      const score = (this.#current.get(w.nodeId) ?? 0) + w.weight;
      this.#current.set(w.nodeId, score);
      total += w.weight;
      if (score > bestScore) {
        bestScore = score;
        best = w.nodeId;
      }
    }
    if (best !== undefined) this.#current.set(best, bestScore - total);
    return best;
  }
}
