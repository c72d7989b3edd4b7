import { describe, expect, it } from "vitest";
import { ProposalError } from "../src/runs/generators/builtin";
import { BUSY_RETRY_MS, postJson, retryAfterMs, RetryableError, withRetries } from "../src/runs/generators/http";
import { ProviderBusy } from "../src/runs/generators/types";
import { sleepRecorder } from "./generator-fixtures";

const headers = (h: Record<string, string>) => new Headers(h);

/** An injected fetch answering each call with the next outcome (the last one repeats); an Error is thrown. */
function fetchOf(...outcomes: (Response | Error)[]) {
  let calls = 0;
  const fetch: typeof globalThis.fetch = async () => {
    const outcome = outcomes[Math.min(++calls, outcomes.length) - 1]!;
    if (outcome instanceof Error) throw outcome;
    return outcome.clone();
  };
  return { fetch, calls: () => calls };
}

describe("retryAfterMs", () => {
  const now = Date.parse("2026-10-20T12:00:00Z");

  it("reads seconds, fractions of seconds and HTTP dates", () => {
    expect(retryAfterMs(headers({ "retry-after": "1" }), now)).toBe(1000);
    expect(retryAfterMs(headers({ "retry-after": "1.5" }), now)).toBe(1500);
    expect(retryAfterMs(headers({ "retry-after": "Tue, 20 Oct 2026 12:02:00 GMT" }), now)).toBe(120_000);
    expect(retryAfterMs(headers({ "retry-after": "Tue, 20 Oct 2026 11:00:00 GMT" }), now)).toBe(0);
  });

  it("prefers retry-after-ms, and ignores what it cannot read", () => {
    expect(retryAfterMs(headers({ "retry-after-ms": "250", "retry-after": "1" }), now)).toBe(250);
    expect(retryAfterMs(headers({ "retry-after": "soon" }), now)).toBeUndefined();
    expect(retryAfterMs(headers({}), now)).toBeUndefined();
  });
});

describe("withRetries", () => {
  it("backs off exponentially with full jitter", async () => {
    const { sleep, waits } = sleepRecorder();
    const error = await withRetries(() => Promise.reject(new RetryableError("busy")), { sleep, random: () => 0.999 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderBusy);
    expect(waits).toStrictEqual([499, 999]);
  });

  it("sleeps a Retry-After of up to 5 s, and hands anything longer to the engine", async () => {
    const short = sleepRecorder();
    let n = 0;
    const result = await withRetries(() => (n++ === 0 ? Promise.reject(new RetryableError("busy", 5000)) : Promise.resolve("ok")), { sleep: short.sleep });
    expect(result).toStrictEqual({ value: "ok", attempts: 2 });
    expect(short.waits).toStrictEqual([5000]);

    const long = sleepRecorder();
    const error = (await withRetries(() => Promise.reject(new RetryableError("busy", 5001)), { sleep: long.sleep }).catch((e: unknown) => e)) as ProviderBusy;
    expect(error.retryAfterMs).toBe(5001);
    expect(long.waits).toStrictEqual([]);
  });

  it("asks the engine to wait at least 30 s once the quick retries are spent", async () => {
    const { sleep } = sleepRecorder();
    const error = (await withRetries(() => Promise.reject(new RetryableError("busy", 2000)), { sleep }).catch((e: unknown) => e)) as ProviderBusy;
    expect(error.retryAfterMs).toBe(BUSY_RETRY_MS);
  });

  it("lets any other error through at once", async () => {
    const { sleep, waits } = sleepRecorder();
    let calls = 0;
    const error = await withRetries(() => (calls++, Promise.reject(new ProposalError("bad request"))), { sleep }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProposalError);
    expect(calls).toBe(1);
    expect(waits).toStrictEqual([]);
  });

  it("uses a real timer when no sleep is given", async () => {
    let n = 0;
    const result = await withRetries(() => (n++ === 0 ? Promise.reject(new RetryableError("busy")) : Promise.resolve("ok")), { random: () => 0 });
    expect(result.attempts).toBe(2);
  });
});

describe("postJson", () => {
  const post = (fetch: typeof globalThis.fetch) => postJson("Provider", "https://model.example/v1", { a: 1 }, { authorization: "Bearer k" }, { fetch, ...sleepRecorder() });

  it("retries a network error", async () => {
    const f = fetchOf(new TypeError("Network connection lost."), Response.json({ ok: true }));
    expect(await post(f.fetch)).toStrictEqual({ value: { ok: true }, attempts: 2 });
  });

  it("retries a 408 and a success whose body is not JSON", async () => {
    const f = fetchOf(new Response("timeout", { status: 408 }), new Response("<html>", { status: 200 }), Response.json({ ok: true }));
    expect(await post(f.fetch)).toStrictEqual({ value: { ok: true }, attempts: 3 });
  });

  it("says what a 4xx without a JSON error body said", async () => {
    const f = fetchOf(new Response("<html>Bad gateway config</html>", { status: 404, statusText: "Not Found" }));
    await expect(post(f.fetch)).rejects.toThrow(new ProposalError("Provider answered 404: <html>Bad gateway config</html>"));
    expect(f.calls()).toBe(1);
  });

  it("reports a network error that never clears as ProviderBusy", async () => {
    const f = fetchOf(new TypeError("Network connection lost."));
    const error = await post(f.fetch).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderBusy);
    expect((error as Error).message).toBe("Provider could not be reached: Network connection lost. (after 3 attempts)");
  });
});
