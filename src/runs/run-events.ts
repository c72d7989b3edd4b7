import { newMessageId } from "../lib/ids";
import type { EventType, WebhookEvent } from "../webhooks/events";
import type { ActionStatus, RunStatus } from "./machine";
import type { SendWindow } from "../db/schema";
import type { ContactSnapshot, RunPlan } from "./spec";
import type { ActionRow, RunRow, RunStore } from "./run-store";
import { runSummary, toActionJson } from "./views";

/** The run statuses whose arrival is an event; `running` again after an approval is not. */
export const RUN_EVENTS: Partial<Record<RunStatus, EventType>> = {
  awaiting_approval: "run.awaiting_approval",
  completed: "run.completed",
  failed: "run.failed",
  cancelled: "run.cancelled",
};

/** The action statuses whose arrival is an event (a proposal is `action.proposed`, from insertAction). */
export const ACTION_EVENTS: Partial<Record<ActionStatus, EventType>> = {
  approved: "action.approved",
  auto_approved: "action.approved",
  rejected: "action.rejected",
  completed: "action.executed",
  failed: "action.failed",
  invalidated: "action.invalidated",
};

/** A run event's `data`: the run's summary, as D1's `runs_unstarted_event` trigger also writes it. */
export function runEventData(store: RunStore, run: RunRow): Record<string, unknown> {
  return { ...runSummary(store, run), run_id: run.spec.runId };
}

/** An action event's `data`: the action, and whose it is. */
export function actionEventData(plan: RunPlan, action: ActionRow): Record<string, unknown> {
  const { estimated_send_at: _estimate, ...json } = toActionJson(action);
  return { ...json, run_id: plan.runId, agent_id: plan.agentId, contact_id: action.contactId };
}

export function contactStoppedData(plan: RunPlan, contactId: string, reason: string): Record<string, unknown> {
  return { run_id: plan.runId, agent_id: plan.agentId, contact_id: contactId, status: "stopped", stop_reason: reason };
}

/** Bytes of outbox entries one mirror copies: each kind travels as one bound JSON string, which D1 caps at 2 MB. */
const OUTBOX_BYTES = 500_000;

/** An action waiting for a human, as the approvals inbox (D1's `approvals`) holds it. */
export type InboxEntry = {
  contact_id: string;
  action_index: number;
  type: string;
  identity_id: string | null;
  send_window: SendWindow | null;
  proposed_at: number;
  action: Record<string, unknown>;
  contact: Record<string, unknown>;
};
export type InboxChanges = { add: InboxEntry[]; remove: { contact_id: string; action_index: number }[] };

/** The inbox's entry for a pending action: the action as the run view shows it, and its contact's summary. */
export function inboxEntry(action: ActionRow, contact: ContactSnapshot | null, sender: RunPlan["sender"]): InboxEntry {
  const { estimated_send_at: _estimate, ...json } = toActionJson(action);
  const summary = contact && { id: contact.id, email: contact.email, first_name: contact.first_name, last_name: contact.last_name, company: contact.company, job_title: contact.job_title };
  return {
    contact_id: action.contactId,
    action_index: action.index,
    type: action.type,
    identity_id: action.identityId,
    send_window: sender && sender.id === action.identityId ? (sender.send_window ?? null) : null,
    proposed_at: action.proposedAt,
    action: json,
    contact: summary ?? { id: action.contactId },
  };
}

/**
 * The run object's outbox: what D1 must learn from it, each written in the same storage
 * transaction as the transition that caused it, kept until the D1 mirror copies it
 * (src/runs/mirror.ts): webhook events, and the approvals inbox's additions and removals.
 */
export class RunOutbox {
  constructor(private readonly sql: SqlStorage) {}

  add(type: EventType, data: Record<string, unknown>, now = Date.now()): void {
    this.sql.exec("INSERT INTO outbox (kind, id, type, data, created_at) VALUES ('event', ?, ?, ?, ?)", newMessageId(now), type, JSON.stringify(data), now);
  }

  /** Many events in one statement, in the order given. */
  addAll(events: { type: EventType; data: Record<string, unknown> }[], now = Date.now()): void {
    if (events.length === 0) return;
    this.sql.exec(
      "INSERT INTO outbox (kind, id, type, data, created_at) SELECT 'event', e.value ->> 0, e.value ->> 1, e.value -> 2, ? FROM json_each(?) AS e ORDER BY e.key",
      now,
      JSON.stringify(events.map((e) => [newMessageId(now), e.type, e.data])),
    );
  }

  /** The action now waits for a human: the inbox lists it. */
  addToInbox(entry: InboxEntry): void {
    this.sql.exec("INSERT INTO outbox (kind, id, type, data, created_at) VALUES ('inbox', '', 'add', ?, ?)", JSON.stringify(entry), Date.now());
  }

  /** The actions no longer wait (decided, stopped, cancelled): the inbox drops them. A removal of an action it never listed removes nothing. */
  removeAllFromInbox(actions: { contactId: string; index: number }[]): void {
    if (actions.length === 0) return;
    this.sql.exec(
      "INSERT INTO outbox (kind, id, type, data, created_at) SELECT 'inbox', '', 'remove', json_object('contact_id', r.value ->> 0, 'action_index', r.value ->> 1), ? FROM json_each(?) AS r ORDER BY r.key",
      Date.now(),
      JSON.stringify(actions.map((a) => [a.contactId, a.index])),
    );
  }

  /** The oldest entries not yet in D1, with the position to clear them up to. */
  pending(workspaceId: string, limit: number, maxBytes = OUTBOX_BYTES): { events: WebhookEvent[]; inbox: InboxChanges; upTo: number } {
    // D1 refuses a bound string over 2 MB: the entries copied at once stop short of half a megabyte
    // (always at least one), room for the escaping their JSON gets on the way.
    const rows = this.sql
      .exec(
        `SELECT seq, kind, id, type, data, created_at FROM (
           SELECT *, sum(length(data)) OVER (ORDER BY seq) AS upto FROM outbox ORDER BY seq LIMIT ?
         ) WHERE upto - length(data) < ?`,
        limit,
        maxBytes,
      )
      .toArray();
    const events: WebhookEvent[] = [];
    const inbox: InboxChanges = { add: [], remove: [] };
    for (const r of rows) {
      const data = JSON.parse(r.data as string);
      if (r.kind === "event") events.push({ id: r.id as string, workspaceId, type: r.type as string, data, createdAt: Number(r.created_at) });
      else if (r.type === "add") inbox.add.push(data);
      else inbox.remove.push(data);
    }
    return { events, inbox, upTo: rows.length > 0 ? Number(rows.at(-1)!.seq) : 0 };
  }

  isEmpty(): boolean {
    return this.sql.exec("SELECT EXISTS (SELECT 1 FROM outbox) AS yes").one().yes === 0;
  }

  /** Drops every pending event: D1 cancelled the run before it ever heard from this object, and said so itself. */
  discardEvents(): void {
    this.sql.exec("DELETE FROM outbox WHERE kind = 'event'");
  }

  /** Forgets the entries up to `seq`, now that D1 holds them. */
  clear(upTo: number): void {
    this.sql.exec("DELETE FROM outbox WHERE seq <= ?", upTo);
  }
}
