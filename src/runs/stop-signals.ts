import { and, eq, inArray } from "drizzle-orm";
import { findContactsByIds, type ContactRow } from "../contacts/contact-record";
import type { Db } from "../db/client";
import { runContacts, runs } from "../db/schema";
import type { Env, SignalMessage } from "../env";
import { batchRead, chunk, D1_MAX_PARAMS } from "../lib/d1";
import { ACTIVE_RUN_STATUSES, type StopReason } from "./machine";
import { runStub } from "./run-stub";
import { STOP_EVENTS, type ContactSnapshot } from "./spec";
import { dispatchNew } from "../webhooks/dispatch";

/** Runs told directly, in parallel, from the request; a contact in more runs than this is signalled through the queue. */
export const INLINE_SIGNAL_RUNS = 20;

export type ContactSignals = {
  stops?: { contactId: string; reason: StopReason }[];
  changes?: { contactId: string; snapshot: ContactSnapshot }[];
  /** Contacts whose details changed, by id: their current rows are read only if a run holds them. */
  changedIds?: string[];
};

/** The contact fields a run keeps (and shows, and writes its proposals from). */
const DETAIL_FIELDS = ["email", "first_name", "last_name", "company", "job_title", "lifecycle_stage", "linkedin_url"] as const;
export const changesDetails = (body: object) => DETAIL_FIELDS.some((field) => field in body);

/** What the run object keeps of a contact, from its D1 row. */
export const snapshotOf = (c: ContactRow): ContactSnapshot => ({
  id: c.id,
  email: c.email,
  first_name: c.firstName,
  last_name: c.lastName,
  company: c.company,
  job_title: c.jobTitle,
  lifecycle_stage: c.lifecycleStage,
  linkedin_url: c.linkedinUrl,
  unsubscribed: c.unsubscribed,
});

/** Stop events (reply, unsubscribe, bounce) recorded for contacts: their sequences stop. */
export async function signalStops(db: Db, env: Env, workspaceId: string, events: { contactId: string; type: string }[]): Promise<void> {
  const stops = events.flatMap((e) => (STOP_EVENTS[e.type] ? [{ contactId: e.contactId, reason: STOP_EVENTS[e.type]! }] : []));
  await signalContacts(db, env, workspaceId, { stops });
}

/**
 * Tells every active run that holds these contacts (queued ones included: their objects
 * keep the signal until they start) that they stopped or that their details changed: one call per run, made
 * in parallel, or one queue message per run when there are more than INLINE_SIGNAL_RUNS.
 * Failures are logged, not raised: the change is stored already, and executors re-check
 * every contact in the same statement that sends.
 */
export async function signalContacts(db: Db, env: Env, workspaceId: string, signals: ContactSignals): Promise<void> {
  const stops = signals.stops ?? [];
  let changes = signals.changes ?? [];
  const changedIds = signals.changedIds ?? [];
  const contactIds = [...new Set([...stops.map((s) => s.contactId), ...changes.map((s) => s.contactId), ...changedIds])];
  if (contactIds.length === 0) return;
  // An opt-out wrote contact.unsubscribed with it (a D1 trigger): sent now rather than at the sweep.
  if (stops.some((s) => s.reason === "unsubscribe")) await dispatchNew(env, workspaceId);
  const holders = await batchRead(
    db,
    chunk(contactIds, D1_MAX_PARAMS - 10).map((part) =>
      db
        .select({ runId: runContacts.runId, contactId: runContacts.contactId })
        .from(runContacts)
        .innerJoin(runs, eq(runs.id, runContacts.runId))
        .where(and(inArray(runContacts.contactId, part), eq(runs.workspaceId, workspaceId), inArray(runs.status, ACTIVE_RUN_STATUSES))),
    ),
  );
  const held = new Set(holders.map((h) => h.contactId));
  const toRead = changedIds.filter((id) => held.has(id));
  if (toRead.length > 0) changes = [...changes, ...(await findContactsByIds(db, workspaceId, toRead)).map((row) => ({ contactId: row.id, snapshot: snapshotOf(row) }))];
  const messages: SignalMessage[] = [...Map.groupBy(holders, (h) => h.runId)].map(([runId, held]) => {
    const ids = new Set(held.map((h) => h.contactId));
    return { kind: "signal", run_id: runId, stops: stops.filter((s) => ids.has(s.contactId)), changes: changes.filter((s) => ids.has(s.contactId)) };
  });
  try {
    if (messages.length > INLINE_SIGNAL_RUNS) {
      await Promise.all(chunk(messages, 100).map((part) => env.RUN_QUEUE.sendBatch(part.map((body) => ({ body })))));
      return;
    }
    const results = await Promise.allSettled(messages.map((m) => deliverSignal(env, m)));
    // A run that could not be told now is told through the queue, which retries it.
    const failed = messages.filter((_, i) => results[i]!.status === "rejected");
    if (failed.length > 0) await env.RUN_QUEUE.sendBatch(failed.map((body) => ({ body })));
  } catch (error) {
    logFailure(error);
  }
}

/** One run's signals, straight to its object. */
export async function deliverSignal(env: Env, message: SignalMessage): Promise<void> {
  const stub = runStub(env, message.run_id);
  if (message.stops.length > 0) await stub.stopContacts(message.stops);
  if (message.changes.length > 0) await stub.contactsChanged(message.changes);
}

const logFailure = (error: unknown) => console.error(JSON.stringify({ level: "error", message: "contact signal not delivered", error: String(error) }));
