import { and, eq, inArray, sql, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { configFromRow, type AgentRow } from "../agents/agent-record";
import type { Db } from "../db/client";
import { agents, contacts, eventMatchRequests, eventRunCandidates } from "../db/schema";
import type { Env } from "../env";
import { batchRead, chunk, D1_MAX_PARAMS, rowsPerStatement } from "../lib/d1";
import { sendOrLeaveToSweep } from "../lib/queue";
import { eligibilityScope, skipReason } from "../runs/eligibility";
import { filterConditions } from "../runs/targeting";
import type { EventRow } from "./event-record";

// Event-driven runs (CONTRACT.md section 12), first half: ingested events become a match
// request in the same D1 batch that stores them, its queue message matches the request's
// contacts against the workspace's event-driven agents, and each match becomes a candidate
// of its (agent, minute). src/events/start-event-runs.ts starts one run per group.

const MINUTE = 60_000;

/** The minute `at` falls in, as the start of that minute. */
export const minuteOf = (at: number) => new Date(Math.floor(at / MINUTE) * MINUTE);

/** The event type an agent's `monitoring.filter.event` clause watches; NULL without one. */
const watchedType = sql<string | null>`json_extract(${agents.monitoring}, '$.filter.event.type')`;

/**
 * The statement `recordEvents` adds to its batch: a match request for the rows' contacts,
 * written only when an enabled agent of the workspace watches one of the rows' types, so a
 * workspace without event-driven agents writes and sends nothing. The EXISTS searches
 * `agents_workspace_enabled` (workspace_id, enabled) and reads only those agents' rows.
 *
 * A burst coalesces: while a request for the same contacts and types waits unclaimed, no
 * second one is written (nor its message sent). Its consumer reads the contacts' events
 * after claiming it, so these events, stored in this same batch before the claim, count.
 */
export function matchRequest(db: Db, workspaceId: string, rows: EventRow[]) {
  const contactIds = JSON.stringify([...new Set(rows.map((r) => r.contactId))]);
  const types = JSON.stringify([...new Set(rows.map((r) => r.type))]);
  const watched = sql`SELECT 1 FROM ${agents} WHERE ${agents.workspaceId} = ${workspaceId} AND ${agents.enabled} = 1
    AND ${watchedType} IN (SELECT value FROM json_each(${types}))`;
  const waiting = sql`SELECT 1 FROM ${eventMatchRequests} WHERE ${eventMatchRequests.workspaceId} = ${workspaceId}
    AND ${eventMatchRequests.claimedAt} IS NULL AND ${eventMatchRequests.contactIds} = ${contactIds} AND ${eventMatchRequests.types} = ${types}`;
  // Drizzle lists every column, `id` first: NULL lets AUTOINCREMENT number the row.
  return db
    .insert(eventMatchRequests)
    .select(sql`SELECT NULL, ${workspaceId}, ${contactIds}, ${types}, ${rows[0]!.createdAt.getTime()}, NULL WHERE EXISTS (${watched}) AND NOT EXISTS (${waiting})`)
    .returning({ id: eventMatchRequests.id });
}

/** Hands a match request to the run queue. A message that cannot be sent is only logged: the cron sweep re-sends it. */
export async function sendMatch(env: Env, requestId: number): Promise<void> {
  await sendOrLeaveToSweep("match message", { request_id: requestId }, () => env.RUN_QUEUE.send({ kind: "match", request_id: requestId }));
}

/** Builds `read` over `ids` in as few statements as D1's parameter limit allows, whatever else `read` binds. */
function fitted<Q extends { toSQL(): { params: unknown[] } }>(ids: string[], read: (part: string[]) => Q): Q[] {
  if (ids.length === 0) return [];
  const own = read(ids.slice(0, 1)).toSQL().params.length - 1;
  return chunk(ids, D1_MAX_PARAMS - own).map(read);
}

/**
 * Reads of the contacts among `ids` that match the agent's whole `monitoring.filter` at
 * `now`, each with why default targeting would leave it out (null: it is eligible).
 * Contacts that do not match, or are gone, are not returned; each row names the agent.
 */
export function matchReads(db: Db, agent: AgentRow, ids: string[], now: number) {
  const { monitoring } = configFromRow(agent);
  const matched = filterConditions(agent.workspaceId, monitoring.filter ?? {}, now);
  const reason = skipReason(eligibilityScope(agent, monitoring, "default", now));
  return fitted(ids, (part) =>
    db
      .select({ agentId: sql<string>`${agent.id}`, id: contacts.id, reason })
      .from(contacts)
      .where(and(...matched, inArray(contacts.id, part))),
  );
}

/**
 * Consumes a match request: each enabled agent of the request's workspace that watches one
 * of its event types takes the request's contacts that now match its whole filter and are
 * eligible as candidates of `now`'s minute; the request row goes in the same batch. A request
 * already consumed is gone, so a redelivered message does nothing. Answers the matches written.
 */
export async function matchEvents(db: Db, requestId: number, now: number): Promise<number> {
  const ofRequest = (column: SQLiteColumn): SQL => sql`(SELECT ${column} FROM ${eventMatchRequests} WHERE ${eventMatchRequests.id} = ${requestId})`;
  // Claimed first: from now on the same contacts' events make a request of their own.
  const [[request], watching] = await db.batch([
    db.update(eventMatchRequests).set({ claimedAt: new Date(now) }).where(eq(eventMatchRequests.id, requestId)).returning(),
    db
      .select()
      .from(agents)
      .where(
        and(
          sql`${agents.workspaceId} = ${ofRequest(eventMatchRequests.workspaceId)}`,
          eq(agents.enabled, true),
          sql`${watchedType} IN (SELECT value FROM json_each(${ofRequest(eventMatchRequests.types)}))`,
        ),
      ),
  ]);
  if (!request) return 0;

  const minute = minuteOf(now);
  const found = await batchRead(db, watching.flatMap((agent) => matchReads(db, agent, request.contactIds, now)));
  const matches = found
    .filter((row) => row.reason === null)
    .map((row) => ({ agentId: row.agentId, minute, contactId: row.id, matchedAt: new Date(now) }));

  const done = db.delete(eventMatchRequests).where(eq(eventMatchRequests.id, requestId));
  const inserts = chunk(matches, rowsPerStatement(4)).map((part) => db.insert(eventRunCandidates).values(part).onConflictDoNothing());
  await db.batch([done, ...inserts]);
  return matches.length;
}
