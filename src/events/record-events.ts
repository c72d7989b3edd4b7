import { and, eq, inArray } from "drizzle-orm";
import type { Db } from "../db/client";
import { contacts, events as eventsTable } from "../db/schema";
import type { Env } from "../env";
import { chunk, rowsPerStatement } from "../lib/d1";
import { signalStops } from "../runs/stop-signals";
import type { EventRow } from "./event-record";
import { matchRequest, sendMatch } from "./event-runs";

const EVENT_COLUMNS = 8;

/**
 * Stores events of contacts of one workspace, whoever reports them (the API, a reply, a
 * provider's delivery event): `contact.unsubscribed` opts the contact out in the same batch,
 * and stop events (reply, unsubscribe, bounce) stop every sequence of their contacts. When an
 * enabled agent of the workspace runs on one of the events' types, the same batch writes a
 * match request and its queue message matches the contacts off the request path.
 */
export async function recordEvents(db: Db, env: Env, workspaceId: string, rows: EventRow[]): Promise<void> {
  if (rows.length === 0) return;
  const unsubscribed = [...new Set(rows.filter((r) => r.type === "contact.unsubscribed").map((r) => r.contactId))];
  const now = rows[0]!.createdAt;
  const writes = [
    ...chunk(rows, rowsPerStatement(EVENT_COLUMNS)).map((part) => db.insert(eventsTable).values(part)),
    ...chunk(unsubscribed, 90).map((part) =>
      db
        .update(contacts)
        .set({ unsubscribed: true, updatedAt: now })
        .where(and(eq(contacts.workspaceId, workspaceId), inArray(contacts.id, part))),
    ),
  ];
  const [[requested]] = await db.batch([matchRequest(db, workspaceId, rows), ...writes]);
  if (requested) await sendMatch(env, requested.id);
  await signalStops(db, env, workspaceId, rows.map((r) => ({ contactId: r.contactId, type: r.type })));
}
