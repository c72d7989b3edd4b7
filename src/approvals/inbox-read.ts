import { and, asc, eq, lt, sql, type SQL } from "drizzle-orm";
import { approvals, inboxes } from "../db/schema";
import { freeSlots } from "../delivery/estimate";
import { dailyCap, localDay, sendDays, slotsTakenSince } from "../delivery/send-days";
import { prepare } from "../lib/d1";
import { iso } from "../lib/time";
import type { SendWindow } from "../runs/send-window";
import type { InboxQuery } from "../schemas/approvals";
import { InboxCache } from "./inbox-cache";

// What narrows the inbox to the query: the workspace first, then each filter given.
function inboxConditions(workspaceId: string, query: InboxQuery): SQL[] {
  const where: SQL[] = [eq(approvals.workspaceId, workspaceId)];
  if (query.agent_id) where.push(eq(approvals.agentId, query.agent_id));
  if (query.run_id) where.push(eq(approvals.runId, query.run_id));
  if (query.type) where.push(eq(approvals.type, query.type));
  if (query.proposed_before) where.push(lt(approvals.proposedAt, new Date(query.proposed_before)));
  return where;
}

/** The inbox's conditions: the workspace's pending actions, narrowed by the query. */
export const inboxWhere = (workspaceId: string, query: InboxQuery): SQL => and(...inboxConditions(workspaceId, query))!;

/** Oldest first; ties in a fixed order, so pages never overlap. */
export const INBOX_ORDER = [asc(approvals.proposedAt), asc(approvals.runId), asc(approvals.contactId), asc(approvals.actionIndex)];

const DAY_MS = 24 * 60 * 60 * 1000;

type Entry = {
  run_id: string;
  agent_id: string;
  contact_id: string;
  action_index: number;
  contact: Record<string, unknown>;
  action: Record<string, unknown>;
  /** A pending email's sender, its send window, and its place among the sender's pending emails, oldest first; null for the rest. */
  identity_id: string | null;
  send_window: SendWindow | null;
  place: number | null;
};
/** Each sender on the page: its daily limit, and the slots its local days from yesterday on hold. */
type Sender = { cap: number; taken: Record<string, number> };
/** A page as D1 holds it, at the inbox version it was read at: everything but `now`'s estimates. Shared by every request that reads it, so frozen. */
export type InboxPage = { version: number; total: number; entries: Entry[]; senders: Record<string, Sender> };

type PageQuery = InboxQuery & { limit: number; offset: number };

const inboxCache = new InboxCache<InboxPage>();

/** One page of the inbox and its total, each pending email with its `estimated_send_at` as of `now`. */
export async function readInbox(d1: D1Database, workspaceId: string, query: PageQuery, now = Date.now(), cache = inboxCache) {
  const page = await currentPage(d1, workspaceId, query, now, cache);
  const estimates = sendEstimates(page, now);
  return {
    entries: page.entries.map(({ run_id, agent_id, contact_id, action_index, contact, action }, i) => ({
      run_id,
      agent_id,
      contact_id,
      action_index,
      contact,
      action: { ...action, estimated_send_at: estimates[i] },
    })),
    total: page.total,
  };
}

// The page held for this query, once one read of the workspace's inbox version says it still
// stands; else read again (one round trip) and held. A page whose inbox had moved when it was
// last read is read again straight away, so a busy inbox pays for a failed check only once.
async function currentPage(d1: D1Database, workspaceId: string, query: PageQuery, now: number, cache: InboxCache<InboxPage>): Promise<InboxPage> {
  const key = JSON.stringify([workspaceId, query]);
  const held = cache.get(key);
  if (held && !held.moving && held.version === (await inboxVersion(d1, workspaceId))) return held.page;
  const text = await readPage(d1, workspaceId, query, now);
  const page = deepFreeze(JSON.parse(text) as InboxPage);
  cache.set(key, { version: page.version, page, moving: held !== undefined && held.version !== page.version }, text.length);
  return page;
}

const inboxVersion = async (d1: D1Database, workspaceId: string) =>
  (await d1.prepare("SELECT version FROM inboxes WHERE workspace_id = ?").bind(workspaceId).first<{ version: number }>())?.version ?? 0;

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) for (const inner of Object.values(Object.freeze(value))) deepFreeze(inner);
  return value;
}

