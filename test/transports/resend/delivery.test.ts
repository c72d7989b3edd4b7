import { env } from "cloudflare:workers";
import { http, HttpResponse } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MAX_ATTEMPTS } from "../../../src/runs/run-engine";
import { api, type Json } from "../../helpers";
import { TWO_STEPS, advance, approve, approveAndDrive, contactOf, deliveryRows, getRun, outbox, pendingEmail } from "../../engine-helpers";

// This project's Worker has EMAIL_TRANSPORT=resend, RESEND_API_KEY=re_test and
// RESEND_BASE_URL=https://resend.test (vitest.config.ts); Resend is this msw server.
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

type Request = { key: string | null; authorization: string | null; body: Json };

/**
 * Resend as it behaves: an Idempotency-Key it has answered gets the same answer again and
 * sends nothing new. `answer(n)` may replace the n-th request's answer (an error, a timeout).
 */
function resend(answer: (n: number) => Response | undefined = () => undefined) {
  const requests: Request[] = [];
  const sent = new Map<string, string>();
  server.use(
    http.post("https://resend.test/emails", async ({ request }) => {
      const body = (await request.json()) as Json;
      const key = request.headers.get("idempotency-key");
      requests.push({ key, authorization: request.headers.get("authorization"), body });
      const override = answer(requests.length);
      if (override) return override;
      if (!sent.has(key!)) sent.set(key!, crypto.randomUUID());
      return HttpResponse.json({ id: sent.get(key!) });
    }),
  );
  return { requests, sent };
}

