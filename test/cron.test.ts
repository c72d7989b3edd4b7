import { describe, expect, it } from "vitest";
import { CronError, cronMatches, parseCron } from "../src/lib/cron";
import { isTimeZone, wallClock } from "../src/lib/timezone";

const sorted = (set: Set<number>) => [...set].sort((a, b) => a - b);
const range = (from: number, to: number, step = 1) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

/** Wall-clock fields as cronMatches takes them; 2026-11-23 is a Monday. */
const at = (t: Partial<{ minute: number; hour: number; day: number; month: number; weekday: number }>) => ({
  minute: 0,
  hour: 0,
  day: 23,
  month: 11,
  weekday: 1,
  ...t,
});

describe("parseCron", () => {
  it("expands * to every value of each field", () => {
    const cron = parseCron("* * * * *");
    expect(sorted(cron.minutes)).toEqual(range(0, 59));
    expect(sorted(cron.hours)).toEqual(range(0, 23));
    expect(sorted(cron.daysOfMonth)).toEqual(range(1, 31));
    expect(sorted(cron.months)).toEqual(range(1, 12));
    expect(sorted(cron.daysOfWeek)).toEqual(range(0, 6));
    expect(cron.dayOr).toBe(false);
  });

  it("reads steps, ranges, names and lists", () => {
    const cron = parseCron("*/15 9-17 1,15 JAN-MAR MON-FRI");
    expect(sorted(cron.minutes)).toEqual([0, 15, 30, 45]);
    expect(sorted(cron.hours)).toEqual(range(9, 17));
    expect(sorted(cron.daysOfMonth)).toEqual([1, 15]);
    expect(sorted(cron.months)).toEqual([1, 2, 3]);
    expect(sorted(cron.daysOfWeek)).toEqual([1, 2, 3, 4, 5]);
  });

  it("reads stepped ranges and a start with a step", () => {
    expect(sorted(parseCron("10-30/10 * * * *").minutes)).toEqual([10, 20, 30]);
    expect(sorted(parseCron("5/20 * * * *").minutes)).toEqual([5, 25, 45]);
    expect(sorted(parseCron("0 */6 * * *").hours)).toEqual([0, 6, 12, 18]);
  });

  it("accepts names in any case", () => {
    expect(sorted(parseCron("0 0 * jul sun,Sat").daysOfWeek)).toEqual([0, 6]);
    expect(sorted(parseCron("0 0 * jul *").months)).toEqual([7]);
  });

  it("treats day of week 7 as Sunday", () => {
    expect(sorted(parseCron("0 0 * * 7").daysOfWeek)).toEqual([0]);
    expect(sorted(parseCron("0 0 * * 5-7").daysOfWeek)).toEqual([0, 5, 6]);
  });

  it("ignores surrounding and repeated whitespace", () => {
    expect(sorted(parseCron("  0\t9  * *   1 ").hours)).toEqual([9]);
  });

  it("uses OR for the day fields only when both are restricted", () => {
    expect(parseCron("0 0 1 * 1").dayOr).toBe(true);
    expect(parseCron("0 0 1 * *").dayOr).toBe(false);
    expect(parseCron("0 0 * * 1").dayOr).toBe(false);
  });

  it.each([
    ["* * *", /5 fields/],
    ["* * * * * *", /5 fields/],
    ["", /5 fields/],
    ["61 * * * *", /minute/],
    ["* 24 * * *", /hour/],
    ["* * 0 * *", /day of month/],
    ["* * 32 * *", /day of month/],
    ["* * * 0 *", /month/],
    ["* * * 13 *", /month/],
    ["* * * * 8", /day of week/],
    ["*/0 * * * *", /at least 1/],
    ["30-10 * * * *", /backwards/],
    ["MON * * * *", /minute/],
    ["* * * FOO *", /month/],
    ["1,,2 * * * *", /minute/],
    ["-1 * * * *", /minute/],
    ["1.5 * * * *", /minute/],
    ["? * * * *", /minute/],
  ])("rejects %j with a CronError", (expression, message) => {
    expect(() => parseCron(expression)).toThrow(CronError);
    expect(() => parseCron(expression)).toThrow(message);
  });
});

