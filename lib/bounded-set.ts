/** A set that forgets its oldest members past `sizeMax` (insertion order). */
export class BoundedSet<T> {
  readonly #items = new Set<T>();
  constructor(private readonly sizeMax: number) {}
  add(item: T): void {
    this.#items.delete(item);
    this.#items.add(item);
    if (this.#items.size > this.sizeMax) {
      const oldest = this.#items.values().next();
      if (!oldest.done) this.#items.delete(oldest.value);
    }
  }
  has(item: T): boolean {
    return this.#items.has(item);
  }
}
