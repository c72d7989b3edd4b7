import { and, eq, inArray, isNull, lt, or, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/client";
import { contains } from "../lib/sql";
import { contacts, events } from "../db/schema";
import type { MonitoringFilter } from "../schemas/agents";
import { skipReason, type Eligibility, type EligibilityScope, type SkipReason } from "./eligibility";

const DAY = 24 * 60 * 60 * 1000;

/** At most this many skipped contacts are reported for one default-targeting trigger. */
const SKIPPED_LIMIT = 1000;

/** SQL for `monitoring.filter` (CONTRACT.md section 3): members combine with AND. */
export function filterConditions(workspaceId: string, filter: MonitoringFilter, now = Date.now()): SQL[] {
  // Suppression (unsubscribed, bounced, ...) is eligibility's, so skipped matches can be reported.
  const conditions: SQL[] = [eq(contacts.workspaceId, workspaceId)];

  if (filter.lifecycle_stage) conditions.push(inArray(contacts.lifecycleStage, filter.lifecycle_stage));
  for (const [name, value] of Object.entries(filter.properties ?? {})) {
    // Property names are restricted to [A-Za-z0-9_-], so they are safe inside a JSON path.
    const path = `$."${name}"`;
    // json_extract reads JSON true as 1, so booleans and numbers are also checked by JSON type.
    if (typeof value === "boolean") conditions.push(sql`json_type(${contacts.properties}, ${path}) = ${String(value)}`);
    else if (typeof value === "number") {
      conditions.push(sql`(json_type(${contacts.properties}, ${path}) IN ('integer', 'real') AND json_extract(${contacts.properties}, ${path}) = ${value})`);
    } else conditions.push(sql`json_extract(${contacts.properties}, ${path}) = ${value}`);
  }
  if (filter.not_contacted_within_days) {
    const since = new Date(now - filter.not_contacted_within_days * DAY);
    conditions.push(or(isNull(contacts.lastContactedAt), lt(contacts.lastContactedAt, since))!);
  }
  if (filter.event) {
    const { type, url_contains, min_count, within_days } = filter.event;
    const parts = [sql`${events.contactId} = ${contacts.id}`, sql`${events.type} = ${type}`];
    if (url_contains) parts.push(contains(events.url, url_contains));
    if (within_days) parts.push(sql`${events.occurredAt} >= ${now - within_days * DAY}`);
    // Counting stops at min_count: a contact with thousands of matching events costs what one with min_count does.
    conditions.push(sql`(SELECT count(*) FROM (SELECT 1 FROM ${events} WHERE ${sql.join(parts, sql` AND `)} LIMIT ${min_count})) >= ${min_count}`);
  }
  return conditions;
}

/**
 * The agent's default targeting as one statement: up to `max` eligible matches of the
 * filter, newest first, and the matches it passed over on the way (every skipped match
 * when fewer than `max` are eligible), newest first, at most SKIPPED_LIMIT.
 */
export function targetsQuery(db: Db, scope: EligibilityScope, filter: MonitoringFilter, max: number) {
  const matched = and(...filterConditions(scope.workspaceId, filter, scope.now));
  // `matched` is inlined into both readers, so the eligible scan stops after `max` rows and
  // the skipped scan at the last pick; `picked` is read twice and so computed once.
  return db.all<{ id: string; reason: SkipReason | null }>(sql`
    WITH matched AS NOT MATERIALIZED (SELECT ${contacts.id} AS id, ${skipReason(scope)} AS reason FROM ${contacts} WHERE ${matched}),
    picked AS (SELECT id FROM matched WHERE reason IS NULL ORDER BY id DESC LIMIT ${max})
    SELECT id, NULL AS reason FROM picked
    UNION ALL
    SELECT * FROM (
      SELECT id, reason FROM matched
      WHERE reason IS NOT NULL AND id > (SELECT CASE WHEN count(*) = ${max} THEN min(id) ELSE '' END FROM picked)
      ORDER BY id DESC LIMIT ${SKIPPED_LIMIT}
    )`);
}

/** Runs `targetsQuery`: one D1 round trip. */
export async function selectTargets(db: Db, scope: EligibilityScope, filter: MonitoringFilter, max: number): Promise<Eligibility> {
  const rows = await targetsQuery(db, scope, filter, max);
  const newestFirst = [...rows].sort((a, b) => (a.id < b.id ? 1 : -1));
  return {
    contactIds: newestFirst.filter((row) => row.reason === null).map((row) => row.id),
    skipped: newestFirst.flatMap((row) => (row.reason ? [{ contact_id: row.id, reason: row.reason }] : [])),
  };
}