describe("approved emails through Resend", () => {
  it("leave as one request with the action's key, the sender, the approved text and the unsubscribe headers", async () => {
    const fake = resend();
    const { key, runId, contact, actionKey } = await pendingEmail(TWO_STEPS);
    const after = await approveAndDrive(key, runId, contact.id);
    expect(after.actions[0].status).toBe("completed");

    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request!.key).toBe(actionKey);
    expect(request!.authorization).toBe("Bearer re_test");
    const { body } = request!;
    expect(body.from).toBe("Sam Sender <sam@cairn.example>");
    expect(body.to).toEqual([contact.email]);
    expect(body.subject).toBe("Hello Dana at Globex");
    expect(body.text).toMatch(/^Hi Dana,\n\nA note for Globex\.\n\nSam\n\n--\nTo stop these emails: https:\/\/cairn\.test\/v1\/unsubscribe\/[\w-]+\.[\w-]+$/);
    const [delivery] = await deliveryRows(runId, contact.id, 0);
    expect(body.headers["Message-ID"]).toBe(`<${delivery!.id}@cairn.example>`);
    expect(body.headers["List-Unsubscribe-Post"]).toBe("List-Unsubscribe=One-Click");
    expect(body.headers["List-Unsubscribe"]).toMatch(/^<https:\/\/cairn\.test\/v1\/unsubscribe\/([\w.-]+)>, <mailto:sam@cairn\.example\?subject=unsubscribe%20\1>$/);
    expect(body.tags).toEqual([{ name: "delivery_id", value: delivery!.id }]);

    const listed = (await outbox(key, `?run_id=${runId}`)).deliveries[0];
    expect(listed).toMatchObject({
      id: delivery!.id,
      transport: "resend",
      status: "sent",
      provider_message_id: fake.sent.get(actionKey),
      message_id: `<${delivery!.id}@cairn.example>`,
      error: null,
    });

    // The link in the email works: one click and the follow-up never comes.
    const link = /<https:\/\/cairn\.test(\/v1\/unsubscribe\/[\w.-]+)>/.exec(body.headers["List-Unsubscribe"])![1]!;
    const res = await api(link, { method: "POST", body: "List-Unsubscribe=One-Click", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    expect(res.status).toBe(200);
    await advance(runId);
    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "unsubscribe" });
    expect(fake.requests).toHaveLength(1);
  });

  it("retries a 500 with the same key and sends exactly once", async () => {
    const fake = resend((n) => (n === 1 ? HttpResponse.json({ name: "internal_server_error", message: "Something broke" }, { status: 500 }) : undefined));
    const { key, runId, contact, actionKey } = await pendingEmail();
    const first = await approveAndDrive(key, runId, contact.id);
    expect(first.actions[0]).toMatchObject({ status: "scheduled", attempts: 1, error: "Resend answered 500 internal_server_error: Something broke" });
    expect((await deliveryRows(runId, contact.id, 0))[0]).toMatchObject({ status: "scheduled", error: expect.stringContaining("500") });

    await advance(runId);
    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id).actions[0]).toMatchObject({ status: "completed", attempts: 2, error: null });
    expect(fake.requests.map((r) => r.key)).toEqual([actionKey, actionKey]);
    expect(fake.sent.size).toBe(1);
    expect((await deliveryRows(runId, contact.id, 0))[0]).toMatchObject({ status: "sent", providerMessageId: fake.sent.get(actionKey), error: null });
  });

  it("waits at least as long as a 429's Retry-After", async () => {
    resend(() => HttpResponse.json({ name: "rate_limit_exceeded", message: "Too many requests" }, { status: 429, headers: { "Retry-After": "600" } }));
    const { key, runId, contact } = await pendingEmail();
    const before = Date.now();
    const after = await approveAndDrive(key, runId, contact.id);
    expect(after.actions[0].status).toBe("scheduled");
    expect(Date.parse(after.actions[0].scheduled_for)).toBeGreaterThanOrEqual(before + 600_000);
  });

  it("fails the action with Resend's message when it refuses the address, and stops the contact", async () => {
    const fake = resend(() => HttpResponse.json({ name: "validation_error", message: "Invalid `to` field." }, { status: 422 }));
    const { key, runId, contact } = await pendingEmail(TWO_STEPS);
    // The send is tried as the approval is recorded: the approver learns at once that it did not go.
    const res = await approve(key, runId, contact.id, 0);
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error).toBe("Approved, but the send failed: Resend answered 422 validation_error: Invalid `to` field.");
    expect(res.body.details).toEqual([
      { path: "status", message: "failed" },
      { path: "error", message: "Resend answered 422 validation_error: Invalid `to` field." },
    ]);
    const after = contactOf(await getRun(key, runId), contact.id);
    expect(after.status).toBe("failed");
    expect(after.actions[0]).toMatchObject({ status: "failed", error: "Resend answered 422 validation_error: Invalid `to` field." });
    expect(after.actions).toHaveLength(1);
    expect((await deliveryRows(runId, contact.id, 0))[0]).toMatchObject({ status: "failed", error: expect.stringContaining("Invalid `to` field.") });
    await advance(runId);
    expect(fake.requests).toHaveLength(1);
  });

  it("asks again with the same key after an attempt got no answer, and Resend sends once", async () => {
    const fake = resend((n) => (n === 1 ? HttpResponse.error() : undefined));
    const { key, runId, contact, actionKey } = await pendingEmail();
    const first = await approveAndDrive(key, runId, contact.id);
    expect(first.actions[0]).toMatchObject({ status: "scheduled", error: expect.stringContaining("Resend did not answer") });
    // No answer: it may have left, so the delivery stays `sending`, not released.
    expect((await deliveryRows(runId, contact.id, 0))[0]!.status).toBe("sending");
    await advance(runId);
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("completed");
    expect(fake.requests.map((r) => r.key)).toEqual([actionKey, actionKey]);
  });

  it("sends once when the process dies after Resend accepted and before the send was recorded", async () => {
    const fake = resend();
    const { key, runId, contact, actionKey } = await pendingEmail();
    // The write that records `sent` fails, as if the object died right after Resend answered.
    await env.DB.exec(`CREATE TRIGGER fail_recording_sent BEFORE UPDATE OF status ON deliveries WHEN NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'process died'); END`);
    try {
      const first = await approveAndDrive(key, runId, contact.id);
      expect(first.actions[0]).toMatchObject({ status: "scheduled", error: expect.stringContaining("process died") });
      expect((await deliveryRows(runId, contact.id, 0))[0]!.status).toBe("sending");
    } finally {
      await env.DB.exec(`DROP TRIGGER fail_recording_sent`);
    }
    await advance(runId);
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("completed");
    // Asked twice with one key: Resend answered the first email again and sent nothing new.
    expect(fake.requests.map((r) => r.key)).toEqual([actionKey, actionKey]);
    expect(fake.sent.size).toBe(1);
    expect((await deliveryRows(runId, contact.id, 0))[0]).toMatchObject({ status: "sent", providerMessageId: fake.sent.get(actionKey) });
  });

  it("does not ask again when the contact unsubscribed after an attempt that got no answer", async () => {
    const fake = resend(() => HttpResponse.error());
    const { key, runId, contact } = await pendingEmail();
    await approveAndDrive(key, runId, contact.id);
    expect((await api(`/v1/contacts/${contact.id}`, { method: "PATCH", key, body: { unsubscribed: true } })).status).toBe(200);
    await advance(runId);
    const after = contactOf(await getRun(key, runId), contact.id);
    expect(after.status).toBe("stopped");
    expect(after.actions[0]).toMatchObject({ status: "failed", error: expect.stringContaining("never confirmed") });
    expect(fake.requests).toHaveLength(1);
  });

  it("never calls an email that may have gone 'not sent', nor writes it again, when the contact moved only in D1", async () => {
    const fake = resend(() => HttpResponse.error());
    const { key, runId, contact } = await pendingEmail();
    await approveAndDrive(key, runId, contact.id);
    // The address changes behind the run object's back (its signal lost): the send learns of it.
    await env.DB.prepare(`UPDATE contacts SET email = 'moved@example.com', email_key = 'moved@example.com' WHERE id = ?`).bind(contact.id).run();
    await advance(runId);
    const after = contactOf(await getRun(key, runId), contact.id);
    expect(after.actions).toHaveLength(1);
    expect(after.actions[0]).toMatchObject({ status: "failed", error: expect.stringContaining("not asked again, so it cannot arrive twice") });
    expect((await deliveryRows(runId, contact.id, 0))[0]!.status).toBe("sending");
    expect(fake.requests).toHaveLength(1);
  });

  it("keeps an email that may have gone 'sending' when the next answer is an error, and sends it once", async () => {
    const fake = resend((n) => (n === 1 ? HttpResponse.error() : n === 2 ? HttpResponse.json({ name: "concurrent_idempotent_requests", message: "In progress" }, { status: 409 }) : undefined));
    const { key, runId, contact, actionKey } = await pendingEmail();
    await approveAndDrive(key, runId, contact.id);
    await advance(runId);
    expect(contactOf(await getRun(key, runId), contact.id).actions[0]).toMatchObject({ status: "scheduled", error: expect.stringContaining("409") });
    expect((await deliveryRows(runId, contact.id, 0))[0]!.status).toBe("sending");
    await advance(runId);
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("completed");
    expect(fake.requests.map((r) => r.key)).toEqual([actionKey, actionKey, actionKey]);
    expect(fake.sent.size).toBe(1);
  });

  it("gives up after its attempts with the last error, and frees the slot it held", async () => {
    const fake = resend(() => HttpResponse.json({ name: "internal_server_error", message: "Down" }, { status: 503 }));
    const { key, runId, contact } = await pendingEmail();
    await approveAndDrive(key, runId, contact.id);
    for (let i = 1; i < MAX_ATTEMPTS; i++) await advance(runId);
    const after = contactOf(await getRun(key, runId), contact.id);
    expect(after.actions[0]).toMatchObject({ status: "failed", attempts: MAX_ATTEMPTS, error: "Resend answered 503 internal_server_error: Down" });
    expect(fake.requests).toHaveLength(MAX_ATTEMPTS);
    expect((await deliveryRows(runId, contact.id, 0))[0]!.status).toBe("failed");
  });
});
