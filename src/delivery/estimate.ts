import type { SendWindow } from "../runs/send-window";
import { dailyCap, sendDays, slotsTaken } from "./send-days";

/**
 * When the identity's next `count` emails would go out if approved now, soonest first: the
 * free slots of its sending days under its daily limit, each at the day's first moment (now
 * today, else the window's opening). Held and sent emails take slots; failed ones do not.
 * Shorter than `count` when every day ahead is full.
 */
export async function sendEstimates(db: D1Database, identityId: string, window: SendWindow | null, now: number, count: number): Promise<number[]> {
  if (count === 0) return [];
  const days = sendDays(window, now);
  const { results } = await db
    .prepare(
      `SELECT ${slotsTaken("?1", "j.value")} AS used, ${dailyCap("?1")} AS cap FROM json_each(?2) j ORDER BY j.key`,
    )
    .bind(identityId, JSON.stringify(days.map((d) => d.day)))
    .all<{ used: number; cap: number }>();
  return freeSlots(days, (_, i) => results[i]!.used, results[0]?.cap ?? 0, count);
}

/** The first `count` free slots of `days` (soonest first) under `cap` a day, given the slots each day has taken. */
export function freeSlots(days: { day: string; at: number }[], used: (day: string, i: number) => number, cap: number, count: number): number[] {
  const slots: number[] = [];
  days.forEach(({ day, at }, i) => {
    for (let free = cap - used(day, i); free > 0 && slots.length < count; free--) slots.push(at);
  });
  return slots;
}
