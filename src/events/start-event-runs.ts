import { and, asc, eq, inArray, lt, sql } from "drizzle-orm";
import { configFromRow, type AgentRow } from "../agents/agent-record";
import type { Db } from "../db/client";
import { agents, eventMatchRequests, eventRunCandidates, runContacts, runs } from "../db/schema";
import type { Env } from "../env";
import { batchRead, chunk, isUniqueViolation } from "../lib/d1";
import { ActiveRunConflict, createRun } from "../runs/create-run";
import { readiness } from "../runs/readiness";
import { matchReads, minuteOf } from "./event-runs";

// Event-driven runs, second half (the every-minute cron): one run per (agent, minute) of
// candidates once that minute is over, and the sweep that re-sends lost match messages.

/** A match request still unconsumed this long after it was written lost its message: it is sent again. */
export const RESEND_AFTER_MS = 60_000;
/** Match requests and candidate groups this old are dropped and logged; the contacts match again with their next events. */
export const GIVE_UP_AFTER_MS = 60 * 60_000;
const RESEND_LIMIT = 100;
const GROUPS_PER_TICK = 50;
/** Candidates of a group weighed per tick, first matched first; the rest wait for the next minute. */
const GROUP_READ_LIMIT = 1000;

type Group = { agentId: string; minute: Date };

const inGroup = (group: Group) => and(eq(eventRunCandidates.agentId, group.agentId), eq(eventRunCandidates.minute, group.minute));

/**
 * The cron's part: re-sends lost match messages, then starts an `event` run for each
 * (agent, minute) group of candidates before the current minute. Each run claims its minute
 * as `schedule_slot`, so a tick delivered twice, even concurrently, starts one run per group.
 * Answers the ids of the runs started.
 */
export async function startEventRuns(db: Db, env: Env, now = Date.now()): Promise<string[]> {
  // Runs start even when the sweep fails: the next tick sweeps again.
  await resendLostRequests(db, env, now).catch((error) =>
    console.error(JSON.stringify({ level: "error", message: "match request sweep failed", error: String(error) })),
  );
  const current = minuteOf(now);
  const groups: Group[] = await db
    .selectDistinct({ agentId: eventRunCandidates.agentId, minute: eventRunCandidates.minute })
    .from(eventRunCandidates)
    .where(lt(eventRunCandidates.minute, current))
    .orderBy(asc(eventRunCandidates.minute), asc(eventRunCandidates.agentId))
    .limit(GROUPS_PER_TICK);
  if (groups.length === 0) return [];
  const owners = await db.select().from(agents).where(inArray(agents.id, [...new Set(groups.map((g) => g.agentId))]));
  const byId = new Map(owners.map((agent) => [agent.id, agent]));

  const started: string[] = [];
  // In minute order, one at a time: an agent's later group sees the contacts its earlier run took.
  for (const group of groups) {
    // One group's failure must not keep the others from their runs; its candidates wait for the next tick.
    try {
      const runId = await startGroup(db, env, byId.get(group.agentId), group, current, now);
      if (runId) started.push(runId);
    } catch (error) {
      console.error(JSON.stringify({ level: "error", message: "event run failed", agent_id: group.agentId, minute: group.minute.toISOString(), error: String(error) }));
    }
  }
  return started;
}

async function startGroup(db: Db, env: Env, agent: AgentRow | undefined, group: Group, current: Date, now: number): Promise<string | null> {
  const config = agent && configFromRow(agent);
  const drop = async (message: string, extra: Record<string, unknown> = {}) => {
    console.warn(JSON.stringify({ level: "warn", message, agent_id: group.agentId, minute: group.minute.toISOString(), ...extra }));
    await db.delete(eventRunCandidates).where(inGroup(group));
    return null;
  };
  if (!agent || !config?.enabled || !config.monitoring.filter?.event) return drop("event candidates dropped: the agent no longer runs on events");
  if (group.minute.getTime() < now - GIVE_UP_AFTER_MS) return drop("event candidates dropped: not started within an hour");
  const ready = readiness(config, env);
  if (!ready.ok) return drop("event run skipped", { code: ready.code, reason: ready.message });

  const candidates = await db
    .select({ contactId: eventRunCandidates.contactId })
    .from(eventRunCandidates)
    .where(inGroup(group))
    .orderBy(asc(eventRunCandidates.matchedAt), asc(eventRunCandidates.contactId))
    .limit(GROUP_READ_LIMIT);
  const ids = candidates.map((c) => c.contactId);
  const start = async () => {
    const weighed = await weigh(db, agent, ids, now);
    const contactIds = weighed.eligible.slice(0, config.monitoring.max_contacts_per_run);
    if (contactIds.length === 0) return { runId: null, dropped: weighed.dropped };
    const input = { workspaceId: agent.workspaceId, agentId: agent.id, config, steps: ready.steps, contactIds };
    const { runId } = await createRun(db, env, { ...input, trigger: "event", scheduleSlot: group.minute });
    return { runId, dropped: weighed.dropped };
  };

  let outcome: { runId: string | null; dropped: string[] };
  try {
    outcome = await start();
  } catch (error) {
    // Another delivery of this tick started the group's run first.
    if (isUniqueViolation(error)) outcome = { runId: null, dropped: [] };
    // A concurrent trigger took a contact meanwhile: weighed again, it is left out.
    else if (error instanceof ActiveRunConflict) outcome = await start();
    else throw error;
  }
  await finishGroup(db, group, current, outcome.dropped);
  return outcome.runId;
}

