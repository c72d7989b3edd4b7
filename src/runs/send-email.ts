import { composeEmail } from "../delivery/compose";
import { emailSender, SendError, transportOf, type Transport } from "../delivery/email-sender";
import type { Env } from "../env";
import type { D1Batcher } from "../lib/d1-batcher";
import { messageOf } from "../lib/errors";
import { actionKeyOf, type Claimed } from "./email-claims";
import { REACHABLE } from "./reachable";
import type { ActionRow } from "./run-store";
import type { RunPlan } from "./spec";

/** The delivery a provider call is recorded on. */
type Delivery = Pick<Claimed, "id" | "message_id">;

/** What became of an email on this attempt; `null`: nothing was claimed, the caller finds out why. */
export type EmailOutcome =
  | { kind: "done"; deliveryId: string }
  /** Today is full: the send holds a slot on a later day and waits for that day's opening. */
  | { kind: "deferred"; at: number }
  | null;

/**
 * Sends an approved email, at most once however often it is run, from what its claim
 * (email-claims.ts) wrote:
 *
 * 1. A later day's slot is held: the email waits for that day. The outbox records `sent` in
 *    the claim itself, which hands nothing on.
 * 2. Otherwise the provider is called. Its answer is recorded: `sent` with its ids; `failed` when
 *    it refused the message for good; back to `scheduled` when it answered an error (nothing left,
 *    retried). With no answer the delivery stays `sending`: a retry repeats the call only through a
 *    provider that deduplicates by the action's key (Resend), and fails it otherwise (Cloudflare).
 * 3. Nothing claimed: a delivery already on record is finished, refused or resumed; with none, the
 *    caller finds out why.
 */
export async function sendEmail(env: Env, writes: D1Batcher, spec: RunPlan, action: ActionRow, claimed: Claimed | undefined): Promise<EmailOutcome> {
  const actionKey = actionKeyOf(spec, action);
  const transport = transportOf(env);
  if (claimed) {
    if (claimed.status === "scheduled") return { kind: "deferred", at: claimed.at };
    if (claimed.status === "sent" || transport === "outbox") return { kind: "done", deliveryId: claimed.id };
    return deliver(env, writes, spec, action, actionKey, transport, claimed);
  }
  return resume(env, writes, spec, action, actionKey);
}

/** A delivery already on record for the action: finished, refused, or cut off while with the provider. */
async function resume(env: Env, writes: D1Batcher, spec: RunPlan, action: ActionRow, actionKey: string): Promise<EmailOutcome> {
  const row = await env.DB.prepare(`SELECT id, status, send_day, message_id, transport, error FROM deliveries WHERE action_key = ?`)
    .bind(actionKey)
    .first<Delivery & { status: string; transport: Transport; error: string | null }>();
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
    `UPDATE deliveries SET updated_at = ?6 WHERE id = ?5 AND status = 'sending' AND EXISTS (SELECT 1 FROM contacts c WHERE ${REACHABLE}) RETURNING id`,
  )
    .bind(action.contactId, String(action.params.to), null, spec.triggeredAt, row.id, Date.now(), null, spec.runId)
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
async function deliver(env: Env, writes: D1Batcher, spec: RunPlan, action: ActionRow, actionKey: string, transport: Exclude<Transport, "outbox">, claimed: Delivery, uncertain = false): Promise<EmailOutcome> {
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
