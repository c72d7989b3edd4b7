import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { contacts } from "../db/schema";
import type { Env } from "../env";
import { newId } from "../lib/ids";
import { recordEvents } from "../events/record-events";

/**
 * Opts a contact of the workspace out and stops every sequence it is in, whichever way the
 * recipient asked (the link's POST, the mailto's message). Returns false when there was
 * nothing to do: no such contact, or it had unsubscribed already.
 */
export async function unsubscribeContact(db: Db, env: Env, workspaceId: string, contactId: string, source: string): Promise<boolean> {
  const now = new Date();
  const [changed] = await db
    .update(contacts)
    .set({ unsubscribed: true, updatedAt: now })
    .where(and(eq(contacts.workspaceId, workspaceId), eq(contacts.id, contactId), eq(contacts.unsubscribed, false)))
    .returning({ id: contacts.id });
  if (!changed) return false;
  // Recorded once, as the event the API records, which stops every sequence of the contact.
  await recordEvents(db, env, workspaceId, [{ id: newId("evt"), workspaceId, contactId, type: "contact.unsubscribed", url: null, properties: { source }, occurredAt: now, createdAt: now }]);
  return true;
}
