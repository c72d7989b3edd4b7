import { and, asc, count, eq, lt, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/client";
import { approvals } from "../db/schema";
import { sendEstimates } from "../delivery/estimate";
import { iso } from "../lib/time";
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

/**
 * A pending email's place among its identity's pending emails, oldest first: which of the
 * identity's free send slots it would take if the inbox were approved in order.
 */
const place = sql<number | null>`CASE WHEN ${approvals.type} = 'email_message' AND ${approvals.identityId} IS NOT NULL THEN
  (SELECT count(*) FROM approvals AS earlier WHERE earlier.identity_id = ${approvals.identityId} AND earlier.type = 'email_message'
    AND (earlier.proposed_at, earlier.run_id, earlier.contact_id, earlier.action_index) < (${approvals.proposedAt}, ${approvals.runId}, ${approvals.contactId}, ${approvals.actionIndex}))
  END`;

/**
 * One page of the inbox and its total in one D1 round trip, then the pending emails'
 * `estimated_send_at`, one query per sending identity on the page, in parallel.
 */
export async function readInbox(db: Db, d1: D1Database, workspaceId: string, query: InboxQuery & { limit: number; offset: number }, now = Date.now()) {
  const where = inboxWhere(workspaceId, query);
  const [rows, [totals]] = await db.batch([
    db
      .select({ row: approvals, place })
      .from(approvals)
      .where(where)
      .orderBy(...INBOX_ORDER)
      .limit(query.limit)
      .offset(query.offset),
    db.select({ total: count() }).from(approvals).where(where),
  ]);
  const slots = await emailSlots(d1, rows, now);
  const entries = rows.map(({ row, place: at }) => ({
    run_id: row.runId,
    agent_id: row.agentId,
    contact_id: row.contactId,
    action_index: row.actionIndex,
    contact: row.contact,
    action: { ...row.action, estimated_send_at: at === null ? null : iso(slots.get(row.identityId!)?.[at] ?? null) },
  }));
  return { entries, total: totals!.total };
}

type PageRow = { row: typeof approvals.$inferSelect; place: number | null };

/** Each sending identity's free slots, as many as its furthest email on the page needs. An estimate that fails is left out (null). */
async function emailSlots(d1: D1Database, rows: PageRow[], now: number): Promise<Map<string, number[]>> {
  const furthest = new Map<string, { window: PageRow["row"]["sendWindow"]; count: number }>();
  for (const { row, place: at } of rows) {
    if (at === null || !row.identityId) continue;
    const seen = furthest.get(row.identityId);
    furthest.set(row.identityId, { window: row.sendWindow, count: Math.max(seen?.count ?? 0, at + 1) });
  }
  const estimates = await Promise.all(
    [...furthest].map(async ([identityId, { window, count: n }]) => [identityId, await sendEstimates(d1, identityId, window, now, n).catch(() => [])] as const),
  );
  return new Map(estimates);
}
