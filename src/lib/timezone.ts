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

// Building a formatter costs far more than using one, and send windows and cron schedules
// ask minute after minute; one per zone, as many as the tz database has.
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      weekday: "short",
    });
    formatters.set(timeZone, format);
  }
  return format;
}

/** The wall-clock fields of `date` in `timeZone`. */
export function wallClock(date: Date, timeZone: string) {
  const parts = formatter(timeZone).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)!.value;
  return {
    minute: Number(get("minute")),
    hour: Number(get("hour")),
    day: Number(get("day")),
    month: Number(get("month")),
    year: Number(get("year")),
    weekday: ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(get("weekday")),
  };
}
