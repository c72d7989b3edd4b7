import { describe, expect, it } from "vitest";
import { inWindow, nextOpening } from "../src/runs/send-window";

type Window = Parameters<typeof inWindow>[0];

const WEEKDAYS = [1, 2, 3, 4, 5];
const window = (overrides: Partial<Window> = {}): Window => ({ start: "09:00", end: "17:00", days: WEEKDAYS, timezone: "UTC", ...overrides });
const at = (iso: string) => Date.parse(iso);

// 2026-11-23 is a Monday; New York is on EST (UTC-5) then, Auckland on NZDT (UTC+13).
describe("inWindow", () => {
  it("opens at the start minute and closes at the end minute, on the window's clock", () => {
    const ny = window({ timezone: "America/New_York" });
    expect(inWindow(ny, at("2026-11-23T13:59:59.999Z"))).toBe(false); // 08:59 in New York
    expect(inWindow(ny, at("2026-11-23T14:00:00.000Z"))).toBe(true); // 09:00
    expect(inWindow(ny, at("2026-11-23T21:59:59.999Z"))).toBe(true); // 16:59
    expect(inWindow(ny, at("2026-11-23T22:00:00.000Z"))).toBe(false); // 17:00: the end is exclusive
  });

  it("judges the weekday in the window's time zone, not in UTC", () => {
    // Monday 20:00 UTC is Tuesday 09:00 in Auckland.
    expect(inWindow(window({ days: [2], timezone: "Pacific/Auckland" }), at("2026-11-23T20:00:00.000Z"))).toBe(true);
    expect(inWindow(window({ days: [1], timezone: "Pacific/Auckland" }), at("2026-11-23T20:00:00.000Z"))).toBe(false);
  });

  it("is closed on days the window leaves out, Sunday being 7", () => {
    const sunday = at("2026-11-29T12:00:00.000Z");
    expect(inWindow(window(), sunday)).toBe(false);
    expect(inWindow(window({ days: [7] }), sunday)).toBe(true);
    expect(inWindow(window({ days: [6] }), at("2026-11-28T12:00:00.000Z"))).toBe(true);
  });

  it("follows half-hour offsets", () => {
    const kolkata = window({ timezone: "Asia/Kolkata" });
    expect(inWindow(kolkata, at("2026-11-23T03:29:00.000Z"))).toBe(false); // 08:59 IST
    expect(inWindow(kolkata, at("2026-11-23T03:30:00.000Z"))).toBe(true); // 09:00 IST
  });
});

describe("nextOpening", () => {
  it("returns the start of the next minute when the window is already open", () => {
    expect(nextOpening(window(), at("2026-11-23T10:00:00.000Z"))).toBe(at("2026-11-23T10:00:00.000Z"));
    expect(nextOpening(window(), at("2026-11-23T10:00:30.000Z"))).toBe(at("2026-11-23T10:01:00.000Z"));
  });

  it("finds the same day's opening before the window starts", () => {
    expect(nextOpening(window(), at("2026-11-23T06:17:00.000Z"))).toBe(at("2026-11-23T09:00:00.000Z"));
  });

  it("skips the weekend: Friday after closing opens on Monday morning", () => {
    const ny = window({ timezone: "America/New_York" });
    expect(nextOpening(ny, at("2026-11-27T22:00:00.000Z"))).toBe(at("2026-11-30T14:00:00.000Z"));
  });

  it("lands on the exact opening minute, not on the scan's half-hour stride", () => {
    const odd = window({ start: "09:07", end: "11:43" });
    for (const from of ["2026-11-23T00:00:00.000Z", "2026-11-23T06:13:00.000Z", "2026-11-23T08:59:00.000Z", "2026-11-23T11:43:00.000Z"]) {
      const expected = from < "2026-11-23T09:07" ? "2026-11-23T09:07:00.000Z" : "2026-11-24T09:07:00.000Z";
      expect(new Date(nextOpening(odd, at(from))).toISOString(), from).toBe(expected);
    }
  });

  it("finds a window shorter than the scan's stride, whatever minute the scan starts from", () => {
    const short = window({ start: "09:00", end: "09:10", days: [1, 2, 3, 4, 5, 6, 7] });
    for (let minute = 0; minute < 60; minute += 5) {
      const from = at("2026-11-23T08:00:00.000Z") + minute * 60_000;
      expect(new Date(nextOpening(short, from)).toISOString(), new Date(from).toISOString()).toBe("2026-11-23T09:00:00.000Z");
    }
  });

  it("opens at the window's local time in a half-hour time zone", () => {
    expect(nextOpening(window({ timezone: "Asia/Kolkata" }), at("2026-11-23T00:00:00.000Z"))).toBe(at("2026-11-23T03:30:00.000Z"));
  });

  it("keeps the local opening time across a daylight saving change", () => {
    // Berlin leaves summer time on Sunday 2026-10-25: 09:00 is 07:00Z on Saturday, 08:00Z on Sunday.
    const berlin = window({ days: [6, 7], timezone: "Europe/Berlin" });
    expect(nextOpening(berlin, at("2026-10-24T06:00:00.000Z"))).toBe(at("2026-10-24T07:00:00.000Z"));
    expect(nextOpening(berlin, at("2026-10-24T15:00:00.000Z"))).toBe(at("2026-10-25T08:00:00.000Z"));
  });

  it("always answers a time at which the window is open", () => {
    const windows = [window(), window({ start: "23:30", end: "23:45", days: [3], timezone: "Australia/Adelaide" }), window({ start: "00:00", end: "00:01", days: [7] })];
    for (const w of windows) {
      for (let hour = 0; hour < 7 * 24; hour += 13) {
        const from = at("2026-11-23T00:00:00.000Z") + hour * 3_600_000 + 17_000;
        const opening = nextOpening(w, from);
        expect(inWindow(w, opening), JSON.stringify(w)).toBe(true);
        expect(opening).toBeGreaterThanOrEqual(from);
        // From outside the window, the minute before the answer is still closed: the first opening.
        if (!inWindow(w, from)) expect(inWindow(w, opening - 60_000)).toBe(false);
      }
    }
  });
});
