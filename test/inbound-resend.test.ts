import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { signWebhook, verifyWebhook } from "../src/lib/standard-webhooks";
import { api, expectError, type Json } from "./helpers";
import { EMAIL_STEP, approve, contactOf, deliveryRows, eventsOf, getRun, pendingEmail } from "./engine-helpers";
import { trigger } from "./run-helpers";

const SECRET = "whsec_Y2Fpcm4tdGVzdC1yZXNlbmQtd2ViaG9vay1zZWNyZXQ="; // vitest.config.ts
const TWO_STEPS = [EMAIL_STEP, { id: "follow_up", action: "email_message", wait: { days: 2 } }];
const MINUTE = 60_000;

type Signed = { body: string; headers: Record<string, string> };

/** A request as Resend sends it: `svix-*` headers signed by the official library. */
function signed(payload: Json, { at = new Date(), secret = SECRET, prefix = "svix" } = {}): Signed {
  const body = JSON.stringify(payload);
  const id = `msg_${crypto.randomUUID()}`;
  return {
    body,
    headers: {
      "Content-Type": "application/json",
      [`${prefix}-id`]: id,
      [`${prefix}-timestamp`]: String(Math.floor(at.getTime() / 1000)),
      [`${prefix}-signature`]: new Webhook(secret).sign(id, at, body),
    },
  };
}

const post = ({ body, headers }: Signed) => api("/v1/inbound/resend", { method: "POST", headers, body });

const resendEvent = (type: string, emailId: string, data: Json = {}) => ({
  type,
  created_at: new Date().toISOString(),
  data: { email_id: emailId, from: "sam@cairn.example", to: ["reader@example.com"], subject: "Hello", ...data },
});

/**
 * A contact emailed through a real run, whose delivery Resend knows as the returned `emailId`;
 * `sentAt` is the delivery's updatedAt right after the send.
 */
async function emailed(steps: Json[] = [EMAIL_STEP]) {
  const { key, agent, contact, runId } = await pendingEmail(steps, {});
  expect((await approve(key, runId, contact.id, 0)).status).toBe(200);
  const [delivery] = await deliveryRows(runId, contact.id, 0);
  const emailId = crypto.randomUUID();
  // The resend transport stores Resend's id; the outbox one, which these runs use, leaves it null.
  await env.DB.prepare("UPDATE deliveries SET transport = 'resend', provider_message_id = ? WHERE id = ?").bind(emailId, delivery!.id).run();
  return { key, agent, contact, runId, deliveryId: delivery!.id, emailId, sentAt: delivery!.updatedAt! };
}

const deliveryOf = async (runId: string, contactId: string) => (await deliveryRows(runId, contactId, 0))[0]!;

