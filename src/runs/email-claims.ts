import { messageIdDomain } from "../delivery/compose";
import { SendError, transportOf } from "../delivery/email-sender";
import { dailyCap, sendDays, slotsHeldBy, slotsTaken } from "../delivery/send-days";
import type { Env } from "../env";
import type { D1Batcher } from "../lib/d1-batcher";
import { newId } from "../lib/ids";
import { reachable } from "./reachable";
import type { ActionRow } from "./run-store";
import type { RunPlan } from "./spec";

/** An email's delivery row as its claim wrote it, and when the day it holds opens. */
export type Claimed = { id: string; action_key: string; status: string; send_day: string; message_id: string; at: number };

/** The claims written, by action key: an email without one claimed nothing (its caller finds out why). */
export type Claims = Map<string, Claimed>;

/** Bytes of emails one claim statement carries: they travel as one bound JSON string, which D1 caps at 2 MB. */
const CLAIM_BYTES = 500_000;

export const actionKeyOf = (spec: RunPlan, action: Pick<ActionRow, "contactId" | "index">) => `${spec.runId}/${action.contactId}/${action.index}`;

/**
 * Claims a send for each approved email of one run, in one D1 statement for all of them:
 * the statement checks each contact may still be reached, gives those that may, in order, the
 * free slots of their identity's sending days under its daily limit, and records each one's
 * delivery (`sending`; `sent` for the outbox, which hands nothing on). Slots are counted
 * inside the statement, once for the whole batch; D1 runs statements one at a time, so two
 * claims cannot both take the last slot. A later day's slot is held (`scheduled`) and the
 * email waits for that day. A delivery already on record for an action is claimed again
 * only while it holds a later day's slot, so a claim run twice sends nothing twice.
 */
export async function claimEmails(env: Env, writes: D1Batcher, spec: RunPlan, emails: ActionRow[]): Promise<Claims> {
  const sender = spec.sender!;
  if (!sender.email_address) throw new SendError("The sending identity has no email address", "permanent");
  const transport = transportOf(env);
  const now = Date.now();
  const days = sendDays(sender.send_window ?? null, now);
  const openingOf = new Map(days.map((d) => [d.day, d.at]));
  const claims: Claims = new Map();
  const statements = [...Map.groupBy(emails, (a) => a.identityId)].flatMap(([identityId, group]) =>
    byteChunks(group.map((a) => ({ id: newId("dlv"), contact_id: a.contactId, action_index: a.index, action_key: actionKeyOf(spec, a), to: String(a.params.to), params: JSON.stringify(a.params) }))).map((batch) =>
      writes.all<Omit<Claimed, "at">>(
        env.DB.prepare(CLAIM).bind(
          JSON.stringify(batch),
          JSON.stringify(days.map((d) => d.day)),
          spec.runId,
          spec.agentId,
          identityId,
          now,
          transport,
          transport === "outbox" ? "sent" : "sending",
          days[0]!.day,
          messageIdDomain(sender.email_address!),
          spec.triggeredAt,
        ),
      ),
    ),
  );
  for (const rows of await Promise.all(statements)) for (const row of rows) claims.set(row.action_key, { ...row, at: openingOf.get(row.send_day)! });
  return claims;
}

// ?1 the emails, ?2 the sending days (soonest first), ?3 run, ?4 agent, ?5 identity, ?6 now,
// ?7 transport, ?8 today's status, ?9 today, ?10 Message-ID domain, ?11 trigger time.
// `ready` numbers the emails that may go, in order; `days` sums each day's free slots, so the
// n-th is `placed` on the first day whose running total passes n (none: no day has room). An
// email whose delivery is under way or done (`settled`: claimed before its process died) takes
// no place and keeps counting against its day; only a held later slot (`scheduled`) is claimed
// again, and that slot is not counted against it.
const CLAIM = `WITH batch AS (
    SELECT j.key AS k, j.value ->> 'id' AS id, j.value ->> 'contact_id' AS contact_id, j.value ->> 'action_index' AS action_index,
      j.value ->> 'action_key' AS action_key, j.value ->> 'to' AS email, j.value ->> 'params' AS params
    FROM json_each(?1) j),
  settled AS (SELECT action_key FROM deliveries WHERE action_key IN (SELECT action_key FROM batch) AND status <> 'scheduled'),
  ready AS (
    SELECT b.*, c.workspace_id, row_number() OVER (ORDER BY b.k) - 1 AS n
    FROM batch b JOIN contacts c ON ${reachable({ contact: "b.contact_id", email: "b.email", profile: "NULL", triggeredAt: "?11", run: "?3" })}
    WHERE b.action_key NOT IN (SELECT action_key FROM settled)),
  own AS MATERIALIZED (${slotsHeldBy("?5", "SELECT action_key FROM ready")}),
  days AS MATERIALIZED (
    SELECT j.key AS k, j.value AS day,
      sum(max(${dailyCap("?5")} - ${slotsTaken("?5", "j.value")} + coalesce((SELECT n FROM own WHERE own.day = j.value), 0), 0)) OVER (ORDER BY j.key) AS free_upto
    FROM json_each(?2) j),
  placed AS MATERIALIZED (SELECT ready.*, (SELECT day FROM days WHERE free_upto > ready.n ORDER BY k LIMIT 1) AS day FROM ready)
  INSERT INTO deliveries (id, workspace_id, action_key, run_id, agent_id, contact_id, action_index, action_type, identity_id, channel,
    params, created_at, transport, status, message_id, send_day, updated_at)
  SELECT r.id, r.workspace_id, r.action_key, ?3, ?4, r.contact_id, r.action_index, 'email_message', ?5, 'email', r.params, ?6, ?7,
    CASE WHEN r.day = ?9 THEN ?8 ELSE 'scheduled' END, '<' || r.id || '@' || ?10 || '>', r.day, ?6
  FROM placed r WHERE r.day IS NOT NULL
  ON CONFLICT (action_key) DO UPDATE SET status = excluded.status, send_day = excluded.send_day, transport = excluded.transport,
    error = NULL, updated_at = excluded.updated_at WHERE deliveries.status = 'scheduled'
  RETURNING id, action_key, status, send_day, message_id`;

/** Splits emails into runs whose JSON stays under CLAIM_BYTES (each run at least one). */
function byteChunks<T>(items: T[]): T[][] {
  const chunks: T[][] = [];
  let bytes = Infinity;
  for (const item of items) {
    const size = JSON.stringify(item).length;
    if (bytes + size > CLAIM_BYTES) {
      chunks.push([]);
      bytes = 0;
    }
    chunks.at(-1)!.push(item);
    bytes += size;
  }
  return chunks;
}
