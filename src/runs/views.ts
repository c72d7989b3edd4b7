import { sendEstimates } from "../delivery/estimate";
import { iso } from "../lib/time";
import type { ContactStatus } from "./machine";
import { toAction, toContact } from "./run-rows";
import type { ActionRow, ContactRow, RunRow, RunStore } from "./run-store";
import type { RunPlan } from "./spec";

/** Which contacts of a run to show: a page in trigger order, optionally of one status. */
export type ContactsPage = { offset: number; limit: number; status?: ContactStatus };

/**
 * A page stops growing once its contacts' JSON passes this many bytes (it always holds at
 * least one contact), so no answer grows with what was stored; the rest is on the next page.
 */
export const PAGE_BUDGET_BYTES = 1024 * 1024;
/** What a contact's entry holds besides its actions' text: ids, statuses, times, its details. */
const CONTACT_OVERHEAD_BYTES = 300;

/** The action object of CONTRACT.md section 4. */
export function toActionJson(a: ActionRow) {
  return {
    index: a.index,
    step_id: a.stepId,
    type: a.type,
    status: a.status,
    identity_id: a.identityId,
    params: a.params,
    ...(a.originalParams ? { original_params: a.originalParams } : {}),
    reasoning: a.reasoning,
    digest: a.digest,
    proposed_at: iso(a.proposedAt),
    decided_at: iso(a.decidedAt),
    decision: a.decision
      ? { type: a.decision.kind, by_key_id: a.decision.by_key_id, reason: a.decision.reason, edited: a.decision.edited }
      : null,
    scheduled_for: iso(a.scheduledFor),
    attempts: a.attempts,
    executed_at: iso(a.executedAt),
    result: a.result,
    error: a.error,
    generation: a.generation,
    /** For a pending email: when it would go out if approved now (the run object fills it in). */
    estimated_send_at: null as string | null,
  };
}
export type ActionJson = ReturnType<typeof toActionJson>;

/** A contact's progress through the run, with its details as the run knows them. */
function toContactProgress(spec: RunPlan, c: ContactRow, actions: ActionRow[]) {
  const finished = c.currentStep >= spec.steps.length;
  const s = c.snapshot;
  return {
    contact_id: c.contactId,
    // Kept current by the signals every change of these fields sends to active runs.
    contact: s && { email: s.email, first_name: s.first_name, last_name: s.last_name, company: s.company, job_title: s.job_title, lifecycle_stage: s.lifecycle_stage },
    status: c.status,
    current_step: finished ? null : c.currentStep,
    current_step_id: finished ? null : spec.steps[c.currentStep]!.id,
    next_step_at: iso(c.nextStepAt),
    stop_reason: c.stopReason,
    actions: actions.map(toActionJson),
  };
}

/** The run without its contacts: what a cancel answers, and what heads every page. */
export function runSummary(store: RunStore, run: RunRow, contactCount = Number(store.sql.exec("SELECT count(*) AS n FROM contacts").one().n)) {
  const { spec } = run;
  return {
    id: spec.runId,
    job_id: spec.jobId,
    agent_id: spec.agentId,
    status: run.status,
    trigger: spec.trigger,
    contact_count: contactCount,
    counts: store.counts(),
    usage: store.usage(),
    created_at: iso(spec.triggeredAt)!,
    started_at: iso(run.startedAt),
    completed_at: iso(run.completedAt),
    error: run.error,
  };
}

