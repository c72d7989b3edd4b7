import type { Env } from "../env";
import type { D1Batcher } from "../lib/d1-batcher";
import { newId } from "../lib/ids";
import type { StopReason } from "./machine";
import { CHANNEL, reachesPerson, type ActionParams } from "./actions";
import type { ActionRow } from "./run-store";
import { STOP_EVENTS, type ContactSnapshot, type RunPlan } from "./spec";

export type Execution =
  | { kind: "done"; result: ActionParams }
  /** The contact left the sequence (deleted, opted out, bounced, replied): nothing was sent. */
  | { kind: "stopped"; reason: StopReason }
  /** The contact's address is no longer the one the action was written for: nothing was sent. */
  | { kind: "changed"; snapshot: ContactSnapshot };

/** An execution that failed; a permanent one is not retried. */
export class ExecutionError extends Error {
  constructor(
    message: string,
    readonly permanent = false,
  ) {
    super(message);
  }
}


// The contact may be reached only while its run is active in D1 (not cancelled there, nor
// deleted with its agent) and the contact exists, is subscribed, has not bounced, has
// not replied or unsubscribed since the trigger, and still has the address the action was
// written for. Written into the insert itself, so the check and the delivery are one
// statement: nothing can change in between.
const REACHABLE = `c.id = ?1 AND c.unsubscribed = 0
  AND EXISTS (SELECT 1 FROM runs r WHERE r.id = ?8 AND r.status IN ('queued', 'running', 'awaiting_approval'))
  AND (?2 IS NULL OR c.email_key = lower(?2)) AND (?3 IS NULL OR c.linkedin_url = ?3)
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id
    AND (e.type = 'email.bounced' OR (e.type IN ('email.replied', 'contact.unsubscribed') AND e.created_at >= ?4)))`;

/**
 * Carries out an approved action. Each write is keyed by the action, so running this
 * twice (an alarm retried, an approval racing an alarm) leaves one note or one delivery;
 * a delivery the action already made is reported, never taken back. The write goes through
 * the run's batcher, so a burst of approvals shares D1 round trips.
 */
export async function executeAction(env: Env, writes: D1Batcher, spec: RunPlan, action: ActionRow): Promise<Execution> {
  const actionKey = `${spec.runId}/${action.contactId}/${action.index}`;
  const channel = CHANNEL[action.type];
  const now = Date.now();
  const outbound = reachesPerson(action.type);
  if (outbound && !spec.sender) throw new ExecutionError("The agent has no sending identity; outbound actions need one", true);
  const to = action.type === "email_message" ? String(action.params.to) : null;
  const profile = outbound && action.type !== "email_message" ? String(action.params.profile_url) : null;
  const guard = [action.contactId, to, profile, spec.triggeredAt];

  let inserted: { id: string } | null;
  if (action.type === "create_note") {
    inserted = await writes.first(
      env.DB.prepare(
        `INSERT INTO notes (id, workspace_id, contact_id, body, action_key, run_id, created_at)
         SELECT ?5, c.workspace_id, c.id, ?6, ?7, ?8, ?4 FROM contacts c WHERE ${REACHABLE.replace("e.created_at >= ?4", "e.created_at >= ?9")}
         ON CONFLICT (action_key) DO NOTHING RETURNING id`,
      ).bind(action.contactId, null, null, now, newId("note"), String(action.params.note), actionKey, spec.runId, spec.triggeredAt),
    );
    if (inserted) return { kind: "done", result: { note_id: inserted.id } };
  } else {
    // An email or LinkedIn delivery marks the contact contacted (a trigger in migration 0006).
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

/** What an earlier execution of the action recorded, if any: asked before giving up on it. */
export async function findDone(env: Env, spec: RunPlan, action: ActionRow): Promise<ActionParams | null> {
  const actionKey = `${spec.runId}/${action.contactId}/${action.index}`;
  const note = action.type === "create_note";
  const row = await env.DB.prepare(`SELECT id FROM ${note ? "notes" : "deliveries"} WHERE action_key = ?`).bind(actionKey).first<{ id: string }>();
  if (!row) return null;
  return note ? { note_id: row.id } : { delivery_id: row.id, channel: CHANNEL[action.type] };
}

/** Why nothing was written: delivered already, the contact left, or its address changed. */
async function explain(env: Env, spec: RunPlan, action: ActionRow, actionKey: string, channel: string): Promise<Execution> {
  const table = action.type === "create_note" ? "notes" : "deliveries";
  const row = await env.DB.prepare(
    `SELECT (SELECT id FROM ${table} WHERE action_key = ?2) AS done, c.id AS contact, c.unsubscribed, c.email, c.first_name, c.last_name,
       c.company, c.job_title, c.lifecycle_stage, c.linkedin_url,
       (SELECT status FROM runs WHERE id = ?4) AS run_status,
       (SELECT e.type FROM events e WHERE e.contact_id = ?1 AND (e.type = 'email.bounced' OR (e.type IN ('email.replied', 'contact.unsubscribed') AND e.created_at >= ?3))
        ORDER BY e.created_at DESC LIMIT 1) AS stop_event
     FROM (SELECT 1) LEFT JOIN contacts c ON c.id = ?1`,
  )
    .bind(action.contactId, actionKey, spec.triggeredAt, spec.runId)
    .first<{ done: string | null; run_status: string | null; contact: string | null; unsubscribed: number; stop_event: string | null } & Record<string, string | null>>();
  if (row?.done) return { kind: "done", result: action.type === "create_note" ? { note_id: row.done } : { delivery_id: row.done, channel } };
  if (!row || !["queued", "running", "awaiting_approval"].includes(row.run_status ?? "")) return { kind: "stopped", reason: "cancelled" };
  if (!row.contact) return { kind: "stopped", reason: "contact_deleted" };
  if (row.unsubscribed) return { kind: "stopped", reason: "unsubscribe" };
  if (row.stop_event) return { kind: "stopped", reason: STOP_EVENTS[row.stop_event]! };
  if (action.type === "email_message" || action.type.startsWith("linkedin_")) {
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
  throw new ExecutionError("The action could not be recorded; it will be retried");
}
