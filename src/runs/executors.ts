import type { Env } from "../env";
import type { D1Batcher } from "../lib/d1-batcher";
import { newId } from "../lib/ids";
import { ACTIVE_RUN_STATUSES, type StopReason } from "./machine";
import { actionKeyOf, claimEmails, type Claims } from "./email-claims";
import { REACHABLE, reachable } from "./reachable";
import { SendError } from "../delivery/email-sender";
import { SEND_DAYS_AHEAD } from "../delivery/send-days";
import { addressedElsewhere, CHANNEL, reachesPerson, type ActionParams } from "./actions";
import type { ActionRow } from "./run-store";
import { sendEmail } from "./send-email";
import { STOP_EVENTS, type ContactSnapshot, type RunPlan } from "./spec";

export type Execution =
  | { kind: "done"; result: ActionParams }
  /** The contact left the sequence (deleted, opted out, bounced, replied): nothing was sent. */
  | { kind: "stopped"; reason: StopReason }
  /** The contact's address is no longer the one the action was written for: nothing was sent. */
  | { kind: "changed"; snapshot: ContactSnapshot }
  /** The identity's daily limit is reached today: the email holds a later day's slot and waits for it. */
  | { kind: "deferred"; at: number };

/** An execution that failed; a permanent one is not retried, a provider may name when to try again. */
export class ExecutionError extends Error {
  constructor(
    message: string,
    readonly permanent = false,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** A delivery that counts as made: handed on and confirmed, or recorded by the outbox. */
const DELIVERED = `status IN ('sent', 'delivered', 'bounced', 'complained')`;


/**
 * Carries out an approved action. Each write is keyed by the action, so running this
 * twice (an alarm retried, an approval racing an alarm) leaves one note or one delivery;
 * a delivery the action already made is reported, never taken back. The write goes through
 * the run's batcher, so a burst of approvals shares D1 round trips; an email's claim may
 * come from `claims`, made for many emails of the run at once (email-claims.ts).
 */
export async function executeAction(env: Env, writes: D1Batcher, spec: RunPlan, action: ActionRow, claims?: Promise<Claims>): Promise<Execution> {
  const actionKey = actionKeyOf(spec, action);
  const channel = CHANNEL[action.type];
  const now = Date.now();
  const outbound = reachesPerson(action.type);
  if (outbound && !spec.sender) throw new ExecutionError("The agent has no sending identity; outbound actions need one", true);
  const to = action.type === "email_message" ? String(action.params.to) : null;
  const profile = outbound && action.type !== "email_message" ? String(action.params.profile_url) : null;
  const guard = [action.contactId, to, profile, spec.triggeredAt];

  let inserted: { id: string } | null;
  if (action.type === "email_message") {
    let sent;
    try {
      const claimed = (await (claims ?? claimEmails(env, writes, spec, [action]))).get(actionKey);
      sent = await sendEmail(env, writes, spec, action, claimed);
    } catch (error) {
      if (error instanceof SendError) throw new ExecutionError(error.message, error.kind === "permanent", error.retryAfterMs);
      throw error;
    }
    if (sent?.kind === "deferred") return sent;
    if (sent) return { kind: "done", result: { delivery_id: sent.deliveryId, channel } };
  } else if (action.type === "create_note") {
    inserted = await writes.first(
      env.DB.prepare(
        `INSERT INTO notes (id, workspace_id, contact_id, body, action_key, run_id, created_at)
         SELECT ?5, c.workspace_id, c.id, ?6, ?7, ?8, ?4 FROM contacts c WHERE ${reachable({ contact: "?1", email: "?2", profile: "?3", triggeredAt: "?9", run: "?8" })}
         ON CONFLICT (action_key) DO NOTHING RETURNING id`,
      ).bind(action.contactId, null, null, now, newId("note"), String(action.params.note), actionKey, spec.runId, spec.triggeredAt),
    );
    if (inserted) return { kind: "done", result: { note_id: inserted.id } };
  } else {
    // LinkedIn, CRM and task actions are delivered to the outbox, for a person or an integration to
    // carry out. A LinkedIn delivery marks the contact contacted (a trigger in migration 0006).
    inserted = await writes.first(
      env.DB.prepare(
        `INSERT INTO deliveries (id, workspace_id, action_key, run_id, agent_id, contact_id, action_index, action_type, identity_id, channel, params, created_at)
         SELECT ?5, c.workspace_id, ?7, ?8, ?9, c.id, ?10, ?11, ?12, ?13, ?14, ?6 FROM contacts c WHERE ${REACHABLE}
         ON CONFLICT (action_key) DO NOTHING RETURNING id`,
      ).bind(...guard, newId("dlv"), now, actionKey, spec.runId, spec.agentId, action.index, action.type, action.identityId, channel, JSON.stringify(action.params)),
    );
    if (inserted) return { kind: "done", result: { delivery_id: inserted.id, channel } };
  }
  return explain(env, spec, action, actionKey, channel);
}

/**
 * What an earlier execution of the action recorded, asked before giving up on it: a delivery
 * made (`done`), one handed to a provider that never confirmed it (`unconfirmed`), or nothing.
 * A later day's slot the action held under the daily limit is given back: it never left.
 */
export async function findDone(env: Env, spec: RunPlan, action: ActionRow): Promise<{ done: ActionParams } | { unconfirmed: string } | null> {
  const actionKey = actionKeyOf(spec, action);
  if (action.type === "create_note") {
    const note = await env.DB.prepare(`SELECT id FROM notes WHERE action_key = ?`).bind(actionKey).first<{ id: string }>();
    return note ? { done: { note_id: note.id } } : null;
  }
  const [, row] = await env.DB.batch<{ id: string; status: string; transport: string }>([
    releaseHeld(env, actionKey),
    env.DB.prepare(`SELECT id, status, transport FROM deliveries WHERE action_key = ?`).bind(actionKey),
  ]);
  const delivery = row!.results[0];
  if (!delivery || delivery.status === "failed") return null;
  if (delivery.status === "sending") return { unconfirmed: `Handed to ${delivery.transport}, which never confirmed it; not sent again, so it cannot arrive twice` };
  return { done: { delivery_id: delivery.id, channel: CHANNEL[action.type] } };
}

/** Gives back a later day's slot an email held: it never left, so nothing of it stays on record. */
const releaseHeld = (env: Env, actionKey: string) => env.DB.prepare(`DELETE FROM deliveries WHERE action_key = ? AND status = 'scheduled'`).bind(actionKey);

/** An email given up on (its attempts spent): a later day's slot it held is freed, and the outbox shows why. */
export async function giveUpDelivery(env: Env, spec: RunPlan, action: ActionRow, error: string): Promise<void> {
  if (action.type !== "email_message") return;
  await env.DB.prepare(`UPDATE deliveries SET status = 'failed', error = ?2, updated_at = ?3 WHERE action_key = ?1 AND status = 'scheduled'`)
    .bind(actionKeyOf(spec, action), error, Date.now())
    .run();
}

/** Why nothing was written: delivered already, the contact left, or its address changed. */
async function explain(env: Env, spec: RunPlan, action: ActionRow, actionKey: string, channel: string): Promise<Execution> {
  const table = action.type === "create_note" ? "notes" : "deliveries";
  const row = await env.DB.prepare(
    `SELECT (SELECT id FROM ${table} WHERE action_key = ?2${table === "deliveries" ? ` AND ${DELIVERED}` : ""}) AS done, c.id AS contact, c.unsubscribed, c.email, c.first_name, c.last_name,
       c.company, c.job_title, c.lifecycle_stage, c.linkedin_url,
       (SELECT status FROM runs WHERE id = ?4) AS run_status,
       (SELECT e.type FROM events e WHERE e.contact_id = ?1 AND (e.type = 'email.bounced' OR (e.type IN ('email.replied', 'contact.unsubscribed') AND e.created_at >= ?3))
        ORDER BY e.created_at DESC LIMIT 1) AS stop_event
     FROM (SELECT 1) LEFT JOIN contacts c ON c.id = ?1`,
  )
    .bind(action.contactId, actionKey, spec.triggeredAt, spec.runId)
    .first<{ done: string | null; run_status: string | null; contact: string | null; unsubscribed: number; stop_event: string | null } & Record<string, string | null>>();
  if (row?.done) return { kind: "done", result: action.type === "create_note" ? { note_id: row.done } : { delivery_id: row.done, channel } };
  const outcome = whyNot(action, row);
  // A later day's slot held for an email that will not go is given back.
  if (action.type === "email_message") await releaseHeld(env, actionKey).run();
  return outcome;
}

function whyNot(action: ActionRow, row: ({ run_status: string | null; contact: string | null; unsubscribed: number; stop_event: string | null } & Record<string, string | null>) | null): Execution {
  if (!row || !(ACTIVE_RUN_STATUSES as readonly string[]).includes(row.run_status ?? "")) return { kind: "stopped", reason: "cancelled" };
  if (!row.contact) return { kind: "stopped", reason: "contact_deleted" };
  if (row.unsubscribed) return { kind: "stopped", reason: "unsubscribe" };
  if (row.stop_event) return { kind: "stopped", reason: STOP_EVENTS[row.stop_event]! };
  if (addressedElsewhere(action, { email: row.email!, linkedin_url: row.linkedin_url ?? null })) {
    const snapshot: ContactSnapshot = {
      id: row.contact,
      email: row.email!,
      first_name: row.first_name ?? null,
      last_name: row.last_name ?? null,
      company: row.company ?? null,
      job_title: row.job_title ?? null,
      lifecycle_stage: row.lifecycle_stage ?? null,
      linkedin_url: row.linkedin_url ?? null,
      unsubscribed: false,
    };
    return { kind: "changed", snapshot };
  }
  if (action.type === "email_message") {
    throw new ExecutionError(`No sending day in the next ${SEND_DAYS_AHEAD} has room under the identity's daily limit, or the send could not be recorded; it will be retried`);
  }
  throw new ExecutionError("The action could not be recorded; it will be retried");
}
