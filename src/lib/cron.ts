/** A parsed five-field cron expression: the allowed values of each field. */
export type Cron = {
  minutes: Set<number>;
  hours: Set<number>;
  daysOfMonth: Set<number>;
  months: Set<number>;
  daysOfWeek: Set<number>;
  /** Cron's rule: when both day fields are restricted, a day matching either one runs. */
  dayOr: boolean;
};

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

type FieldSpec = { name: string; min: number; max: number; names?: string[]; nameBase?: number };
const FIELDS: FieldSpec[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTHS, nameBase: 1 },
  { name: "day of week", min: 0, max: 7, names: DAYS, nameBase: 0 },
];

export class CronError extends Error {}

/** Parses `m h dom mon dow` (numbers, names, `*`, ranges, steps and lists); throws CronError. */
export function parseCron(expression: string): Cron {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) throw new CronError(`Expected 5 fields (minute hour day month weekday), got ${parts.length}`);
  const [minutes, hours, daysOfMonth, months, daysOfWeek] = parts.map((part, i) => parseField(part, FIELDS[i]!));
  // 7 is another name for Sunday.
  if (daysOfWeek!.delete(7)) daysOfWeek!.add(0);
  return {
    minutes: minutes!,
    hours: hours!,
    daysOfMonth: daysOfMonth!,
    months: months!,
    daysOfWeek: daysOfWeek!,
    dayOr: parts[2] !== "*" && parts[4] !== "*",
  };
}

function parseField(field: string, spec: FieldSpec): Set<number> {
  const values = new Set<number>();
  for (const item of field.split(",")) {
    const match = /^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:\/(\d+))?$/.exec(item);
    if (!match) throw new CronError(`Invalid ${spec.name} field "${field}"`);
    const [, range, stepText] = match;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw new CronError(`Step in ${spec.name} field must be at least 1`);
    let [from, to] = [spec.min, spec.max];
    if (range !== "*") {
      const [a, b] = range!.split("-");
      from = value(a!, spec);
      to = b === undefined ? (stepText === undefined ? from : spec.max) : value(b, spec);
      if (from > to) throw new CronError(`Range ${range} in ${spec.name} field runs backwards`);
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

function value(text: string, spec: FieldSpec): number {
  const byName = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  const n = byName >= 0 ? byName + spec.nameBase! : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < spec.min || n > spec.max) {
    throw new CronError(`"${text}" is not a valid ${spec.name} (${spec.min}-${spec.max})`);
  }
  return n;
}

/** Whether the wall-clock time (in the cron's own time zone) is one the expression names. */
export function cronMatches(cron: Cron, t: { minute: number; hour: number; day: number; month: number; weekday: number }): boolean {
  if (!cron.minutes.has(t.minute) || !cron.hours.has(t.hour) || !cron.months.has(t.month)) return false;
  const dom = cron.daysOfMonth.has(t.day);
  const dow = cron.daysOfWeek.has(t.weekday);
  return cron.dayOr ? dom || dow : dom && dow;
}
