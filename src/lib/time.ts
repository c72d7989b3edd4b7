/** ISO 8601 UTC with milliseconds, from a Date or epoch milliseconds; null stays null. */
export const iso = (at: Date | number | null | undefined): string | null =>
  at === null || at === undefined ? null : new Date(at).toISOString();
