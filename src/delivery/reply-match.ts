import { and, desc, eq, exists, inArray, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { contacts, deliveries, events, identities, runContacts, runs } from "../db/schema";
import { ACTIVE_RUN_STATUSES } from "../runs/machine";

export type ReplyMatch = {
  workspaceId: string;
  contactId: string;
  deliveryId: string | null;
  matchedBy: "in_reply_to" | "references" | "sender";
};

/** Ids a thread names, at most this many: a long References chain is old history, and D1 binds 100 values. */
const MAX_THREAD_IDS = 20;

/** The ids of an In-Reply-To or References header, in order, bracketed or bare (some clients drop the brackets). */
export const messageIds = (value: string | undefined): string[] => value?.match(/<[^<>\s]+>|[^<>\s,]+/g) ?? [];

const bare = (id: string) => id.replace(/^<|>$/g, "");

/**
 * The delivery a reply answers, by the Message-IDs it names: In-Reply-To first, then
 * References from the newest (its last id) back. Each id is tried with and without angle
 * brackets, since clients differ in how they copy it.
 */
export async function matchByThread(db: Db, inReplyTo: string[], references: string[]): Promise<ReplyMatch | null> {
  const ranked = [
    ...inReplyTo.map((id) => ({ id: bare(id), matchedBy: "in_reply_to" as const })),
    ...references.toReversed().map((id) => ({ id: bare(id), matchedBy: "references" as const })),
  ].slice(0, MAX_THREAD_IDS);
  if (ranked.length === 0) return null;
  const forms = [...new Set(ranked.flatMap(({ id }) => [id, `<${id}>`]))];
  const found = await db
    .select({ deliveryId: deliveries.id, workspaceId: deliveries.workspaceId, contactId: deliveries.contactId, messageId: deliveries.messageId })
    .from(deliveries)
    // A contact deleted since the send has nobody left to record a reply for.
    .innerJoin(contacts, and(eq(contacts.id, deliveries.contactId), eq(contacts.workspaceId, deliveries.workspaceId)))
    .where(and(inArray(deliveries.messageId, forms), eq(deliveries.channel, "email")));
  for (const { id, matchedBy } of ranked) {
    const hit = found.find((row) => bare(row.messageId ?? "") === id);
    if (hit) return { workspaceId: hit.workspaceId, contactId: hit.contactId, deliveryId: hit.deliveryId, matchedBy };
  }
  return null;
}

/**
 * Who replied, by address: contacts with one of `senders` as their email, in a workspace
 * that has an identity at `recipient`, and in a run still under way (a stranger writing to
 * the identity, or an old contact out of any sequence, is no reply to anything we sent).
 * Each comes with the last email sent to it from that address, if any.
 */
export async function matchBySender(db: Db, recipient: string, senders: string[]): Promise<ReplyMatch[]> {
  if (!recipient || senders.length === 0) return [];
  const atRecipient = and(eq(identities.workspaceId, contacts.workspaceId), sql`lower(${identities.emailAddress}) = ${recipient}`);
  const inActiveRun = db
    .select({ one: sql`1` })
    .from(runContacts)
    .innerJoin(runs, eq(runs.id, runContacts.runId))
    .where(and(eq(runContacts.contactId, contacts.id), inArray(runs.status, ACTIVE_RUN_STATUSES)));
  const lastEmail = db
    .select({ id: deliveries.id })
    .from(deliveries)
    .innerJoin(identities, eq(identities.id, deliveries.identityId))
    .where(and(eq(deliveries.contactId, contacts.id), eq(deliveries.channel, "email"), atRecipient))
    .orderBy(desc(deliveries.createdAt))
    .limit(1);
  const rows = await db
    .select({ workspaceId: contacts.workspaceId, contactId: contacts.id, deliveryId: sql<string | null>`(${lastEmail})` })
    .from(contacts)
    .where(and(inArray(contacts.emailKey, senders), exists(db.select({ one: sql`1` }).from(identities).where(atRecipient)), exists(inActiveRun)));
  return rows.map((row) => ({ ...row, matchedBy: "sender" as const }));
}

/**
 * Whether the contact has an event of `type` whose `property` is `value` already: how a report
 * that arrives twice (the same reply, the same provider event) is recorded once.
 */
export async function alreadyRecorded(db: Db, contactId: string, type: string, property: "message_id" | "delivery_id", value: string): Promise<boolean> {
  const [row] = await db
    .select({ id: events.id })
    .from(events)
    .where(and(eq(events.contactId, contactId), eq(events.type, type), sql`json_extract(${events.properties}, ${`$.${property}`}) = ${value}`))
    .limit(1);
  return row !== undefined;
}
