import { delay, HttpResponse } from "msw";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { MAX_ATTEMPTS, retryDelayMs, RETRY_SCHEDULE_S } from "../src/webhooks/deliver";
import { DISABLE_AFTER_MS } from "../src/webhooks/endpoint-health";
import { api, makeWorkspace, type Json } from "./helpers";
import { consume, heldInEachTest, makeEndpoint, receiver, receiverServer, row, testEvent } from "./webhook-helpers";

const server = receiverServer();
const held = heldInEachTest();

async function setup(endpoint: Json = {}) {
  const { key, workspaceId } = await makeWorkspace();
  const made = await makeEndpoint(key, endpoint);
  return { key, workspaceId, endpoint: made };
}

const deliveryRow = (endpointId: string, eventId: string) => row("SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND event_id = ?", endpointId, eventId);
const deliveryOf = async (key: string, endpointId: string, eventId: string) =>
  ((await api(`/v1/webhook-endpoints/${endpointId}/deliveries`, { key })).body.deliveries as Json[]).find((d) => d.id === eventId)!;
/** Time passes until the delivery's next attempt is due. */
const dueNow = (endpointId: string, eventId: string) =>
  row("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE endpoint_id = ? AND event_id = ? RETURNING 1", Date.now(), endpointId, eventId);

describe("a receiver answering 200", () => {
  it("gets the event once, signed per Standard Webhooks, and the attempt is recorded", async () => {
    const { key, workspaceId, endpoint } = await setup();
    const got = receiver(server, 200);
    const { message } = await testEvent(key, endpoint.id, held, "action.proposed");

    const result = await consume([message]);
    expect(result.explicitAcks).toStrictEqual(["w0"]);
    expect(result.retryMessages).toStrictEqual([]);
    expect(got).toHaveLength(1);

    // The official library verifies what was sent, with the secret shown at creation.
    const payload = new Webhook(endpoint.secret).verify(got[0]!.body, got[0]!.headers) as Json;
    expect(payload).toMatchObject({ id: message.event_id, type: "action.proposed", workspace_id: workspaceId, data: { run_id: expect.stringMatching(/^run_/) } });
    expect(got[0]!.headers["webhook-id"]).toBe(message.event_id);
    expect(got[0]!.headers["content-type"]).toBe("application/json");
    expect(() => new Webhook(`whsec_${btoa("a different secret, 32 bytes long")}`).verify(got[0]!.body, got[0]!.headers)).toThrow();

    const delivery = await deliveryOf(key, endpoint.id, message.event_id);
    expect(delivery).toMatchObject({ status: "succeeded", attempt_count: 1, next_attempt_at: null, last_error: null });
    expect(delivery.attempts).toStrictEqual([
      { number: 1, attempted_at: expect.any(String), duration_ms: expect.any(Number), status_code: 200, response_excerpt: "answer 200", error: null },
    ]);
  });

  it("is not sent twice when the message comes again, in the same batch or later", async () => {
    const { key, endpoint } = await setup();
    const got = receiver(server, 200);
    const { message } = await testEvent(key, endpoint.id, held);

    const first = await consume([message, message]);
    expect(first.explicitAcks.sort()).toStrictEqual(["w0", "w1"]);
    const again = await consume([message]);
    expect(again.explicitAcks).toStrictEqual(["w0"]);
    expect(got).toHaveLength(1);
  });
});