// An entry as JSON text from its row `a` and its place `place`, the stored action and contact
// spliced in as they are: SQLite's json() would parse and write each entry's kilobyte again.
const entryJson = (a: string, place: string) =>
  sql.raw(`'{"run_id":' || json_quote(${a}.run_id) || ',"agent_id":' || json_quote(${a}.agent_id)
    || ',"contact_id":' || json_quote(${a}.contact_id) || ',"action_index":' || ${a}.action_index
    || ',"identity_id":' || json_quote(${a}.identity_id) || ',"send_window":' || coalesce(${a}.send_window, 'null')
    || ',"place":' || coalesce(${place}, 'null') || ',"contact":' || ${a}.contact || ',"action":' || ${a}.action || '}'`);

// A page, its total and the inbox version, read together in one statement that SQLite answers
// as one JSON document: D1 hands back one value, not a row of columns per entry. An email's
// place among its sender's pending emails (ranked in one pass over approvals_identity_queue up
// to the sender's last email on the page) says which free send slot it would take if the inbox
// were approved in order. An unfiltered total is the workspace's count, a filtered one counted.
async function readPage(d1: D1Database, workspaceId: string, query: PageQuery, now: number): Promise<string> {
  const conditions = inboxConditions(workspaceId, query);
  const where = and(...conditions)!;
  const total = conditions.length > 1
    ? sql`(SELECT count(*) FROM ${approvals} WHERE ${where})`
    : sql`coalesce((SELECT pending FROM ${inboxes} WHERE workspace_id = ${workspaceId}), 0)`;
  const row = await prepare(
    d1,
    sql`WITH page AS (SELECT run_id, contact_id, action_index, identity_id, type, proposed_at FROM ${approvals}
          WHERE ${where} ORDER BY ${sql.join(INBOX_ORDER, sql`, `)} LIMIT ${query.limit} OFFSET ${query.offset}),
        senders AS (SELECT identity_id, max(proposed_at) AS upto FROM page WHERE type = 'email_message' AND identity_id IS NOT NULL GROUP BY identity_id),
        queue AS (SELECT e.run_id, e.contact_id, e.action_index,
            row_number() OVER (PARTITION BY e.identity_id ORDER BY e.proposed_at, e.run_id, e.contact_id, e.action_index) - 1 AS place
          FROM senders JOIN approvals e ON e.identity_id = senders.identity_id AND e.type = 'email_message' AND e.proposed_at <= senders.upto),
        taken AS (${slotsTakenSince(sql`SELECT identity_id FROM senders`, localDay(now - DAY_MS, "UTC"))})
      SELECT '{"version":' || coalesce((SELECT version FROM ${inboxes} WHERE workspace_id = ${workspaceId}), 0) || ',"total":' || ${total}
        || ',"entries":[' || coalesce((SELECT group_concat(${entryJson("a", "queue.place")}, ',' ORDER BY page.proposed_at, page.run_id, page.contact_id, page.action_index)
            FROM page JOIN approvals a USING (run_id, contact_id, action_index) LEFT JOIN queue USING (run_id, contact_id, action_index)), '')
        || '],"senders":' || coalesce((SELECT json_group_object(identity_id, json_object('cap', ${sql.raw(dailyCap("senders.identity_id"))},
            'taken', (SELECT json_group_object(day, used) FROM taken WHERE taken.identity_id = senders.identity_id))) FROM senders), '{}')
        || '}' AS page`,
  ).first<{ page: string }>();
  return row!.page;
}

// When each email on the page would go out, in the page's order (null for the rest): the free
// slot its place takes among its sender's days under its own send window, worked out once per
// sender and window, as far as the page needs.
function sendEstimates({ entries, senders }: InboxPage, now: number): (string | null)[] {
  const queues = entries.map((e) => (e.place === null || e.identity_id === null ? null : `${e.identity_id} ${JSON.stringify(e.send_window)}`));
  const needed = new Map<string, number>();
  for (const [i, queue] of queues.entries()) if (queue) needed.set(queue, Math.max(needed.get(queue) ?? 0, entries[i]!.place! + 1));
  const slots = new Map<string, number[]>();
  return entries.map((e, i) => {
    const queue = queues[i];
    if (!queue) return null;
    let free = slots.get(queue);
    if (!free) {
      const { cap, taken } = senders[e.identity_id!]!;
      free = freeSlots(sendDays(e.send_window, now), (day) => taken[day] ?? 0, cap, needed.get(queue)!);
      slots.set(queue, free);
    }
    return iso(free[e.place!] ?? null);
  });
}