describe("POST /v1/inbound/resend", () => {
  it("records a hard bounce whose status moved but whose events were lost when the first request died", async () => {
    const { key, contact, runId, emailId } = await emailed();
    // The first delivery of this event moved the status, then its process died before the events.
    await env.DB.prepare("UPDATE deliveries SET status = 'bounced' WHERE provider_message_id = ?").bind(emailId).run();
    const request = signed(resendEvent("email.bounced", emailId, { bounce: { type: "Permanent", subType: "General", message: "No such user" } }));
    expect((await post(request)).body).toStrictEqual({ status: "success", recorded: true });
    expect(await eventsOf(key, contact.id, "email.bounced")).toHaveLength(1);
    // Once recorded, a further repeat records nothing more.
    expect((await post(request)).body).toStrictEqual({ status: "success", recorded: false });
    expect(await eventsOf(key, contact.id, "email.bounced")).toHaveLength(1);
    expect((await trigger(key, (await getRun(key, runId)).agent_id, { contact_ids: [contact.id] })).status).toBe(409);
  });

  it("marks the delivery delivered and records email.delivered once, however often Resend sends it", async () => {
    const { key, contact, runId, deliveryId, emailId, sentAt } = await emailed();
    const request = signed(resendEvent("email.delivered", emailId));

    const first = await post(request);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toStrictEqual({ status: "success", recorded: true });
    expect(await post(request)).toMatchObject({ status: 200, body: { status: "success", recorded: false } });

    const delivery = await deliveryOf(runId, contact.id);
    expect(delivery.status).toBe("delivered");
    expect(delivery.updatedAt!.getTime()).toBeGreaterThan(sentAt.getTime());
    const events = await eventsOf(key, contact.id, "email.delivered");
    expect(events).toHaveLength(1);
    expect(events[0]!.properties).toMatchObject({ delivery_id: deliveryId, provider: "resend", webhook_id: request.headers["svix-id"], email_id: emailId });
  });

  it("suppresses a hard bounce: the delivery is bounced, the sequence stops and the contact is refused from then on", async () => {
    const { key, agent, contact, runId, emailId } = await emailed(TWO_STEPS);
    expect(contactOf(await getRun(key, runId), contact.id).status).toBe("waiting");

    const bounce = { type: "Permanent", subType: "General", message: "550 5.1.1 The email account does not exist" };
    const res = await post(signed(resendEvent("email.bounced", emailId, { bounce })));
    expect(res.body).toStrictEqual({ status: "success", recorded: true });

    expect((await deliveryOf(runId, contact.id)).status).toBe("bounced");
    const [event] = await eventsOf(key, contact.id, "email.bounced");
    expect(event!.properties).toMatchObject({ provider: "resend", bounce_type: "Permanent", bounce_subtype: "General", bounce_message: bounce.message });
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "bounce", next_step_at: null });
    const refused = expectError(await trigger(key, agent.id, { contact_ids: [contact.id] }), 409, "no_eligible_contacts");
    expect(refused.details).toEqual([{ path: "contact_ids.0", message: expect.stringMatching(/\(bounced\)$/) }]);
  });

  it("only notes a soft bounce: nothing is suppressed and the sequence goes on", async () => {
    const { key, contact, runId, emailId } = await emailed(TWO_STEPS);
    const bounce = { type: "Transient", subType: "MailboxFull", message: "452 4.2.2 Mailbox full" };
    const res = await post(signed(resendEvent("email.bounced", emailId, { bounce })));
    expect(res.body).toStrictEqual({ status: "success", recorded: false });

    expect((await deliveryOf(runId, contact.id)).status).toBe("sent");
    expect(await eventsOf(key, contact.id, "email.bounced")).toHaveLength(0);
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "waiting", stop_reason: null });
  });

  it("unsubscribes a contact who complained and stops its sequences", async () => {
    const { key, contact, runId, emailId } = await emailed(TWO_STEPS);
    const request = signed(resendEvent("email.complained", emailId));
    expect((await post(request)).body).toStrictEqual({ status: "success", recorded: true });
    expect((await post(request)).body.recorded).toBe(false);

    expect((await deliveryOf(runId, contact.id)).status).toBe("complained");
    expect((await api(`/v1/contacts/${contact.id}`, { key })).body.contact.unsubscribed).toBe(true);
    expect(await eventsOf(key, contact.id, "email.complained")).toHaveLength(1);
    const unsubscribed = await eventsOf(key, contact.id, "contact.unsubscribed");
    expect(unsubscribed).toHaveLength(1);
    expect(unsubscribed[0]!.properties).toMatchObject({ source: "complaint", provider: "resend" });
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "unsubscribe" });
  });

  it("never undoes a later status: a delivery notice after a bounce changes nothing", async () => {
    const { key, contact, runId, emailId } = await emailed();
    await post(signed(resendEvent("email.bounced", emailId, { bounce: { type: "Permanent", subType: "General", message: "gone" } })));
    expect((await post(signed(resendEvent("email.delivered", emailId)))).body.recorded).toBe(false);
    expect((await deliveryOf(runId, contact.id)).status).toBe("bounced");
    expect(await eventsOf(key, contact.id, "email.delivered")).toHaveLength(0);
  });

  it("finds the delivery by its delivery_id tag, as an object or as name/value pairs, and learns Resend's id", async () => {
    for (const tags of [(id: string) => ({ delivery_id: id }), (id: string) => [{ name: "agent", value: "x" }, { name: "delivery_id", value: id }]]) {
      const { contact, runId, deliveryId } = await emailed();
      await env.DB.prepare("UPDATE deliveries SET provider_message_id = NULL WHERE id = ?").bind(deliveryId).run();
      const emailId = `re_${crypto.randomUUID()}`; // Resend's id, which the send never stored
      const res = await post(signed(resendEvent("email.delivered", emailId, { tags: tags(deliveryId) })));
      expect(res.body.recorded).toBe(true);
      expect(await deliveryOf(runId, contact.id)).toMatchObject({ status: "delivered", providerMessageId: emailId });
    }
  });

  it("acknowledges an unknown email, an unhandled type and an unreadable payload without recording anything", async () => {
    const { key, contact, runId, emailId } = await emailed();
    for (const payload of [resendEvent("email.delivered", "re_nobody"), resendEvent("email.opened", emailId), { type: "email.delivered", data: "x" }]) {
      expect(await post(signed(payload))).toMatchObject({ status: 200, body: { status: "success", recorded: false } });
    }
    expect((await deliveryOf(runId, contact.id)).status).toBe("sent");
    expect(await eventsOf(key, contact.id, "email.delivered")).toHaveLength(0);
  });

  it("accepts the webhook-* header names as well as svix-*", async () => {
    const { contact, runId, emailId } = await emailed();
    expect((await post(signed(resendEvent("email.delivered", emailId), { prefix: "webhook" }))).body.recorded).toBe(true);
    expect((await deliveryOf(runId, contact.id)).status).toBe("delivered");
  });

  it("answers 401 invalid_signature to a wrong secret, an altered body, a stale timestamp or no signature, and changes nothing", async () => {
    const { key, contact, runId, emailId } = await emailed();
    const payload = resendEvent("email.complained", emailId);
    const altered = signed(payload);
    altered.body = altered.body.replace("email.complained", "email.delivered");
    const unsigned = signed(payload);
    delete unsigned.headers["svix-signature"];

    for (const request of [
      signed(payload, { secret: "whsec_" + btoa("another secret, same length......") }),
      altered,
      signed(payload, { at: new Date(Date.now() - 6 * MINUTE) }),
      unsigned,
    ]) {
      expectError(await post(request), 401, "invalid_signature");
    }
    expect((await deliveryOf(runId, contact.id)).status).toBe("sent");
    expect((await api(`/v1/contacts/${contact.id}`, { key })).body.contact.unsubscribed).toBe(false);
  });

  it("answers 413 to a body over 256 KiB before reading it", async () => {
    const request = signed({ type: "email.delivered", data: { email_id: "x", padding: "x".repeat(300 * 1024) } });
    expectError(await post(request), 413, "payload_too_large");
  });
});

