import { describe, expect, it, vi } from "vitest";
import { localDay, sendDays } from "../src/delivery/send-days";

const weekdays = { start: "09:00", end: "17:00", days: [1, 2, 3, 4, 5], timezone: "Europe/Berlin" };

describe("the days a send may go out on", () => {
  it("start now when the window is open, then each following opening on the window's clock", () => {
    const now = Date.parse("2026-10-22T10:30:00Z"); // Thursday, 12:30 in Berlin
    const days = sendDays(weekdays, now, 3);
    expect(days).toEqual([
      { day: "2026-10-22", at: now },
      { day: "2026-10-23", at: Date.parse("2026-10-23T07:00:00Z") },
      // Over the weekend, and past the end of summer time: 09:00 in Berlin is 08:00 UTC again.
      { day: "2026-10-26", at: Date.parse("2026-10-26T08:00:00Z") },
    ]);
  });

  it("start at the next opening when the window is closed", () => {
    const days = sendDays(weekdays, Date.parse("2026-10-23T16:00:00Z"), 1); // Friday 18:00 in Berlin
    expect(days).toEqual([{ day: "2026-10-26", at: Date.parse("2026-10-26T08:00:00Z") }]);
  });

  it("count UTC days from midnight without a window", () => {
    const now = Date.parse("2026-10-24T23:59:30Z");
    expect(sendDays(null, now, 3)).toEqual([
      { day: "2026-10-24", at: now },
      { day: "2026-10-25", at: Date.parse("2026-10-25T00:00:00Z") },
      { day: "2026-10-26", at: Date.parse("2026-10-26T00:00:00Z") },
    ]);
  });

  it("name each day once on a day of 25 hours", () => {
    const everyDay = { start: "00:00", end: "23:59", days: [1, 2, 3, 4, 5, 6, 7], timezone: "Europe/Berlin" };
    const days = sendDays(everyDay, Date.parse("2026-10-24T12:00:00Z"), 3).map((d) => d.day);
    expect(days).toEqual(["2026-10-24", "2026-10-25", "2026-10-26"]);
    expect(localDay(Date.parse("2026-10-25T22:30:00Z"), "Europe/Berlin")).toBe("2026-10-25");
  });
});

describe("the days of one minute", () => {
  it("are worked out once: a thousand sends in the same minute read the zone's clock no more than the first", () => {
    // Reading a zone's clock (Intl) is what is slow: count the reads, not the time.
    const reads = vi.spyOn(Intl.DateTimeFormat.prototype, "formatToParts");
    const minute = Date.parse("2026-10-22T11:30:00Z");
    sendDays(weekdays, minute);
    const first = reads.mock.calls.length;
    for (let i = 1; i < 1000; i++) sendDays(weekdays, minute + (i % 60) * 1000);
    expect(first).toBeGreaterThan(0);
    expect(reads.mock.calls.length).toBe(first);
    reads.mockRestore();
  });

  it("still start at each call's own moment when the window is open, and are never shared for writing", () => {
    const now = Date.parse("2026-10-22T10:30:12.345Z");
    const first = sendDays(weekdays, now, 2);
    first[1]!.at = 0;
    const later = sendDays(weekdays, now + 30_000, 2);
    expect(later).toEqual([
      { day: "2026-10-22", at: now + 30_000 },
      { day: "2026-10-23", at: Date.parse("2026-10-23T07:00:00Z") },
    ]);
    // Closed: the next opening, whatever second of the minute asks.
    const closed = Date.parse("2026-10-23T16:00:00Z");
    expect(sendDays(weekdays, closed + 59_000, 1)).toEqual(sendDays(weekdays, closed, 1));
    expect(sendDays(weekdays, closed + 59_000, 1)).toEqual([{ day: "2026-10-26", at: Date.parse("2026-10-26T08:00:00Z") }]);
  });
});
