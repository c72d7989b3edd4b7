import { and, eq, inArray, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/client";
import { ACTIVE_RUN_STATUSES, contacts, deliveries, events, runContacts, runs } from "../db/schema";
import { batchRead, chunk, D1_MAX_PARAMS } from "../lib/d1";
import type { ErrorDetail } from "../lib/errors";
import type { Monitoring } from "../schemas/agents";
import { OUTBOUND_CHANNELS } from "./actions";

/** Why a contact is left out of a run, in precedence order: the first that applies is reported. */
export const SKIP_REASONS = ["unsubscribed", "bounced", "in_active_run", "replied", "cooldown"] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];
export type Skipped = { contact_id: string; reason: SkipReason };
export type Eligibility = { contactIds: string[]; skipped: Skipped[] };

/**
 * Whose eligibility, and how. `default` targeting (no explicit contacts: the filter, a
 * schedule, an event) also applies the cooldown; explicit contact ids do not.
 */
export type EligibilityScope = {
  workspaceId: string;
  agentId: string;
  /** `monitoring.cooldown_days`: the window of `replied` and `cooldown`; 0 turns both off. */
  cooldownDays: number;
  targeting: "explicit" | "default";
  /** The clock the windows count back from (ms); the scheduler passes its cron minute. */
  now?: number;
};

/** The scope of an agent's trigger. An agent stored before `cooldown_days` existed has its default, 30. */
export function eligibilityScope(
  agent: { id: string; workspaceId: string },
  monitoring: Pick<Monitoring, "cooldown_days">,
  targeting: EligibilityScope["targeting"],
  now?: number,
): EligibilityScope {
  return { workspaceId: agent.workspaceId, agentId: agent.id, cooldownDays: monitoring.cooldown_days ?? 30, targeting, now };
}

const DAY = 86_400_000;
const OUTBOUND = sql.raw(OUTBOUND_CHANNELS.map((c) => `'${c}'`).join(", "));
const ACTIVE = sql.raw(ACTIVE_RUN_STATUSES.map((s) => `'${s}'`).join(", "));

/**
 * SQL naming why the contact in the enclosing query's `contacts` row may not be targeted,
 * or NULL when it may. The CASE stops at the first reason that applies, which gives the
 * precedence and spares the later lookups; each EXISTS is an indexed lookup per contact.
 */
export function skipReason(scope: EligibilityScope): SQL<SkipReason | null> {
  const since = (scope.now ?? Date.now()) - scope.cooldownDays * DAY;
  const windowed = scope.cooldownDays > 0;
  const whens: SQL[] = [
    sql`WHEN ${contacts.unsubscribed} = 1 THEN 'unsubscribed'`,
    sql`WHEN EXISTS (SELECT 1 FROM ${events} WHERE ${events.contactId} = ${contacts.id} AND ${events.type} = 'email.bounced') THEN 'bounced'`,
    sql`WHEN EXISTS (SELECT 1 FROM ${runContacts} INNER JOIN ${runs} ON ${runs.id} = ${runContacts.runId}
      WHERE ${runContacts.contactId} = ${contacts.id} AND ${runs.agentId} = ${scope.agentId} AND ${runs.status} IN (${ACTIVE})) THEN 'in_active_run'`,
  ];
  // A reply to one of the agent's runs: an email.replied event after the contact joined one.
  if (windowed) {
    whens.push(sql`WHEN EXISTS (SELECT 1 FROM ${events} INNER JOIN ${runContacts} ON ${runContacts.contactId} = ${events.contactId} INNER JOIN ${runs} ON ${runs.id} = ${runContacts.runId}
      WHERE ${events.contactId} = ${contacts.id} AND ${events.type} = 'email.replied' AND ${events.occurredAt} >= ${since}
        AND ${runs.agentId} = ${scope.agentId} AND ${events.occurredAt} >= ${runs.createdAt}) THEN 'replied'`);
  }
  // Reached by the agent: an executed outbound action is a delivery row.
  if (windowed && scope.targeting === "default") {
    whens.push(sql`WHEN EXISTS (SELECT 1 FROM ${deliveries} WHERE ${deliveries.contactId} = ${contacts.id} AND ${deliveries.agentId} = ${scope.agentId}
      AND ${deliveries.createdAt} >= ${since} AND ${deliveries.channel} IN (${OUTBOUND})) THEN 'cooldown'`);
  }
  return sql<SkipReason | null>`(CASE ${sql.join(whens, sql` `)} END)`;
}

/** Bound parameters `skipReason` uses at most, besides the caller's own. */
const SKIP_REASON_PARAMS = 5;

/** The reads `eligibleContacts` batches: each chunk of ids with its skip reason, or none when not in the workspace. */
export function candidateReads(db: Db, scope: EligibilityScope, candidates: string[]) {
  const reason = skipReason(scope);
  return chunk(candidates, D1_MAX_PARAMS - SKIP_REASON_PARAMS - 1).map((part) =>
    db
      .select({ id: contacts.id, reason })
      .from(contacts)
      .where(and(eq(contacts.workspaceId, scope.workspaceId), inArray(contacts.id, part))),
  );
}

/**
 * Eligibility of explicitly named contacts, in one D1 round trip: those that may be
 * targeted (in the given order), those skipped and why, and ids that name no contact of
 * the workspace.
 */
export async function eligibleContacts(db: Db, scope: EligibilityScope, candidates: string[]): Promise<Eligibility & { unknown: string[] }> {
  const found = new Map((await batchRead(db, candidateReads(db, scope, candidates))).map((row) => [row.id, row.reason]));
  const result: Eligibility & { unknown: string[] } = { contactIds: [], skipped: [], unknown: [] };
  for (const id of candidates) {
    const reason = found.get(id);
    if (reason === undefined) result.unknown.push(id);
    else if (reason) result.skipped.push({ contact_id: id, reason });
    else result.contactIds.push(id);
  }
  return result;
}

const EXPLANATION: Record<SkipReason, string> = {
  unsubscribed: "has unsubscribed",
  bounced: "has bounced",
  in_active_run: "is already in an active run of this agent",
  replied: "replied to one of this agent's runs within its cooldown_days",
  cooldown: "was reached by this agent within its cooldown_days",
};

/** One error detail per skipped contact, at `pathOf(contactId)`, its message ending in `(reason)`. */
export function skippedDetails(skipped: Skipped[], pathOf: (contactId: string) => string): ErrorDetail[] {
  return skipped.map((s) => ({ path: pathOf(s.contact_id), message: `Contact ${s.contact_id} ${EXPLANATION[s.reason]} (${s.reason})` }));
}