/** The run's summary and one budgeted page of its contacts, as the run object answers it. */
export function runView(store: RunStore, run: RunRow, page: ContactsPage) {
  const { spec } = run;
  const { sql } = store;
  const where = page.status ? "WHERE status = ?" : "";
  const args = page.status ? [page.status] : [];
  const rows = sql.exec(`SELECT * FROM contacts ${where} ORDER BY position LIMIT ? OFFSET ?`, ...args, page.limit, page.offset).toArray().map(toContact);
  const count = (filter: string, ...values: SqlStorageValue[]) => Number(sql.exec(`SELECT count(*) AS n FROM contacts ${filter}`, ...values).one().n);
  const total = count(where, ...args);
  // Sized from the stored text, so nothing past the budget is read or parsed.
  const sizes = actionBytes(sql, rows.map((r) => r.contactId));
  let bytes = 0;
  let fits = 0;
  for (const row of rows) {
    bytes += CONTACT_OVERHEAD_BYTES + (sizes.get(row.contactId) ?? 0);
    if (fits > 0 && bytes > PAGE_BUDGET_BYTES) break;
    fits++;
  }
  const kept = rows.slice(0, fits);
  const actions = Map.groupBy(actionsOf(sql, kept.map((r) => r.contactId)), (a) => a.contactId);
  const contacts = kept.map((row) => toContactProgress(spec, row, actions.get(row.contactId) ?? []));
  const next = page.offset + contacts.length;
  return {
    ...runSummary(store, run, page.status ? count("") : total),
    contacts_total: total,
    contacts_next_offset: next < total ? next : null,
    contacts,
  };
}
export type RunView = ReturnType<typeof runView>;

/**
 * Fills in `estimated_send_at` on the page's pending emails: when each would go out if approved
 * now, given the send window and the identity's daily limit. The run's queue goes first: emails
 * approved but not yet claimed (waiting for the window) take the next free slots, then pending
 * emails take them in the order they were proposed, across every page of the run. Emails of
 * other runs count once claimed. Left null should D1 not answer: a run is still worth showing.
 */
export async function withSendEstimates(db: D1Database, sql: SqlStorage, spec: RunPlan, view: RunView, now = Date.now()): Promise<RunView> {
  const onPage = new Map(view.contacts.flatMap((c) => c.actions.filter((a) => a.status === "pending_approval" && a.type === "email_message").map((a) => [`${c.contact_id}/${a.index}`, a])));
  if (onPage.size === 0 || !spec.sender) return view;
  // Each page email's place in the run's queue, ranked inside SQLite: no other row is copied out.
  const places = sql
    .exec(
      `WITH queue AS (SELECT contact_id, idx, row_number() OVER (ORDER BY proposed_at, contact_id, idx) - 1 AS n
                      FROM actions WHERE type = 'email_message' AND status = 'pending_approval')
       SELECT queue.contact_id || '/' || queue.idx AS key, queue.n + (SELECT count(*) FROM actions WHERE type = 'email_message'
                AND attempts = 0 AND status IN ('approved', 'auto_approved', 'scheduled')) AS place
       FROM queue JOIN json_each(?) page ON page.value = queue.contact_id || '/' || queue.idx`,
      JSON.stringify([...onPage.keys()]),
    )
    .toArray();
  const place = new Map(places.map((r) => [r.key as string, Number(r.place)]));
  const slots = await sendEstimates(db, spec.sender.id, spec.sender.send_window ?? null, now, Math.max(...place.values()) + 1).catch(() => []);
  for (const [key, action] of onPage) action.estimated_send_at = iso(slots[place.get(key) ?? -1] ?? null);
  return view;
}

const byContacts = "FROM actions JOIN json_each(?) AS ids ON ids.value = actions.contact_id";

/** Every action of these contacts, in one read. */
function actionsOf(sql: SqlStorage, contactIds: string[]): ActionRow[] {
  if (contactIds.length === 0) return [];
  return sql.exec(`SELECT actions.* ${byContacts} ORDER BY contact_id, idx`, JSON.stringify(contactIds)).toArray().map(toAction);
}

/** Roughly how many bytes each contact's actions take as JSON, from their stored text. */
function actionBytes(sql: SqlStorage, contactIds: string[]): Map<string, number> {
  if (contactIds.length === 0) return new Map();
  const rows = sql.exec(
    `SELECT contact_id, sum(length(params) + length(reasoning) + coalesce(length(original_params), 0) + coalesce(length(result), 0)
       + coalesce(length(error), 0) + coalesce(length(decision), 0) + 350) AS bytes ${byContacts} GROUP BY contact_id`,
    JSON.stringify(contactIds),
  );
  return new Map(rows.toArray().map((r) => [r.contact_id as string, Number(r.bytes)]));
}
