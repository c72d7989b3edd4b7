import type { events } from "../db/schema";
import { iso } from "../lib/time";

export type EventRow = typeof events.$inferSelect;

export const toEventJson = (row: EventRow) => ({
  id: row.id,
  contact_id: row.contactId,
  type: row.type,
  url: row.url,
  properties: row.properties,
  occurred_at: iso(row.occurredAt)!,
  created_at: iso(row.createdAt)!,
});
