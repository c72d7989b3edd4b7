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

/** Outbound actions are checked against the contact's latest state right before they go. */
async function stopSignal(db: Db, spec: RunPlan, contactId: string, since: number): Promise<string | null> {
  const types = Object.keys(STOP_EVENTS).filter((type) => spec.stopOn.includes(STOP_EVENTS[type]!) || type === "contact.unsubscribed");
  const [row] = await db
    .select({
      unsubscribed: contacts.unsubscribed,
      // The id as a parameter, not ${contacts.id}: drizzle writes columns in a one-table select
      // unqualified, and a bare "id" inside this subquery would be the event's own id.
      stopEvent: sql<string | null>`(SELECT ${events.type} FROM ${events} WHERE ${events.contactId} = ${contactId} AND ${inArray(events.type, types)} AND ${events.createdAt} >= ${since} LIMIT 1)`,
    })
    .from(contacts)
    .where(eq(contacts.id, contactId));
  if (!row) return "contact_deleted";
  if (row.unsubscribed) return "unsubscribe";
  return row.stopEvent ? STOP_EVENTS[row.stopEvent]! : null;
}

/**
 * Carries out an approved action. Each write is keyed by the action, so running this
 * twice (an alarm retried, an approval racing an alarm) leaves one note or one delivery.
 */
export async function executeAction(env: Env, spec: RunPlan, action: ActionRow, runStartedAt: number): Promise<Execution> {
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

  const stop = await stopSignal(db, spec, action.contactId, runStartedAt);
  if (stop) return { kind: "stopped", reason: stop };

  const channel = CHANNEL[action.type];
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
    .onConflictDoNothing();
  const stored = db.select({ id: deliveries.id }).from(deliveries).where(eq(deliveries.actionKey, actionKey));
  // Reaching the contact (not syncing or tasking about them) counts as contacting them.
  const results =
    channel === "email" || channel === "linkedin"
      ? await db.batch([record, db.update(contacts).set({ lastContactedAt: now }).where(eq(contacts.id, action.contactId)), stored])
      : await db.batch([record, stored]);
  const [delivery] = results.at(-1) as { id: string }[];
  return { kind: "done", result: { delivery_id: delivery!.id, channel } };
}
