import type { RecentEvent } from "./generators/types";

/** How many of a contact's events a model is shown, newest first. */
export const RECENT_EVENTS = 20;

type ContextRow = { id: string; properties: string; events: string };

/**
 * What a model is told of each contact besides the run's copy of its fields: its free
 * `properties` and its last 20 events. One D1 statement for a whole alarm pass.
 */
export async function loadContexts(db: D1Database, contactIds: string[]): Promise<Map<string, { properties: Record<string, unknown>; events: RecentEvent[] }>> {
  const { results } = await db
    .prepare(
      `SELECT c.id, c.properties,
         (SELECT json_group_array(json_object('type', e.type, 'url', e.url, 'properties', json(e.properties), 'occurred_at', e.occurred_at))
            FROM (SELECT * FROM events e WHERE e.contact_id = c.id ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?2) AS e) AS events
       FROM contacts c WHERE c.id IN (SELECT value FROM json_each(?1))`,
    )
    .bind(JSON.stringify(contactIds), RECENT_EVENTS)
    .all<ContextRow>();
  return new Map(
    results.map((row) => {
      const events = (JSON.parse(row.events) as (Omit<RecentEvent, "occurred_at"> & { occurred_at: number })[]).map((e) => ({ ...e, occurred_at: new Date(e.occurred_at).toISOString() }));
      return [row.id, { properties: JSON.parse(row.properties) as Record<string, unknown>, events }];
    }),
  );
}
