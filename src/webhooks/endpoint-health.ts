import { sql, type SQL } from "drizzle-orm";
import { webhookEndpoints } from "../db/schema";
import { iso } from "../lib/time";

/** An endpoint whose every attempt failed for this long is disabled (CONTRACT.md section 12's "failing for 5 days"). */
export const DISABLE_AFTER_MS = 5 * 24 * 60 * 60 * 1000;

/** A write of one endpoint's health, for the consumer's batch. */
export type EndpointChange = SQL;


/** A delivered attempt ends the endpoint's failing streak. */
export const endpointSucceeded = (endpointId: string): EndpointChange =>
  sql`UPDATE ${webhookEndpoints} SET failing_since = NULL WHERE id = ${endpointId} AND failing_since IS NOT NULL`;

/**
 * Failed attempts start (or continue) the endpoint's failing streak; a 410 Gone, or a streak
 * five days long, disables it and says why. Compare-and-set on `enabled`, so the reason is
 * written once.
 */
export function endpointFailed(endpointId: string, firstAt: number, gone: boolean, now: number): EndpointChange {
  if (gone) {
    return sql`UPDATE ${webhookEndpoints} SET enabled = 0, updated_at = ${now}, failing_since = coalesce(failing_since, ${firstAt}),
      disabled_reason = ${`The endpoint answered 410 Gone on ${iso(now)}; re-enable it with PATCH once it takes deliveries again`}
      WHERE id = ${endpointId} AND enabled = 1`;
  }
  return sql`UPDATE ${webhookEndpoints} SET failing_since = coalesce(failing_since, ${firstAt}),
      enabled = CASE WHEN coalesce(failing_since, ${firstAt}) <= ${now - DISABLE_AFTER_MS} THEN 0 ELSE enabled END,
      disabled_reason = CASE WHEN enabled = 1 AND coalesce(failing_since, ${firstAt}) <= ${now - DISABLE_AFTER_MS}
        THEN 'Every delivery failed for 5 days, since ' || strftime('%Y-%m-%dT%H:%M:%fZ', coalesce(failing_since, ${firstAt}) / 1000.0, 'unixepoch') || '; re-enable it with PATCH once it is fixed'
        ELSE disabled_reason END,
      updated_at = ${now}
    WHERE id = ${endpointId}`;
}
