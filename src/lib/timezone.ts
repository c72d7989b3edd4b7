// Only names that exist are remembered, so the set stays as small as the tz database.
const known = new Set<string>();

/** True for an IANA time zone name the runtime's ICU data knows (`Europe/Berlin`, `UTC`). */
export function isTimeZone(name: string): boolean {
  if (known.has(name)) return true;
  if (name.length === 0 || name.length > 64) return false;
  // Intl also takes UTC offsets ("+01:00"): not IANA names, and blind to daylight saving.
  if (/^[+-]/.test(name)) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
  } catch {
    return false;
  }
  known.add(name);
  return true;
}

/** The wall-clock fields of `date` in `timeZone`. */
export function wallClock(date: Date, timeZone: string) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    weekday: "short",
  }).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)!.value;
  return {
    minute: Number(get("minute")),
    hour: Number(get("hour")),
    day: Number(get("day")),
    month: Number(get("month")),
    weekday: ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(get("weekday")),
  };
}
