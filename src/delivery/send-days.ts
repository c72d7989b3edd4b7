import { sql, type SQL } from "drizzle-orm";
import { wallClock } from "../lib/timezone";
import { inWindow, nextOpening, type SendWindow } from "../runs/send-window";

const MINUTE = 60_000;
/** How many sending days ahead a send may be put off by the daily limit before it fails. */
export const SEND_DAYS_AHEAD = 31;

/** A delivery that holds its local day's slot: held, being sent or sent. A failed email frees its slot. */
const HOLDS_SLOT = "x.status <> 'failed'";

/**
 * The daily limit in SQL, one rule for the sends that take slots and the estimates that
 * predict them: the slots an identity's emails hold on a local day (read from the
 * deliveries_identity_day index alone), and the identity's cap.
 */
export const slotsTaken = (identity: string, day: string) =>
  `(SELECT count(*) FROM deliveries x WHERE x.identity_id = ${identity} AND x.send_day = ${day} AND ${HOLDS_SLOT})`;

/** `day, n`: the slots the deliveries of the action keys `keys` selects hold, per local day: emails claimed again, whose held slots are their own. */
export const slotsHeldBy = (identity: string, keys: string) =>
  `SELECT x.send_day AS day, count(*) AS n FROM deliveries x INDEXED BY deliveries_action_key
     WHERE x.action_key IN (${keys}) AND x.identity_id = ${identity} AND ${HOLDS_SLOT} GROUP BY x.send_day`;

/** The same count for many identities and days in one read: `identity_id, day, used` for each day from `fromDay` on that holds any slot. */
export const slotsTakenSince = (identities: SQL, fromDay: string) =>
  sql`SELECT x.identity_id, x.send_day AS day, count(*) AS used FROM deliveries x
    WHERE x.identity_id IN (${identities}) AND x.send_day >= ${fromDay} AND ${sql.raw(HOLDS_SLOT)} GROUP BY x.identity_id, x.send_day`;
export const dailyCap = (identity: string) => `COALESCE((SELECT daily_limit FROM identities WHERE id = ${identity}), 50)`;

/** `YYYY-MM-DD` of `at` on the identity's clock: the day its daily limit counts. */
export function localDay(at: number, timeZone: string): string {
  const t = wallClock(new Date(at), timeZone);
  return `${t.year}-${String(t.month).padStart(2, "0")}-${String(t.day).padStart(2, "0")}`;
}

type SendDay = { day: string; at: number };

// Working out the days reads the zone's clock (Intl) a hundred times and more, thousands with
// a send window, and they depend on `now` only to the minute: every send and estimate of the
// same minute and window shares one computation.
const MEMO_SIZE = 64;
const memo = new Map<string, { days: SendDay[]; openNow: boolean }>();

/**
 * The days a send may go out on, soonest first, each with the first moment it may leave:
 * now when the window is open (or there is none), else the next opening; then the opening of
 * each following day the window opens on. The daily limit picks the first with room.
 */
export function sendDays(window: SendWindow | null, now: number, count = SEND_DAYS_AHEAD): SendDay[] {
  const minute = Math.floor(now / MINUTE) * MINUTE;
  const key = `${minute} ${count} ${window ? JSON.stringify(window) : ""}`;
  let known = memo.get(key);
  if (!known) {
    if (memo.size >= MEMO_SIZE) memo.clear();
    known = daysFrom(window, minute, count);
    memo.set(key, known);
  }
  // Open this minute: the first day starts at this very moment.
  return known.days.map((d, i) => (i === 0 && known.openNow ? { ...d, at: now } : { ...d }));
}

/** sendDays from the start of a minute, and whether the window is open in it. */
function daysFrom(window: SendWindow | null, minute: number, count: number): { days: SendDay[]; openNow: boolean } {
  const zone = window?.timezone ?? "UTC";
  const opening = (from: number) => (window ? nextOpening(window, from) : from);
  const days: SendDay[] = [];
  const openNow = !window || inWindow(window, minute);
  let at = openNow ? minute : opening(minute);
  while (days.length < count) {
    const day = localDay(at, zone);
    if (days.at(-1)?.day !== day) days.push({ day, at });
    // On to the next local midnight; a daylight-saving day is an hour short or long, so step on until the date turns.
    const clock = wallClock(new Date(at), zone);
    let midnight = Math.floor(at / MINUTE) * MINUTE + (1440 - clock.hour * 60 - clock.minute) * MINUTE;
    while (localDay(midnight, zone) === day) midnight += 60 * MINUTE;
    at = opening(midnight);
  }
  return { days, openNow };
}
