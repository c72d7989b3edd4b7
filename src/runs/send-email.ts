import { composeEmail, messageIdDomain } from "../delivery/compose";
import { emailSender, SendError, transportOf, type Transport } from "../delivery/email-sender";
import { dailyCap, sendDays, slotsTaken } from "../delivery/send-days";
import type { Env } from "../env";
import type { D1Batcher } from "../lib/d1-batcher";
import { newId } from "../lib/ids";
import type { ActionRow } from "./run-store";
import type { RunPlan } from "./spec";
import { messageOf } from "../lib/errors";

/** What became of an email on this attempt; `null`: nothing was claimed, the caller finds out why. */
export type EmailOutcome =
  | { kind: "done"; deliveryId: string }
  /** Today is full: the send holds a slot on a later day and waits for that day's opening. */
  | { kind: "deferred"; at: number }
  | null;

type Claimed = { id: string; status: string; send_day: string; message_id: string };

/** Whether the contact may still be reached: the REACHABLE clause of executors.ts, which reads ?1-?4 (`guard`) and ?8 (the run). */
export type Reachable = { clause: string; guard: unknown[] };

/**
 * Sends an approved email, at most once however often it is run:
 *
 * 1. One D1 statement checks the contact, takes a slot under the identity's daily limit and
 *    records the delivery (`sending`; `sent` for the outbox, which hands nothing on). The slot
 *    is the first day with room of the identity's sending days, counted inside the statement:
 *    D1 runs statements one at a time, so two approvals cannot both take the last slot. A later
 *    day's slot is held (`scheduled`) and the action waits for that day.
 * 2. The provider is called. Its answer is recorded: `sent` with its ids; `failed` when it refused
 *    the message for good; back to `scheduled` when it answered an error (nothing left, retried).
 *    With no answer the delivery stays `sending`: a retry repeats the call only through a provider
 *    that deduplicates by the action's key (Resend), and fails it otherwise (Cloudflare).
 */
export async function sendEmail(env: Env, writes: D1Batcher, spec: RunPlan, action: ActionRow, actionKey: string, reachable: Reachable): Promise<EmailOutcome> {
  const sender = spec.sender!;
  if (!sender.email_address) throw new SendError("The sending identity has no email address", "permanent");
  const transport = transportOf(env);
  const now = Date.now();
  const days = sendDays(sender.send_window ?? null, now);
  const id = newId("dlv");
  const claimed = await writes.first<Claimed>(
    env.DB.prepare(
      `INSERT INTO deliveries (id, workspace_id, action_key, run_id, agent_id, contact_id, action_index, action_type, identity_id, channel,
         params, created_at, transport, status, message_id, send_day, updated_at)
       SELECT ?5, c.workspace_id, ?7, ?8, ?9, c.id, ?10, ?11, ?12, 'email', ?13, ?6, ?14,
         CASE WHEN d.day = ?16 THEN ?15 ELSE 'scheduled' END, '<' || ?5 || '@' || ?18 || '>', d.day, ?6
       FROM contacts c, (SELECT j.value AS day FROM json_each(?17) j
         WHERE ${slotsTaken("?12", "j.value", "?7")} < ${dailyCap("?12")}
         ORDER BY j.key LIMIT 1) d
       WHERE ${reachable.clause}
       ON CONFLICT (action_key) DO UPDATE SET status = excluded.status, send_day = excluded.send_day, transport = excluded.transport,
         error = NULL, updated_at = excluded.updated_at WHERE deliveries.status = 'scheduled'
       RETURNING id, status, send_day, message_id`,
    ).bind(
      ...reachable.guard,
      id,
      now,
      actionKey,
      spec.runId,
      spec.agentId,
      action.index,
      action.type,
      action.identityId,
      JSON.stringify(action.params),
      transport,
      transport === "outbox" ? "sent" : "sending",
      days[0]!.day,
      JSON.stringify(days.map((d) => d.day)),
      messageIdDomain(sender.email_address),
    ),
  );
  if (claimed) {
    if (claimed.status === "scheduled") return { kind: "deferred", at: days.find((d) => d.day === claimed.send_day)!.at };
    if (claimed.status === "sent" || transport === "outbox") return { kind: "done", deliveryId: claimed.id };
    return deliver(env, writes, spec, action, actionKey, transport, claimed);
  }
  return resume(env, writes, spec, action, actionKey, reachable);
}

