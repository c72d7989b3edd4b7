import { ACTIVE_RUN_STATUSES } from "./machine";

/**
 * Whether contact `c` may still be reached, as SQL over the expressions given: only while its
 * run is active in D1 (not cancelled there, nor deleted with its agent) and the contact exists,
 * is subscribed, has not bounced, has not replied or unsubscribed since the trigger, and still
 * has the address the action was written for (a null address is not checked). Written into
 * each delivery's insert, so the check and the delivery are one statement: nothing can change
 * in between.
 */
export const reachable = (at: { contact: string; email: string; profile: string; triggeredAt: string; run: string }) => `c.id = ${at.contact} AND c.unsubscribed = 0
  AND EXISTS (SELECT 1 FROM runs r WHERE r.id = ${at.run} AND r.status IN (${ACTIVE_RUN_STATUSES.map((s) => `'${s}'`).join(", ")}))
  AND (${at.email} IS NULL OR c.email_key = lower(${at.email})) AND (${at.profile} IS NULL OR c.linkedin_url = ${at.profile})
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id
    AND (e.type = 'email.bounced' OR (e.type IN ('email.replied', 'contact.unsubscribed') AND e.created_at >= ${at.triggeredAt})))`;

/** The clause over bound parameters: ?1 contact, ?2 email, ?3 profile URL, ?4 trigger time and ?8 run. */
export const REACHABLE = reachable({ contact: "?1", email: "?2", profile: "?3", triggeredAt: "?4", run: "?8" });
