import PostalMime, { type Email } from "postal-mime";
import { unsubscribeContact } from "../contacts/unsubscribe-contact";
import { createDb, type Db } from "../db/client";
import type { Env } from "../env";
import type { EventRow } from "../events/event-record";
import { recordEvents } from "../events/record-events";
import { newId } from "../lib/ids";
import { alreadyRecorded, matchBySender, matchByThread, messageIds, type ReplyMatch } from "./reply-match";
import { readUnsubscribeToken } from "./unsubscribe";

/** Bytes of a message read: its headers and subject are all that is used, and they come first. */
export const MAX_RAW_BYTES = 1024 * 1024;

const MAX_SUBJECT = 200;

/**
 * Cloudflare Email Routing's `email()` handler (CONTRACT.md section 11): a reply to one of
 * our emails is recorded as `email.replied`, which stops every sequence of its contact; a
 * message to the unsubscribe mailto unsubscribes. Anything else is logged and ignored, and
 * nothing is thrown, since a throw has Email Routing refuse the message. Every message is
 * then forwarded to INBOUND_FORWARD_TO when set, so a human still reads the replies.
 */
export async function receiveEmail(message: ForwardableEmailMessage, env: Env): Promise<void> {
  const outcome = await handle(message, env).catch((error: unknown) => ({ level: "error", reason: `failed: ${String(error)}` }));
  (outcome.level === "error" ? console.error : console.log)(JSON.stringify({ message: "inbound email", to: message.to, ...outcome }));
  if (!env.INBOUND_FORWARD_TO) return;
  try {
    await message.forward(env.INBOUND_FORWARD_TO);
  } catch (error) {
    console.error(JSON.stringify({ level: "error", message: "inbound email not forwarded", to: message.to, error: String(error) }));
  }
}

type Outcome = { level: string; reason: string; message_id?: string | null; recorded?: number };

async function handle(message: ForwardableEmailMessage, env: Env): Promise<Outcome> {
  const raw = await readCapped(message.raw, MAX_RAW_BYTES);
  let email: Email;
  try {
    email = await PostalMime.parse(raw);
  } catch (error) {
    return ignored(`unreadable MIME: ${String(error)}`);
  }
  // RFC 5322 requires a From: without one, the bytes are no email, whoever the envelope names.
  if (!email.from) return ignored("no From header: not an email");
  const messageId = email.messageId?.trim() || null;
  const db = createDb(env.DB);

  // Before the automatic-mail filter: a client may mark the mailto message it sends for the
  // person as auto-generated, and only our own email carries a token the secret accepts.
  const token = /^unsubscribe\s+(\S+)$/i.exec((email.subject ?? "").trim())?.[1];
  const named = token && env.UNSUBSCRIBE_SECRET ? await readUnsubscribeToken(env.UNSUBSCRIBE_SECRET, token) : null;
  if (named) {
    const changed = await unsubscribeContact(db, env, named.workspaceId, named.contactId, "unsubscribe_mail");
    return { level: "info", reason: changed ? "unsubscribed" : "unsubscribe: already unsubscribed or no such contact", message_id: messageId };
  }

  const automatic = automaticReason(email, message.from);
  if (automatic) return ignored(automatic, messageId);

  const matches = await findReplier(db, message, email);
  if (matches.length === 0) return ignored("no delivery or contact in a run matches", messageId);
  const recorded = await record(db, env, matches, messageId, (email.subject ?? "").slice(0, MAX_SUBJECT));
  return { level: "info", reason: recorded > 0 ? "reply recorded" : "reply recorded before", message_id: messageId, recorded };
}

const ignored = (reason: string, messageId: string | null = null): Outcome => ({ level: "info", reason: `ignored: ${reason}`, message_id: messageId });

/** The start of the stream, up to `cap` bytes; the rest is left unread. */
async function readCapped(stream: ReadableStream<Uint8Array>, cap: number): Promise<Uint8Array> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < cap) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value.subarray(0, cap - size));
      size += parts.at(-1)!.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

const header = (email: Email, name: string) => email.headers.find((h) => h.key === name)?.value.trim().toLowerCase();

/** Why the message is no person's reply (RFC 3834 and the conventions older responders use), or null. */
export function automaticReason(email: Email, envelopeFrom: string): string | null {
  const autoSubmitted = header(email, "auto-submitted")?.split(";")[0]?.trim();
  if (autoSubmitted && autoSubmitted !== "no") return `Auto-Submitted: ${autoSubmitted}`;
  if (header(email, "x-autoreply") !== undefined || header(email, "x-autorespond") !== undefined) return "X-Autoreply";
  const precedence = header(email, "precedence");
  if (precedence && ["bulk", "junk", "list", "auto_reply"].includes(precedence)) return `Precedence: ${precedence}`;
  const type = header(email, "content-type") ?? "";
  if (type.startsWith("multipart/report") || type.startsWith("message/delivery-status")) return "delivery status report";
  // A null reverse-path (`<>`) is how bounces and other notifications are sent (RFC 5321).
  const senders = [envelopeFrom.replace(/^<|>$/g, ""), ...fromAddresses(email)];
  if (!senders[0]) return "null envelope sender";
  if (senders.some((s) => /^(mailer-daemon|postmaster)@/i.test(s))) return "sent by a mail system";
  return null;
}

const fromAddresses = (email: Email) => (email.from?.address ? [email.from.address] : []);

/** The contact(s) the message is a reply from: by the thread it names, else by who sent it to which identity. */
async function findReplier(db: Db, message: ForwardableEmailMessage, email: Email): Promise<ReplyMatch[]> {
  const byThread = await matchByThread(db, messageIds(email.inReplyTo), messageIds(email.references));
  if (byThread) return [byThread];
  // Forwarders rewrite the envelope sender (SRS), so the From header's address counts too.
  const senders = [...new Set([message.from, ...fromAddresses(email)].map((s) => s.trim().toLowerCase()).filter(Boolean))];
  return matchBySender(db, message.to.trim().toLowerCase(), senders);
}

/** Records one `email.replied` per contact, skipping contacts this message was recorded for already; how many were recorded. */
async function record(db: Db, env: Env, matches: ReplyMatch[], messageId: string | null, subject: string): Promise<number> {
  const now = new Date();
  const fresh: ReplyMatch[] = [];
  for (const match of matches) {
    if (!messageId || !(await alreadyRecorded(db, match.contactId, "email.replied", "message_id", messageId))) fresh.push(match);
  }
  for (const [workspaceId, group] of Map.groupBy(fresh, (m) => m.workspaceId)) {
    const rows: EventRow[] = group.map((m) => ({
      id: newId("evt"),
      workspaceId,
      contactId: m.contactId,
      type: "email.replied",
      url: null,
      properties: { delivery_id: m.deliveryId, message_id: messageId, subject, source: "email_routing", matched_by: m.matchedBy },
      occurredAt: now,
      createdAt: now,
    }));
    await recordEvents(db, env, workspaceId, rows);
  }
  return fresh.length;
}
