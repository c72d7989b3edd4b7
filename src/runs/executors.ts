import { eq, inArray, sql } from "drizzle-orm";
import { createDb, type Db } from "../db/client";
import { contacts, deliveries, events, notes } from "../db/schema";
import type { Env } from "../env";
import { newId } from "../lib/ids";
import { CHANNEL, type ActionParams } from "./actions";
import type { ActionRow } from "./run-store";
import { STOP_EVENTS, type RunPlan } from "./spec";

export type Execution =
  | { kind: "done"; result: ActionParams }
  | { kind: "stopped"; reason: string };

/**
 * Outbound actions are checked against the contact's latest state right before they go:
 * unsubscribed, or a stop event since the run was triggered. A delivery this action
 * already made (a retry after a crash) is reported first, so it is never taken back.
 */
async function preflight(db: Db, spec: RunPlan, contactId: string, actionKey: string): Promise<{ delivered: string | null; stop: string | null }> {
  const types = Object.keys(STOP_EVENTS).filter((type) => spec.stopOn.includes(STOP_EVENTS[type]!) || type === "contact.unsubscribed");
  const [row] = await db
    .select({
      unsubscribed: contacts.unsubscribed,
      // The id as a parameter, not ${contacts.id}: drizzle writes columns in a one-table select
      // unqualified, and a bare "id" inside this subquery would be the event's own id.
      stopEvent: sql<string | null>`(SELECT ${events.type} FROM ${events} WHERE ${events.contactId} = ${contactId} AND ${inArray(events.type, types)} AND ${events.createdAt} >= ${spec.triggeredAt} LIMIT 1)`,
      delivered: sql<string | null>`(SELECT ${deliveries.id} FROM ${deliveries} WHERE ${deliveries.actionKey} = ${actionKey})`,
    })
    .from(contacts)
    .where(eq(contacts.id, contactId));
  if (!row) return { delivered: null, stop: "contact_deleted" };
  if (row.delivered) return { delivered: row.delivered, stop: null };
  return { delivered: null, stop: row.unsubscribed ? "unsubscribe" : row.stopEvent ? STOP_EVENTS[row.stopEvent]! : null };
}

/**
 * Carries out an approved action. Each write is keyed by the action, so running this
 * twice (an alarm retried, an approval racing an alarm) leaves one note or one delivery.
 */
export async function executeAction(env: Env, spec: RunPlan, action: ActionRow): Promise<Execution> {
  const db = createDb(env.DB);
  const actionKey = `${spec.runId}/${action.contactId}/${action.index}`;
  const now = new Date();

  if (action.type === "create_note") {
    const [, [note]] = await db.batch([
      db
        .insert(notes)
        .values({ id: newId("note"), workspaceId: spec.workspaceId, contactId: action.contactId, body: String(action.params.note), actionKey, runId: spec.runId, createdAt: now })
        .onConflictDoNothing(),
      db.select({ id: notes.id }).from(notes).where(eq(notes.actionKey, actionKey)),
    ]);
    return { kind: "done", result: { note_id: note!.id } };
  }

  const channel = CHANNEL[action.type];
  const { delivered, stop } = await preflight(db, spec, action.contactId, actionKey);
  if (delivered) return { kind: "done", result: { delivery_id: delivered, channel } };
  if (stop) return { kind: "stopped", reason: stop };

  const record = db
    .insert(deliveries)
    .values({
      id: newId("dlv"),
      workspaceId: spec.workspaceId,
      actionKey,
      runId: spec.runId,
      agentId: spec.agentId,
      contactId: action.contactId,
      actionIndex: action.index,
      actionType: action.type,
      identityId: action.identityId,
      channel,
      params: action.params,
      createdAt: now,
    })
    .onConflictDoNothing()
    .returning({ id: deliveries.id });
  // Reaching the contact (not syncing or tasking about them) counts as contacting them.
  const [inserted] =
    channel === "email" || channel === "linkedin"
      ? (await db.batch([record, db.update(contacts).set({ lastContactedAt: now }).where(eq(contacts.id, action.contactId))]))[0]
      : await record;
  // Nothing inserted: a concurrent execution of this action delivered it first.
  const delivery = inserted ?? (await db.select({ id: deliveries.id }).from(deliveries).where(eq(deliveries.actionKey, actionKey)))[0];
  return { kind: "done", result: { delivery_id: delivery!.id, channel } };
}
