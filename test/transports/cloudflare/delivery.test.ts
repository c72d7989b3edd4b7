import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Json } from "../../helpers";
import { advance, approve, approveAndDrive, contactOf, deliveryRows, getRun, outbox, pendingEmail } from "../../engine-helpers";

// This project's Worker has EMAIL_TRANSPORT=cloudflare; the send_email binding EMAIL
// (wrangler.toml) is miniflare's local Email Service, spied on here.
afterEach(() => vi.restoreAllMocks());

describe("approved emails through Cloudflare Email Service", () => {
  it("leave through the binding with the sender, the text and the unsubscribe headers, and keep the service's Message-ID", async () => {
    const send = vi.spyOn(env.EMAIL!, "send");
    const { key, runId, contact } = await pendingEmail();
    await approveAndDrive(key, runId, contact.id);

    expect(send).toHaveBeenCalledTimes(1);
    const message = send.mock.calls[0]![0] as Json;
    expect(message).toMatchObject({ from: { email: "sam@cairn.example", name: "Sam Sender" }, to: contact.email, subject: "Hello Dana at Globex" });
    expect(message.text).toContain("To stop these emails: https://cairn.test/v1/unsubscribe/");
    expect(message.headers["List-Unsubscribe-Post"]).toBe("List-Unsubscribe=One-Click");
    expect(message.headers["List-Unsubscribe"]).toMatch(/^<https:\/\/cairn\.test\/v1\/unsubscribe\/[\w.-]+>, <mailto:sam@cairn\.example\?subject=unsubscribe%20[\w.-]+>$/);
    // The service sets its own Message-ID; replies will name that one, so that is what is kept.
    expect(message.headers["Message-ID"]).toBeUndefined();
    const { messageId } = await send.mock.results[0]!.value;
    const [delivery] = await deliveryRows(runId, contact.id, 0);
    expect(delivery).toMatchObject({ transport: "cloudflare", status: "sent", messageId, providerMessageId: messageId });
    expect(messageId).toMatch(/^<.+@cairn\.example>$/);
    expect((await outbox(key, `?run_id=${runId}`)).deliveries[0]).toMatchObject({ transport: "cloudflare", status: "sent", message_id: messageId });
  });

  it("fails the action for good when the service refuses the sender", async () => {
    vi.spyOn(env.EMAIL!, "send").mockRejectedValue(new Error("email from sam@cairn.example not allowed"));
    const { key, runId, contact } = await pendingEmail();
    const res = await approve(key, runId, contact.id, 0);
    expect(res.status).toBe(409);
    const after = contactOf(await getRun(key, runId), contact.id);
    expect(after).toMatchObject({ status: "failed" });
    expect(after.actions[0]).toMatchObject({ status: "failed", attempts: 1, error: "Cloudflare Email Service: email from sam@cairn.example not allowed" });
    expect((await deliveryRows(runId, contact.id, 0))[0]!.status).toBe("failed");
  });

  it("retries when the service says it is over its limit, and sends once", async () => {
    const send = vi.spyOn(env.EMAIL!, "send").mockRejectedValueOnce(new Error("rate limit exceeded, try again later"));
    const { key, runId, contact } = await pendingEmail();
    expect((await approveAndDrive(key, runId, contact.id)).actions[0]).toMatchObject({ status: "scheduled", attempts: 1 });
    await advance(runId);
    expect(contactOf(await getRun(key, runId), contact.id).actions[0]).toMatchObject({ status: "completed", attempts: 2 });
    expect(send).toHaveBeenCalledTimes(2);
    expect((await deliveryRows(runId, contact.id, 0))[0]!.status).toBe("sent");
  });

  it("never repeats a send whose outcome is unknown: the binding takes no idempotency key", async () => {
    const send = vi.spyOn(env.EMAIL!, "send").mockRejectedValueOnce(new Error("Network connection lost."));
    const { key, runId, contact } = await pendingEmail();
    await approveAndDrive(key, runId, contact.id);
    await advance(runId);
    const after = contactOf(await getRun(key, runId), contact.id);
    expect(after.actions[0]).toMatchObject({ status: "failed", error: expect.stringContaining("may have been sent, so it is not sent again") });
    expect(send).toHaveBeenCalledTimes(1);
    expect((await deliveryRows(runId, contact.id, 0))[0]!.status).toBe("sending");
  });
});
