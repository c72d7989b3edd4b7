import { and, asc, eq, lt, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/client";
import { approvals } from "../db/schema";
import { freeSlots } from "../delivery/estimate";
import { dailyCap, localDay, sendDays, slotsTakenSince } from "../delivery/send-days";
import { prepare, rowsOf } from "../lib/d1";
import { iso } from "../lib/time";
import type { SendWindow } from "../runs/send-window";
import type { InboxQuery } from "../schemas/approvals";

/** The inbox's conditions: the workspace's pending actions, narrowed by the query. */
export function inboxWhere(workspaceId: string, query: InboxQuery): SQL {
  const where: SQL[] = [eq(approvals.workspaceId, workspaceId)];
  if (query.agent_id) where.push(eq(approvals.agentId, query.agent_id));
  if (query.run_id) where.push(eq(approvals.runId, query.run_id));
  if (query.type) where.push(eq(approvals.type, query.type));
  if (query.proposed_before) where.push(lt(approvals.proposedAt, new Date(query.proposed_before)));
  return and(...where)!;
}

/** Oldest first; ties in a fixed order, so pages never overlap. */
export const INBOX_ORDER = [asc(approvals.proposedAt), asc(approvals.runId), asc(approvals.contactId), asc(approvals.actionIndex)];

const DAY_MS = 24 * 60 * 60 * 1000;

type EntryRow = {
  run_id: string;
  agent_id: string;
  contact_id: string;
  action_index: number;
  identity_id: string | null;
  send_window: string | null;
  action: string;
  contact: string;
  /** A pending email's place among its identity's pending emails, oldest first; null for the rest. */
  place: number | null;
  /** The sender's daily limit, and the slots its local days from yesterday on hold (`{day: used}` JSON). */
  cap: number;
  taken: string | null;
};

/**
 * One page of the inbox and its total in one D1 round trip. A pending email's place among
 * its identity's pending emails says which free send slot it would take if the inbox were
 * approved in order: its `estimated_send_at`. Places are ranked in one pass over each
 * sender's queue up to its last email on the page (read from approvals_identity_queue alone),
 * never counted row by row; the slots its days hold come with the page.
 */
export async function readInbox(db: Db, d1: D1Database, workspaceId: string, query: InboxQuery & { limit: number; offset: number }, now = Date.now()) {
  const where = inboxWhere(workspaceId, query);
  // The page's keys, narrow; approvals_workspace_order holds the whole inbox order, so no sort.
  const page = db
    .select({ run_id: approvals.runId, contact_id: approvals.contactId, action_index: approvals.actionIndex, identity_id: approvals.identityId, type: approvals.type, proposed_at: approvals.proposedAt })
    .from(approvals)
    .where(where)
    .orderBy(...INBOX_ORDER)
    .limit(query.limit)
    .offset(query.offset);
  const [entries, totals] = await d1.batch([
    prepare(
      d1,
      sql`WITH page AS ${page},
        senders AS (SELECT identity_id, max(proposed_at) AS upto FROM page WHERE type = 'email_message' AND identity_id IS NOT NULL GROUP BY identity_id),
        queue AS (SELECT e.run_id, e.contact_id, e.action_index,
            row_number() OVER (PARTITION BY e.identity_id ORDER BY e.proposed_at, e.run_id, e.contact_id, e.action_index) - 1 AS place
          FROM senders JOIN approvals e ON e.identity_id = senders.identity_id AND e.type = 'email_message' AND e.proposed_at <= senders.upto),
        taken AS (SELECT identity_id, json_group_object(day, used) AS days
          FROM (${slotsTakenSince(sql`SELECT identity_id FROM senders`, localDay(now - DAY_MS, "UTC"))}) GROUP BY identity_id)
      SELECT a.run_id, a.agent_id, a.contact_id, a.action_index, a.identity_id, a.send_window, a.action, a.contact,
        queue.place, ${sql.raw(dailyCap("a.identity_id"))} AS cap, taken.days AS taken
      FROM page JOIN approvals a USING (run_id, contact_id, action_index)
        LEFT JOIN queue USING (run_id, contact_id, action_index) LEFT JOIN taken ON taken.identity_id = a.identity_id
      ORDER BY page.proposed_at, page.run_id, page.contact_id, page.action_index`,
    ),
    prepare(d1, sql`SELECT count(*) AS total FROM ${approvals} WHERE ${where}`),
  ]);
  const rows = rowsOf<EntryRow>(entries);
  const slots = emailSlots(rows, now);
  return {
    entries: rows.map((row) => ({
      run_id: row.run_id,
      agent_id: row.agent_id,
      contact_id: row.contact_id,
      action_index: row.action_index,
      contact: JSON.parse(row.contact) as Record<string, unknown>,
      action: { ...(JSON.parse(row.action) as Record<string, unknown>), estimated_send_at: row.place === null ? null : iso(slots.get(row.identity_id!)?.[row.place] ?? null) },
    })),
    total: rowsOf<{ total: number }>(totals)[0]!.total,
  };
}

/** Each sending identity's free slots, as many as its furthest email on the page needs. */
function emailSlots(rows: EntryRow[], now: number): Map<string, number[]> {
  const furthest = new Map<string, { row: EntryRow; count: number }>();
  for (const row of rows) {
    if (row.place === null || !row.identity_id) continue;
    furthest.set(row.identity_id, { row, count: Math.max(furthest.get(row.identity_id)?.count ?? 0, row.place + 1) });
  }
  return new Map(
    [...furthest].map(([identityId, { row, count }]) => {
      const window = row.send_window === null ? null : (JSON.parse(row.send_window) as SendWindow);
      const taken = JSON.parse(row.taken ?? "{}") as Record<string, number>;
      return [identityId, freeSlots(sendDays(window, now), (day) => taken[day] ?? 0, row.cap, count)];
    }),
  );
}
