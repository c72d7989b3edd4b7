import { and, desc, eq, inArray, isNull, lt, or, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/client";
import { contains } from "../lib/sql";
import { contacts, events } from "../db/schema";
import type { Monitoring, MonitoringFilter } from "../schemas/agents";

const DAY = 24 * 60 * 60 * 1000;

/** SQL for `monitoring.filter` (CONTRACT.md section 3): members combine with AND. */
export function filterConditions(workspaceId: string, filter: MonitoringFilter, now = Date.now()): SQL[] {
  // Suppressed contacts never match: unsubscribed, or bounced at any time.
  const bounced = sql`NOT EXISTS (SELECT 1 FROM ${events} WHERE ${events.contactId} = ${contacts.id} AND ${events.type} = 'email.bounced')`;
  const conditions: SQL[] = [eq(contacts.workspaceId, workspaceId), eq(contacts.unsubscribed, false), bounced];

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
    conditions.push(sql`(SELECT count(*) FROM ${events} WHERE ${sql.join(parts, sql` AND `)}) >= ${min_count}`);
  }
  return conditions;
}

/** The agent's default targeting: its filter, newest contacts first, capped per run. */
export async function selectTargets(db: Db, workspaceId: string, monitoring: Monitoring): Promise<string[]> {
  const rows = await db
    .select({ id: contacts.id })
    .from(contacts)
    .where(and(...filterConditions(workspaceId, monitoring.filter ?? {})))
    .orderBy(desc(contacts.id))
    .limit(monitoring.max_contacts_per_run);
  return rows.map((row) => row.id);
}