describe("a receiver answering 500, then 200", () => {
  it("is retried on the schedule with jitter, and the second attempt delivers", async () => {
    const { key, endpoint } = await setup();
    const got = receiver(server, 500, 200);
    const { message } = await testEvent(key, endpoint.id, held);

    const failed = await consume([message]);
    expect(failed.explicitAcks).toStrictEqual([]);
    expect(failed.retryMessages).toHaveLength(1);
    // 5 s within ±10 %: 4.5-5.5 s, rounded up to whole seconds.
    expect(failed.retryMessages[0]!.delaySeconds).toBeGreaterThanOrEqual(5);
    expect(failed.retryMessages[0]!.delaySeconds).toBeLessThanOrEqual(6);
    const pending = await deliveryOf(key, endpoint.id, message.event_id);
    expect(pending).toMatchObject({ status: "pending", attempt_count: 1, last_error: "The endpoint answered 500" });
    expect(pending.attempts[0]).toMatchObject({ number: 1, status_code: 500, response_excerpt: "answer 500" });

    // Early: the message waits for its time without an attempt.
    const early = await consume([message]);
    expect(early.retryMessages[0]!.delaySeconds).toBeGreaterThanOrEqual(1);
    expect(got).toHaveLength(1);

    await dueNow(endpoint.id, message.event_id);
    const delivered = await consume([message]);
    expect(delivered.explicitAcks).toStrictEqual(["w0"]);
    expect(got).toHaveLength(2);
    // Each attempt is signed afresh, over the same body.
    expect(got[1]!.body).toBe(got[0]!.body);
    const done = await deliveryOf(key, endpoint.id, message.event_id);
    expect(done).toMatchObject({ status: "succeeded", attempt_count: 2 });
    expect(done.attempts.map((a: Json) => a.status_code)).toStrictEqual([500, 200]);
  });

  it("waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h between attempts, each within ±10 %", () => {
    expect(RETRY_SCHEDULE_S).toStrictEqual([5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]);
    RETRY_SCHEDULE_S.forEach((seconds, i) => {
      expect(retryDelayMs(i + 1, 0)).toBe(seconds * 900);
      expect(retryDelayMs(i + 1, 1)).toBe(seconds * 1100);
    });
  });

  it("takes more than one queue hop for a wait over the queue's 12-hour limit", async () => {
    const { key, endpoint } = await setup();
    receiver(server, 500);
    const { message } = await testEvent(key, endpoint.id, held);
    await row("UPDATE webhook_deliveries SET attempts = 6 WHERE event_id = ?", message.event_id);
    const result = await consume([message]);
    // The seventh failure waits 14 h ± 10 %: the queue holds it for 12 h, then the early check for the rest.
    expect(result.retryMessages[0]!.delaySeconds).toBe(43_200);
    const delivery = await deliveryRow(endpoint.id, message.event_id);
    expect(delivery!.next_attempt_at - Date.now()).toBeGreaterThan(12 * 3600_000);
  });

  it(`fails for good after ${MAX_ATTEMPTS} attempts`, async () => {
    const { key, endpoint } = await setup();
    receiver(server, 503);
    const { message } = await testEvent(key, endpoint.id, held);
    await row("UPDATE webhook_deliveries SET attempts = ? WHERE event_id = ?", MAX_ATTEMPTS - 1, message.event_id);
    const result = await consume([message]);
    expect(result.explicitAcks).toStrictEqual(["w0"]);
    expect(await deliveryOf(key, endpoint.id, message.event_id)).toMatchObject({ status: "failed", attempt_count: MAX_ATTEMPTS, last_error: "The endpoint answered 503" });
  });
});

describe("a receiver answering 410", () => {
  it("ends the delivery and disables the endpoint, which says why; later deliveries are not sent", async () => {
    const { key, endpoint } = await setup();
    const got = receiver(server, 410);
    const first = await testEvent(key, endpoint.id, held);
    expect((await consume([first.message])).explicitAcks).toStrictEqual(["w0"]);
    expect(await deliveryOf(key, endpoint.id, first.message.event_id)).toMatchObject({ status: "failed", attempt_count: 1 });

    const shown = (await api(`/v1/webhook-endpoints/${endpoint.id}`, { key })).body.webhook_endpoint;
    expect(shown).toMatchObject({ enabled: false, disabled_reason: expect.stringContaining("410 Gone") });
    // A test event for a disabled endpoint is refused; an event already queued for it is not sent.
    expect((await api(`/v1/webhook-endpoints/${endpoint.id}/test`, { method: "POST", key, body: {} })).status).toBe(409);
    await row("UPDATE webhook_deliveries SET status = 'pending', attempts = 0 WHERE event_id = ?", first.message.event_id);
    await consume([first.message]);
    expect(got).toHaveLength(1);
    expect((await deliveryOf(key, endpoint.id, first.message.event_id)).last_error).toMatch(/^Not sent: the endpoint is disabled/);
  });
});

describe("a receiver that never answers", () => {
  it("times out, and the attempt says so", async () => {
    const { key, endpoint } = await setup();
    receiver(server, async () => {
      await delay("infinite");
      return HttpResponse.text("never");
    });
    const { message } = await testEvent(key, endpoint.id, held);
    // The 10 s timeout, shortened for the test: the consumer takes it as a parameter.
    const result = await consume([message], { timeoutMs: 50 });
    expect(result.retryMessages).toHaveLength(1);
    const delivery = await deliveryOf(key, endpoint.id, message.event_id);
    expect(delivery.attempts[0]).toMatchObject({ status_code: null, error: "No answer within 0.05 s" });
  });
});