describe("cronMatches", () => {
  it("matches every field of a business-hours schedule", () => {
    const cron = parseCron("*/15 9-17 * * MON-FRI");
    expect(cronMatches(cron, at({ hour: 9, minute: 0 }))).toBe(true);
    expect(cronMatches(cron, at({ hour: 17, minute: 45 }))).toBe(true);
    expect(cronMatches(cron, at({ hour: 9, minute: 5 }))).toBe(false);
    expect(cronMatches(cron, at({ hour: 8, minute: 45 }))).toBe(false);
    expect(cronMatches(cron, at({ hour: 18, minute: 0 }))).toBe(false);
    expect(cronMatches(cron, at({ hour: 12, weekday: 6, day: 28 }))).toBe(false);
    expect(cronMatches(cron, at({ hour: 12, weekday: 0, day: 29 }))).toBe(false);
  });

  it("requires the month to match", () => {
    const cron = parseCron("0 0 1 JAN *");
    expect(cronMatches(cron, at({ day: 1, month: 1, weekday: 4 }))).toBe(true);
    expect(cronMatches(cron, at({ day: 1, month: 2, weekday: 0 }))).toBe(false);
  });

  it("runs on a day matching either day field when both are restricted", () => {
    const cron = parseCron("0 12 1 * MON");
    expect(cronMatches(cron, at({ hour: 12, day: 1, weekday: 2 }))).toBe(true); // the 1st, a Tuesday
    expect(cronMatches(cron, at({ hour: 12, day: 23, weekday: 1 }))).toBe(true); // a Monday, not the 1st
    expect(cronMatches(cron, at({ hour: 12, day: 24, weekday: 2 }))).toBe(false);
  });

  it("needs both day fields when only one is restricted", () => {
    const byDay = parseCron("0 12 15 * *");
    expect(cronMatches(byDay, at({ hour: 12, day: 15, weekday: 0 }))).toBe(true);
    expect(cronMatches(byDay, at({ hour: 12, day: 16, weekday: 1 }))).toBe(false);
    const byWeekday = parseCron("0 12 * * SUN");
    expect(cronMatches(byWeekday, at({ hour: 12, day: 22, weekday: 0 }))).toBe(true);
    expect(cronMatches(byWeekday, at({ hour: 12, day: 23, weekday: 1 }))).toBe(false);
  });

  it("matches Sunday written as 7", () => {
    expect(cronMatches(parseCron("0 0 * * 7"), at({ weekday: 0, day: 22 }))).toBe(true);
  });
});

describe("isTimeZone", () => {
  it.each(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Etc/GMT+1"])("accepts the IANA zone %s", (name) => {
    expect(isTimeZone(name)).toBe(true);
    expect(isTimeZone(name)).toBe(true); // a second, remembered answer agrees
  });

  it.each(["", "Mars/Olympus", "Europe/Atlantis", "local", "x".repeat(65), "+01:00", "-0500", "+02"])("rejects %j, which names no IANA zone", (name) => {
    expect(isTimeZone(name)).toBe(false);
  });
});

describe("wallClock", () => {
  it("reads the fields of a UTC time", () => {
    expect(wallClock(new Date("2026-11-23T09:05:00.000Z"), "UTC")).toEqual({ minute: 5, hour: 9, day: 23, month: 11, year: 2026, weekday: 1 });
  });

  it("reports midnight as hour 0", () => {
    expect(wallClock(new Date("2026-11-23T00:00:00.000Z"), "UTC").hour).toBe(0);
    expect(wallClock(new Date("2026-11-22T23:00:00.000Z"), "Europe/Berlin")).toEqual({ minute: 0, hour: 0, day: 23, month: 11, year: 2026, weekday: 1 });
  });

  it("crosses a date line into the previous day", () => {
    expect(wallClock(new Date("2026-11-23T03:30:00.000Z"), "America/New_York")).toEqual({ minute: 30, hour: 22, day: 22, month: 11, year: 2026, weekday: 0 });
  });

  it("jumps from 01:59 to 03:00 when Berlin springs forward", () => {
    // 2026-03-29 01:00 UTC: CET (UTC+1) becomes CEST (UTC+2).
    expect(wallClock(new Date("2026-03-29T00:59:00.000Z"), "Europe/Berlin")).toEqual({ minute: 59, hour: 1, day: 29, month: 3, year: 2026, weekday: 0 });
    expect(wallClock(new Date("2026-03-29T01:00:00.000Z"), "Europe/Berlin")).toEqual({ minute: 0, hour: 3, day: 29, month: 3, year: 2026, weekday: 0 });
  });

  it("repeats 02:00-02:59 when Berlin falls back", () => {
    // 2026-10-25 01:00 UTC: CEST (UTC+2) becomes CET (UTC+1).
    const first = wallClock(new Date("2026-10-25T00:30:00.000Z"), "Europe/Berlin");
    const second = wallClock(new Date("2026-10-25T01:30:00.000Z"), "Europe/Berlin");
    expect(first).toEqual({ minute: 30, hour: 2, day: 25, month: 10, year: 2026, weekday: 0 });
    expect(second).toEqual(first);
    expect(wallClock(new Date("2026-10-25T02:30:00.000Z"), "Europe/Berlin").hour).toBe(3);
  });

  it("lets a Berlin 09:00 schedule follow local time across the DST change", () => {
    const cron = parseCron("0 9 * * *");
    // Before the change 09:00 Berlin is 08:00 UTC; after it, 07:00 UTC.
    expect(cronMatches(cron, wallClock(new Date("2026-03-28T08:00:00.000Z"), "Europe/Berlin"))).toBe(true);
    expect(cronMatches(cron, wallClock(new Date("2026-03-30T08:00:00.000Z"), "Europe/Berlin"))).toBe(false);
    expect(cronMatches(cron, wallClock(new Date("2026-03-30T07:00:00.000Z"), "Europe/Berlin"))).toBe(true);
  });
});
