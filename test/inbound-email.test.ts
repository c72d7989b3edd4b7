import { env } from "cloudflare:workers";
import PostalMime from "postal-mime";
import { describe, expect, it } from "vitest";
import { automaticReason, MAX_RAW_BYTES } from "../src/delivery/inbound-email";
import { unsubscribeToken } from "../src/delivery/unsubscribe";
import { api } from "./helpers";
import { advance, contactOf, deliveryRows, eventsOf, getRun, waitForAction } from "./engine-helpers";
import { emailMessage, mime, receive, sentEmail } from "./inbound-email-helpers";

const SECRET = "test-unsubscribe-secret"; // vitest.config.ts

type Sent = Awaited<ReturnType<typeof sentEmail>>;

/** A reply from the contact to the sender, with these headers. */
const replyFrom = (sent: Sent, headers: Record<string, string> = {}, extra: { messageId?: string; subject?: string; body?: string } = {}) =>
  emailMessage(mime({ from: `Ada <${sent.contact.email}>`, to: sent.sender, headers, ...extra }), { from: sent.contact.email, to: sent.sender });

async function expectStoppedByReply(sent: Sent) {
  const run = await getRun(sent.key, sent.runId);
  expect(contactOf(run, sent.contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply" });
  await advance(sent.runId);
  expect(contactOf(await getRun(sent.key, sent.runId), sent.contact.id).actions).toHaveLength(1);
  expect(await deliveryRows(sent.runId, sent.contact.id, 1)).toHaveLength(0);
}

async function expectSequenceGoesOn(sent: Sent) {
  expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toHaveLength(0);
  await advance(sent.runId);
  await waitForAction(sent.key, sent.runId, sent.contact.id, 1, "pending_approval");
}

describe("email() handler: replies", () => {
  it("records a reply naming the email in In-Reply-To once, and stops the contact's sequence before the follow-up", async () => {
    const sent = await sentEmail();
    const message = replyFrom(sent, { "In-Reply-To": sent.delivery.messageId, References: sent.delivery.messageId }, { messageId: "<reply-1@mail.example>" });
    await receive(message);

    expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toMatchObject([
      {
        type: "email.replied",
        properties: { delivery_id: sent.delivery.id, message_id: "<reply-1@mail.example>", subject: "Re: Hello", source: "email_routing", matched_by: "in_reply_to" },
      },
    ]);
    await expectStoppedByReply(sent);
  });

  it("matches a reply by References alone, newest id first, with or without angle brackets", async () => {
    const sent = await sentEmail();
    const bare = sent.delivery.messageId.slice(1, -1);
    await receive(replyFrom(sent, { References: `<older@elsewhere.example> ${bare}` }));
    expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toMatchObject([{ properties: { delivery_id: sent.delivery.id, matched_by: "references" } }]);
    await expectStoppedByReply(sent);
  });

  it("matches a reply that names no email by its sender and the identity it was sent to, whatever their case", async () => {
    const sent = await sentEmail();
    const message = emailMessage(mime({ from: sent.contact.email.toUpperCase(), to: sent.sender.toUpperCase(), subject: "Quick question" }), {
      from: sent.contact.email.toUpperCase(),
      to: sent.sender.toUpperCase(),
    });
    await receive(message);
    expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toMatchObject([{ properties: { delivery_id: sent.delivery.id, matched_by: "sender", subject: "Quick question" } }]);
    await expectStoppedByReply(sent);
  });

  it("records the same message delivered twice once", async () => {
    const sent = await sentEmail();
    const raw = mime({ from: sent.contact.email, to: sent.sender, headers: { "In-Reply-To": sent.delivery.messageId } });
    await receive(emailMessage(raw, { from: sent.contact.email, to: sent.sender }));
    await receive(emailMessage(raw, { from: sent.contact.email, to: sent.sender }));
    expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toHaveLength(1);
  });

  it("reads the headers of a message larger than the cap and records it", async () => {
    const sent = await sentEmail();
    const body = "x".repeat(76).concat("\r\n").repeat(Math.ceil((MAX_RAW_BYTES * 1.5) / 78));
    await receive(replyFrom(sent, { "In-Reply-To": sent.delivery.messageId }, { body }));
    expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toHaveLength(1);
  });
});

describe("email() handler: mail that is no reply", () => {
  it("ignores an auto-reply that names the email, and the sequence goes on", async () => {
    const sent = await sentEmail();
    await receive(replyFrom(sent, { "In-Reply-To": sent.delivery.messageId, "Auto-Submitted": "auto-replied", Subject: "Out of office" }));
    await expectSequenceGoesOn(sent);
  });

  it("ignores a bounce report (multipart/report from MAILER-DAEMON with a null sender)", async () => {
    const sent = await sentEmail();
    const boundary = "dsn-boundary";
    const dsn = mime({
      from: "Mail Delivery System <MAILER-DAEMON@mx.example>",
      to: sent.sender,
      subject: "Undelivered Mail Returned to Sender",
      headers: { "In-Reply-To": sent.delivery.messageId, "Content-Type": `multipart/report; report-type=delivery-status; boundary="${boundary}"` },
      body: [
        `--${boundary}`,
        "Content-Type: text/plain",
        "",
        "Your message could not be delivered.",
        `--${boundary}`,
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example",
        "",
        `Final-Recipient: rfc822; ${sent.contact.email}`,
        "Action: failed",
        "Status: 5.1.1",
        `--${boundary}`,
        "Content-Type: text/rfc822-headers",
        "",
        `Message-ID: ${sent.delivery.messageId}`,
        `--${boundary}--`,
      ].join("\r\n"),
    });
    await receive(emailMessage(dsn, { from: "", to: sent.sender }));
    await expectSequenceGoesOn(sent);
  });

  it("ignores garbage bytes without throwing", async () => {
    const sent = await sentEmail();
    const noise = crypto.getRandomValues(new Uint8Array(4096));
    await receive(emailMessage(noise, { from: sent.contact.email, to: sent.sender }));
    await receive(emailMessage(new Uint8Array(0), { from: sent.contact.email, to: sent.sender }));
    await expectSequenceGoesOn(sent);
  });

  it("ignores mail from someone who is no contact in a run, mail naming an email we never sent, and the contact writing to another address", async () => {
    const sent = await sentEmail();
    await receive(emailMessage(mime({ from: sent.contact.email, to: "sales@elsewhere.example" }), { from: sent.contact.email, to: "sales@elsewhere.example" }));
    await receive(emailMessage(mime({ from: "stranger@example.org", to: sent.sender }), { from: "stranger@example.org", to: sent.sender }));
    const unknownThread = mime({ from: "stranger@example.org", to: sent.sender, headers: { "In-Reply-To": "<dlv_unknown@cairn.example>" } });
    await receive(emailMessage(unknownThread, { from: "stranger@example.org", to: sent.sender }));
    await expectSequenceGoesOn(sent);
  });

  it.each([
    [{ "Auto-Submitted": "auto-generated" }, "Auto-Submitted: auto-generated"],
    [{ "Auto-Submitted": "Auto-Replied; owner-email=a@b.example" }, "Auto-Submitted: auto-replied"],
    [{ "X-Autoreply": "yes" }, "X-Autoreply"],
    [{ "X-Autorespond": "Out of office" }, "X-Autoreply"],
    [{ Precedence: "bulk" }, "Precedence: bulk"],
    [{ Precedence: "junk" }, "Precedence: junk"],
    [{ Precedence: "list" }, "Precedence: list"],
    [{ Precedence: "auto_reply" }, "Precedence: auto_reply"],
    [{ From: "postmaster@mx.example" }, "sent by a mail system"],
    [{ "Auto-Submitted": "no", Precedence: "first-class" }, null],
  ])("classes a message with %o as %s", async (headers, reason) => {
    const email = await PostalMime.parse(mime({ from: "ada@example.com", to: "sam@cairn.example", headers }));
    expect(automaticReason(email, "ada@example.com")).toBe(reason);
  });
});

describe("email() handler: unsubscribe by mail", () => {
  it("unsubscribes the contact a valid token names and stops its sequences, recording no reply", async () => {
    const sent = await sentEmail();
    const token = await unsubscribeToken(SECRET, sent.workspaceId, sent.contact.id);
    await receive(replyFrom(sent, {}, { subject: `  UNSUBSCRIBE ${token} ` }));
    await receive(replyFrom(sent, {}, { subject: `unsubscribe ${token}` }));

    expect((await api(`/v1/contacts/${sent.contact.id}`, { key: sent.key })).body.contact.unsubscribed).toBe(true);
    expect(await eventsOf(sent.key, sent.contact.id, "contact.unsubscribed")).toMatchObject([{ properties: { source: "unsubscribe_mail" } }]);
    expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toHaveLength(0);
    expect(contactOf(await getRun(sent.key, sent.runId), sent.contact.id)).toMatchObject({ status: "stopped", stop_reason: "unsubscribe" });
  });

  it("unsubscribes nobody for a token the secret did not sign", async () => {
    const sent = await sentEmail();
    const forged = await unsubscribeToken("another secret", sent.workspaceId, sent.contact.id);
    await receive(emailMessage(mime({ from: "stranger@example.org", to: sent.sender, subject: `unsubscribe ${forged}` }), { from: "stranger@example.org", to: sent.sender }));
    expect((await api(`/v1/contacts/${sent.contact.id}`, { key: sent.key })).body.contact.unsubscribed).toBe(false);
  });
});

describe("email() handler: forwarding", () => {
  const forwarding = { ...env, INBOUND_FORWARD_TO: "inbox@team.example" };

  it("forwards every message once it is handled: a recorded reply and an ignored auto-reply alike", async () => {
    const sent = await sentEmail();
    const reply = replyFrom(sent, { "In-Reply-To": sent.delivery.messageId });
    const auto = replyFrom(sent, { "Auto-Submitted": "auto-replied" });
    await receive(reply, forwarding);
    await receive(auto, forwarding);
    expect(reply.forwarded).toStrictEqual(["inbox@team.example"]);
    expect(auto.forwarded).toStrictEqual(["inbox@team.example"]);
    expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toHaveLength(1);
  });

  it("forwards nothing while INBOUND_FORWARD_TO is unset, and a failed forward throws nothing", async () => {
    const sent = await sentEmail();
    const unforwarded = replyFrom(sent, { "Auto-Submitted": "auto-replied" });
    await receive(unforwarded);
    expect(unforwarded.forwarded).toStrictEqual([]);

    const failing = emailMessage(mime({ from: sent.contact.email, to: sent.sender, headers: { "In-Reply-To": sent.delivery.messageId } }), { from: sent.contact.email, to: sent.sender }, true);
    await receive(failing, forwarding);
    expect(await eventsOf(sent.key, sent.contact.id, "email.replied")).toHaveLength(1);
  });
});