describe("an endpoint failing for five days", () => {
  it("is disabled at the first failure after five days of them, and a success before that clears the streak", async () => {
    const { key, endpoint } = await setup();
    receiver(server, 500, 200, 500);
    const a = await testEvent(key, endpoint.id, held);
    await consume([a.message]);
    const failing = (await row("SELECT failing_since FROM webhook_endpoints WHERE id = ?", endpoint.id))!.failing_since as number;
    expect(failing).toBeGreaterThan(0);

    // A success ends the streak.
    const b = await testEvent(key, endpoint.id, held);
    await consume([b.message]);
    expect((await row("SELECT failing_since FROM webhook_endpoints WHERE id = ?", endpoint.id))!.failing_since).toBeNull();

    // Failing since five days and a minute ago: the next failure disables it.
    const since = Date.now() - DISABLE_AFTER_MS - 60_000;
    await row("UPDATE webhook_endpoints SET failing_since = ? WHERE id = ?", since, endpoint.id);
    // Saying "enabled" to an endpoint that still is does not restart its streak.
    expect((await api(`/v1/webhook-endpoints/${endpoint.id}`, { method: "PATCH", key, body: { enabled: true } })).body.webhook_endpoint.failing_since).toBe(new Date(since).toISOString());
    const c = await testEvent(key, endpoint.id, held);
    await consume([c.message]);
    const shown = (await api(`/v1/webhook-endpoints/${endpoint.id}`, { key })).body.webhook_endpoint;
    expect(shown).toMatchObject({ enabled: false, disabled_reason: expect.stringMatching(/^Every delivery failed for 5 days, since /) });

    // Enabled again, it starts afresh.
    const enabled = await api(`/v1/webhook-endpoints/${endpoint.id}`, { method: "PATCH", key, body: { enabled: true } });
    expect(enabled.body.webhook_endpoint).toMatchObject({ enabled: true, disabled_reason: null, failing_since: null });
  });
});

describe("redelivery", () => {
  it("makes one more attempt of a finished delivery, without a retry schedule", async () => {
    const { key, endpoint } = await setup();
    const got = receiver(server, 200, 500);
    const { message } = await testEvent(key, endpoint.id, held);
    await consume([message]);

    const again = await api(`/v1/webhook-endpoints/${endpoint.id}/deliveries/${message.event_id}/redeliver`, { method: "POST", key });
    expect(again.status).toBe(202);
    expect(again.body.delivery).toMatchObject({ status: "pending" });
    expect(held.messages.filter((m) => m.event_id === message.event_id)).toHaveLength(2);
    const result = await consume([message]);
    expect(result.explicitAcks).toStrictEqual(["w0"]);
    expect(got).toHaveLength(2);
    expect(await deliveryOf(key, endpoint.id, message.event_id)).toMatchObject({ status: "failed", attempt_count: 2, last_error: "The endpoint answered 500" });
  });
});

describe("secret rotation", () => {
  it("signs with both secrets for 24 hours, then with the new one only", async () => {
    const { key, endpoint } = await setup();
    const got = receiver(server, 200);
    const rotated = (await api(`/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, { method: "POST", key })).body.webhook_endpoint;
    expect(rotated.secret).not.toBe(endpoint.secret);

    const during = await testEvent(key, endpoint.id, held);
    await consume([during.message]);
    expect(got[0]!.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    // Receivers on either secret accept it.
    expect(new Webhook(endpoint.secret).verify(got[0]!.body, got[0]!.headers)).toMatchObject({ id: during.message.event_id });
    expect(new Webhook(rotated.secret).verify(got[0]!.body, got[0]!.headers)).toMatchObject({ id: during.message.event_id });

    // A day later the old secret no longer signs.
    await row("UPDATE webhook_endpoints SET previous_secret_expires_at = ? WHERE id = ?", Date.now() - 1, endpoint.id);
    const after = await testEvent(key, endpoint.id, held);
    await consume([after.message]);
    expect(got[1]!.headers["webhook-signature"]!.split(" ")).toHaveLength(1);
    expect(new Webhook(rotated.secret).verify(got[1]!.body, got[1]!.headers)).toMatchObject({ id: after.message.event_id });
    expect(() => new Webhook(endpoint.secret).verify(got[1]!.body, got[1]!.headers)).toThrow();
  });
});

describe("the dead-letter queue", () => {
  it("marks a delivery whose messages failed every retry as failed, and leaves one still held alone", async () => {
    const { key, endpoint } = await setup();
    const a = await testEvent(key, endpoint.id, held);
    const b = await testEvent(key, endpoint.id, held);
    await row("UPDATE webhook_deliveries SET lease_until = ? WHERE event_id = ?", Date.now() + 60_000, b.message.event_id);
    const result = await consume([a.message, b.message], { queue: "cairn-webhooks-dlq" });
    expect(result.ackAll).toBe(true);
    expect(await deliveryOf(key, endpoint.id, a.message.event_id)).toMatchObject({ status: "failed", last_error: expect.stringContaining("failed every retry") });
    expect((await deliveryOf(key, endpoint.id, b.message.event_id)).status).toBe("pending");
  });
});

describe("at delivery time", () => {
  it("checks the URL again: one that became private is not called, and the attempt says why", async () => {
    const { key, endpoint } = await setup();
    const got = receiver(server, 200);
    const { message } = await testEvent(key, endpoint.id, held);
    await row("UPDATE webhook_endpoints SET url = 'https://10.0.0.7/hook' WHERE id = ?", endpoint.id);
    await consume([message]);
    expect(got).toHaveLength(0);
    const delivery = await deliveryOf(key, endpoint.id, message.event_id);
    expect(delivery.attempts[0]).toMatchObject({ status_code: null, error: expect.stringMatching(/^Not sent: Webhook URLs may not point at private/) });
  });
});
