/** A list that keeps only its newest `sizeMax` items (oldest first); pushing past that drops the oldest. */
export class Ring<T> {
  readonly #items: T[] = [];

  constructor(readonly sizeMax: number) {
    if (!(Number.isInteger(sizeMax) && sizeMax > 0)) throw new RangeError(`a ring holds at least one item, not ${sizeMax}`);
  }

  push(item: T): void {
    this.#items.push(item);
    if (this.#items.length > this.sizeMax) this.#items.splice(0, this.#items.length - this.sizeMax);
  }

  get size(): number {
    return this.#items.length;
  }

  /** A copy, oldest first. */
  toArray(): T[] {
    return [...this.#items];
  }
}