describe("verifyWebhook", () => {
  const body = '{"type":"email.delivered"}';
  const now = Date.now();
  const headers = (prefix: string, id: string, at: number, signature: string) =>
    new Headers({ [`${prefix}-id`]: id, [`${prefix}-timestamp`]: String(Math.floor(at / 1000)), [`${prefix}-signature`]: signature });

  it("signs exactly as the standardwebhooks library does", async () => {
    const at = new Date(now);
    expect(await signWebhook(SECRET, "msg_1", Math.floor(now / 1000), body)).toBe(new Webhook(SECRET).sign("msg_1", at, body));
  });

  it("accepts svix-* and webhook-* headers", async () => {
    const signature = await signWebhook(SECRET, "msg_1", Math.floor(now / 1000), body);
    expect(await verifyWebhook(SECRET, headers("svix", "msg_1", now, signature), body, now)).toStrictEqual({ ok: true, id: "msg_1" });
    expect(await verifyWebhook(SECRET, headers("webhook", "msg_1", now, signature), body, now)).toStrictEqual({ ok: true, id: "msg_1" });
  });

  it("passes when any one of several signatures matches, as during a key rotation", async () => {
    const seconds = Math.floor(now / 1000);
    const old = await signWebhook("whsec_" + btoa("the previous secret"), "msg_2", seconds, body);
    const current = await signWebhook(SECRET, "msg_2", seconds, body);
    expect((await verifyWebhook(SECRET, headers("svix", "msg_2", now, `v2,abc ${old} ${current}`), body, now)).ok).toBe(true);
    expect(await verifyWebhook(SECRET, headers("svix", "msg_2", now, old), body, now)).toStrictEqual({ ok: false, reason: "no matching signature" });
  });

  it("refuses a timestamp more than 5 minutes in the future or the past, and takes one within", async () => {
    for (const [offset, ok] of [[6 * MINUTE, false], [-6 * MINUTE, false], [4 * MINUTE, true], [-4 * MINUTE, true]] as const) {
      const at = now + offset;
      const signature = await signWebhook(SECRET, "msg_3", Math.floor(at / 1000), body);
      expect((await verifyWebhook(SECRET, headers("webhook", "msg_3", at, signature), body, now)).ok, `offset ${offset}`).toBe(ok);
    }
  });

  it("takes a raw base64 secret without the whsec_ prefix", async () => {
    const raw = SECRET.slice("whsec_".length);
    const signature = new Webhook(SECRET).sign("msg_4", new Date(now), body);
    expect(await verifyWebhook(raw, headers("svix", "msg_4", now, signature), body, now)).toStrictEqual({ ok: true, id: "msg_4" });
    expect(await signWebhook(raw, "msg_4", Math.floor(now / 1000), body)).toBe(signature);
  });

  it("refuses missing headers and a malformed timestamp", async () => {
    const signature = await signWebhook(SECRET, "msg_5", Math.floor(now / 1000), body);
    expect((await verifyWebhook(SECRET, new Headers({ "svix-id": "msg_5", "svix-signature": signature }), body, now)).ok).toBe(false);
    const malformed = new Headers({ "svix-id": "msg_5", "svix-timestamp": "soon", "svix-signature": signature });
    expect(await verifyWebhook(SECRET, malformed, body, now)).toStrictEqual({ ok: false, reason: "malformed timestamp" });
  });
});