/** Splits `ids` (in order) into those eligible for the agent's run now and those that no longer match or are not eligible. */
async function weigh(db: Db, agent: AgentRow, ids: string[], now: number): Promise<{ eligible: string[]; dropped: string[] }> {
  const found = new Map((await batchRead(db, matchReads(db, agent, ids, now))).map((row) => [row.id, row.reason]));
  return {
    eligible: ids.filter((id) => found.get(id) === null),
    dropped: ids.filter((id) => found.get(id) !== null),
  };
}

/**
 * Closes a group in one batch: its contacts in the run holding its minute, and those
 * `dropped`, are done; the rest (over `max_contacts_per_run`, past the read limit, or
 * matched after the run started) move to the current minute and wait for the next tick.
 */
async function finishGroup(db: Db, group: Group, current: Date, dropped: string[]): Promise<void> {
  const inSlotRun = sql`${eventRunCandidates.contactId} IN (SELECT ${runContacts.contactId} FROM ${runContacts}
    INNER JOIN ${runs} ON ${runs.id} = ${runContacts.runId}
    WHERE ${runs.agentId} = ${group.agentId} AND ${runs.trigger} = 'event' AND ${runs.scheduleSlot} = ${group.minute.getTime()})`;
  const carried = db
    .select({
      agentId: eventRunCandidates.agentId,
      minute: sql<Date>`${current.getTime()}`.as("minute"),
      contactId: eventRunCandidates.contactId,
      matchedAt: eventRunCandidates.matchedAt,
    })
    .from(eventRunCandidates)
    .where(inGroup(group));
  await db.batch([
    db.delete(eventRunCandidates).where(and(inGroup(group), inSlotRun)),
    ...chunk(dropped, 90).map((part) => db.delete(eventRunCandidates).where(and(inGroup(group), inArray(eventRunCandidates.contactId, part)))),
    db.insert(eventRunCandidates).select(carried).onConflictDoNothing(),
    db.delete(eventRunCandidates).where(inGroup(group)),
  ]);
}

/** Sends again the match messages of requests left unconsumed (bounded per tick); drops those past GIVE_UP_AFTER_MS. */
async function resendLostRequests(db: Db, env: Env, now: number): Promise<void> {
  const due = await db
    .select({ id: eventMatchRequests.id, createdAt: eventMatchRequests.createdAt })
    .from(eventMatchRequests)
    .where(lt(eventMatchRequests.createdAt, new Date(now - RESEND_AFTER_MS)))
    .orderBy(asc(eventMatchRequests.createdAt))
    .limit(RESEND_LIMIT);
  const stale = due.filter((r) => r.createdAt.getTime() < now - GIVE_UP_AFTER_MS).map((r) => r.id);
  const lost = due.filter((r) => r.createdAt.getTime() >= now - GIVE_UP_AFTER_MS).map((r) => r.id);
  if (stale.length > 0) {
    console.error(JSON.stringify({ level: "error", message: "match requests dropped: not consumed within an hour", request_ids: stale }));
    await db.delete(eventMatchRequests).where(inArray(eventMatchRequests.id, stale));
  }
  if (lost.length > 0) await env.RUN_QUEUE.sendBatch(lost.map((id) => ({ body: { kind: "match" as const, request_id: id } })));
}
