/**
 * Per-isolate memo of inbox pages, each held with the inbox version it was read at. A page is
 * only ever served after D1 says its workspace's inbox still stands at that version, so it is
 * exactly what reading it again would give; the memo saves the reading, never the check.
 * Bounded by the bytes of the pages it holds, least recently used out first.
 */
export class InboxCache<Page> {
  readonly #pages = new Map<string, { version: number; page: Page; bytes: number }>();
  #bytes = 0;

  constructor(readonly maxBytes = 8 * 1024 * 1024) {}

  /** The page held for `key` and the version it was read at, if any. */
  get(key: string): { version: number; page: Page } | undefined {
    const held = this.#pages.get(key);
    if (!held) return undefined;
    // Maps iterate in insertion order: moving a page to the end keeps the oldest-used first.
    this.#pages.delete(key);
    this.#pages.set(key, held);
    return held;
  }

  set(key: string, version: number, page: Page, bytes: number): void {
    this.#drop(key);
    if (bytes > this.maxBytes) return;
    while (this.#bytes + bytes > this.maxBytes) this.#drop(this.#pages.keys().next().value!);
    this.#pages.set(key, { version, page, bytes });
    this.#bytes += bytes;
  }

  #drop(key: string): void {
    const held = this.#pages.get(key);
    if (!held) return;
    this.#pages.delete(key);
    this.#bytes -= held.bytes;
  }

  get size(): number {
    return this.#pages.size;
  }
}