/** A delivery already on record for the action: finished, refused, or cut off while with the provider. */
async function resume(env: Env, writes: D1Batcher, spec: RunPlan, action: ActionRow, actionKey: string, reachable: Reachable): Promise<EmailOutcome> {
  const row = await env.DB.prepare(`SELECT id, status, send_day, message_id, transport, error FROM deliveries WHERE action_key = ?`)
    .bind(actionKey)
    .first<Claimed & { transport: Transport; error: string | null }>();
  if (!row || row.status === "scheduled") return null;
  // A delivery refused for good, or one that went (and maybe has news from the provider since).
  if (row.status === "failed") throw new SendError(row.error ?? "The provider refused this email", "permanent");
  if (row.status !== "sending") return { kind: "done", deliveryId: row.id };
  const transportThen = row.transport;
  if (transportThen === "outbox" || !emailSender(env, transportThen).idempotent) {
    throw new SendError(`The attempt that handed this email to ${row.transport} was cut off before its answer; it may have been sent, so it is not sent again`, "permanent");
  }
  // Asked again only while the contact may still be reached; the provider answers the first send if it got it.
  const still = await env.DB.prepare(
    `UPDATE deliveries SET updated_at = ?6 WHERE id = ?5 AND status = 'sending' AND EXISTS (SELECT 1 FROM contacts c WHERE ${reachable.clause}) RETURNING id`,
  )
    .bind(...reachable.guard, row.id, Date.now(), null, spec.runId)
    .first();
  // It may have gone: never "not sent", never proposed again to a new address.
  if (!still) throw new SendError(`Handed to ${transportThen} by an attempt that got no answer, and the contact may no longer be reached: not asked again, so it cannot arrive twice`, "permanent");
  return deliver(env, writes, spec, action, actionKey, transportThen, row, true);
}

/**
 * Hands the claimed email to the provider and records its answer. `uncertain`: an earlier call
 * got no answer, so it may have gone; an error now (a 409 while that call is still in flight, a
 * 5xx) says nothing about it, and the delivery stays `sending` rather than "nothing left".
 */
async function deliver(env: Env, writes: D1Batcher, spec: RunPlan, action: ActionRow, actionKey: string, transport: Exclude<Transport, "outbox">, claimed: Claimed, uncertain = false): Promise<EmailOutcome> {
  // Through the run's batcher, like the claim: answers of a burst of approvals share D1 commits.
  const record = (sql: string, ...values: unknown[]) =>
    writes.first(env.DB.prepare(`UPDATE deliveries SET ${sql}, updated_at = ?2 WHERE id = ?1 AND status = 'sending'`).bind(claimed.id, Date.now(), ...values));
  let receipt;
  try {
    const email = await composeEmail(env, spec, actionKey, action.contactId, action.params, { id: claimed.id, messageId: claimed.message_id });
    receipt = await emailSender(env, transport).send(email);
  } catch (error) {
    const refused = error instanceof SendError ? error : new SendError(messageOf(error), "rejected");
    if (refused.kind === "permanent") await record("status = 'failed', error = ?3", refused.message);
    // Nothing left: the slot is kept, and the next attempt claims it again.
    else if (refused.kind === "rejected") await record(uncertain ? "error = ?3" : "status = 'scheduled', error = ?3", refused.message);
    throw refused;
  }
  // Outside the try: the email is out, so a failure to record it leaves it `sending`, never `scheduled`.
  await record("status = 'sent', provider_message_id = ?3, message_id = COALESCE(?4, message_id)", receipt.providerMessageId, receipt.messageId);
  return { kind: "done", deliveryId: claimed.id };
}
