/**
 * A held page and the inbox version it was read at. `moving`: the version had moved when the
 * page was last read, so the next request reads it again straight away rather than check first.
 */
export type Held<Page> = { version: number; page: Page; moving: boolean };

/**
 * Per-isolate memo of inbox pages, each held with the inbox version it was read at. A page is
 * only ever served after D1 says its workspace's inbox still stands at that version, so it is
 * exactly what reading it again would give; the memo saves the reading, never the check.
 * Bounded by the length of the pages' JSON, least recently used out first.
 */
export class InboxCache<Page> {
  readonly #pages = new Map<string, { held: Held<Page>; size: number }>();
  #size = 0;

  /** 2 M characters of JSON: about a hundred first pages of 20 entries. */
  constructor(readonly maxSize = 2_000_000) {}

  get(key: string): Held<Page> | undefined {
    const entry = this.#pages.get(key);
    if (!entry) return undefined;
    // Maps iterate in insertion order: moving a page to the end keeps the oldest-used first.
    this.#pages.delete(key);
    this.#pages.set(key, entry);
    return entry.held;
  }

  /** Holds a page whose JSON was `size` characters long; one larger than the whole memo is not held. */
  set(key: string, held: Held<Page>, size: number): void {
    this.#drop(key);
    if (size > this.maxSize) return;
    while (this.#size + size > this.maxSize) this.#drop(this.#pages.keys().next().value!);
    this.#pages.set(key, { held, size });
    this.#size += size;
  }

  #drop(key: string): void {
    const entry = this.#pages.get(key);
    if (!entry) return;
    this.#pages.delete(key);
    this.#size -= entry.size;
  }

  get size(): number {
    return this.#pages.size;
  }
}
