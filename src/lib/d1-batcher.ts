/** At most this many statements travel in one batch. */
const MAX_BATCH = 50;

type Pending = { statement: D1PreparedStatement; resolve: (rows: unknown[]) => void; reject: (error: unknown) => void };

/**
 * Group commit for one Durable Object's writes to D1: statements issued while a batch is in
 * flight wait for it, then go together as the next one. Under a burst (many approvals of one
 * run at once) that is one round trip and one commit for many writes instead of one each;
 * alone, a statement goes at once. Each statement stands on its own: a batch that fails
 * fails every statement in it, and each caller retries its own.
 */
export class D1Batcher {
  #pending: Pending[] = [];
  #draining: Promise<void> | null = null;

  constructor(private readonly db: D1Database) {}

  /** The statement's first row (as `first()` would answer it), sent in the next batch. */
  async first<T>(statement: D1PreparedStatement): Promise<T | null> {
    return (await this.all<T>(statement))[0] ?? null;
  }

  /** The statement's rows, sent in the next batch. */
  all<T>(statement: D1PreparedStatement): Promise<T[]> {
    return new Promise<unknown[]>((resolve, reject) => {
      this.#pending.push({ statement, resolve, reject });
      this.#draining ??= this.#drain();
    }) as Promise<T[]>;
  }

  async #drain(): Promise<void> {
    // Let statements issued in this same turn join the first batch.
    await Promise.resolve();
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, MAX_BATCH);
      try {
        const results = await this.db.batch(batch.map((p) => p.statement));
        batch.forEach((p, i) => p.resolve(results[i]?.results ?? []));
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
    this.#draining = null;
  }
}
