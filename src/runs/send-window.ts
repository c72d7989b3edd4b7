import { wallClock } from "../lib/timezone";
import type { SenderSnapshot } from "./spec";

export type SendWindow = NonNullable<SenderSnapshot["send_window"]>;

const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Whether `at` falls inside the window, on the window's own clock. ISO weekdays: 1 Mon ... 7 Sun. */
export function inWindow(window: SendWindow, at: number): boolean {
  const t = wallClock(new Date(at), window.timezone);
  const isoDay = t.weekday === 0 ? 7 : t.weekday;
  const now = t.hour * 60 + t.minute;
  return window.days.includes(isoDay) && now >= minutes(window.start) && now < minutes(window.end);
}

/**
 * The first minute at or after `from` at which the window is open. Scans in strides of
 * half an hour, or of the window's length when it is shorter (a longer stride could step
 * over the whole window), then walks back minute by minute to the exact opening; a week
 * covers every case.
 */
export function nextOpening(window: SendWindow, from: number): number {
  const MINUTE = 60_000;
  let t = Math.ceil(from / MINUTE) * MINUTE;
  if (inWindow(window, t)) return t;
  const limit = t + 8 * 24 * 60 * MINUTE;
  const stride = Math.min(30, minutes(window.end) - minutes(window.start)) * MINUTE;
  while (t < limit && !inWindow(window, t)) t += stride;
  while (inWindow(window, t - MINUTE)) t -= MINUTE;
  return t;
}
