import { newMessageId, type EventType, type WebhookEvent } from "../webhooks/events";
import type { ActionStatus, RunStatus } from "./machine";
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
export function actionEventData(run: RunRow, action: ActionRow): Record<string, unknown> {
  const { estimated_send_at: _estimate, ...json } = toActionJson(action);
  return { ...json, run_id: run.spec.runId, agent_id: run.spec.agentId, contact_id: action.contactId };
}

export function contactStoppedData(run: RunRow, contactId: string, reason: string): Record<string, unknown> {
  return { run_id: run.spec.runId, agent_id: run.spec.agentId, contact_id: contactId, status: "stopped", stop_reason: reason };
}

/**
 * The run object's outbox: events wait here, written in the same storage transaction as the
 * transition that caused them, until the D1 mirror copies them (src/runs/mirror.ts).
 */
export class RunOutbox {
  constructor(private readonly sql: SqlStorage) {}

  add(type: EventType, data: Record<string, unknown>, now = Date.now()): void {
    this.sql.exec("INSERT INTO webhook_outbox (id, type, data, created_at) VALUES (?, ?, ?, ?)", newMessageId(now), type, JSON.stringify(data), now);
  }

  /** The oldest events not yet in D1, with the position to clear them up to. */
  pending(workspaceId: string, limit: number): { events: WebhookEvent[]; upTo: number } {
    const rows = this.sql.exec("SELECT seq, id, type, data, created_at FROM webhook_outbox ORDER BY seq LIMIT ?", limit).toArray();
    const events = rows.map((r) => ({ id: r.id as string, workspaceId, type: r.type as string, data: JSON.parse(r.data as string), createdAt: Number(r.created_at) }));
    return { events, upTo: rows.length > 0 ? Number(rows.at(-1)!.seq) : 0 };
  }

  isEmpty(): boolean {
    return this.sql.exec("SELECT EXISTS (SELECT 1 FROM webhook_outbox) AS yes").one().yes === 0;
  }

  /** Drops pending events of `type`: another writer announced that transition already. */
  discard(type: EventType): void {
    this.sql.exec("DELETE FROM webhook_outbox WHERE type = ?", type);
  }

  /** Forgets the events up to `seq`, now that D1 holds them. */
  clear(upTo: number): void {
    this.sql.exec("DELETE FROM webhook_outbox WHERE seq <= ?", upTo);
  }
}
