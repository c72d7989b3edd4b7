import type { RunCounts, RunStatus } from "../db/schema";
import type { ActionType } from "../schemas/agents";
import type { ActionParams } from "./actions";
import { MIGRATIONS, num, parse, toAction, toContact } from "./run-rows";
import type { ContactSnapshot, RunPlan, RunSpec } from "./spec";

export type ContactStatus = "pending" | "processing" | "awaiting_approval" | "waiting" | "completed" | "stopped" | "failed";
export type ActionStatus =
  | "pending_approval"
  | "approved"
  | "auto_approved"
  | "rejected"
  | "scheduled"
  | "running"
  | "completed"
  | "failed"
  | "cancelled"
  | "invalidated";
export type Decision = { kind: "approve" | "reject"; by_key_id: string | null; reason: string | null; edited: boolean };

export type RunRow = { spec: RunPlan; status: RunStatus; createdAt: number; startedAt: number | null; completedAt: number | null; error: string | null };
export type ContactRow = {
  position: number;
  contactId: string;
  snapshot: ContactSnapshot;
  status: ContactStatus;
  currentStep: number;
  nextStepAt: number | null;
  stopReason: string | null;
};
export type ActionRow = {
  contactId: string;
  index: number;
  stepId: string;
  stepIndex: number;
  type: ActionType;
  status: ActionStatus;
  identityId: string | null;
  params: ActionParams;
  originalParams: ActionParams | null;
  reasoning: string;
  digest: string;
  proposedAt: number;
  decidedAt: number | null;
  decision: Decision | null;
  scheduledFor: number | null;
  executedAt: number | null;
  result: ActionParams | null;
  error: string | null;
};

export const TERMINAL_CONTACT: ContactStatus[] = ["completed", "stopped", "failed"];
/** Actions a stop condition or a cancel takes back. */
export const UNDONE: ActionStatus[] = ["pending_approval", "approved", "auto_approved", "scheduled"];

/** Typed access to one run's SQLite storage. Every method is synchronous: no interleaving. */
export class RunStore {
  /** The plan never changes once a run starts: parsed once, not on every read. */
  #plan: RunPlan | undefined;

  constructor(private readonly sql: SqlStorage) {}

  migrate(): void {
    this.sql.exec("CREATE TABLE IF NOT EXISTS _schema (version INTEGER NOT NULL)");
    const version = Number(this.sql.exec("SELECT coalesce(max(version), 0) AS v FROM _schema").one().v);
    MIGRATIONS.slice(version).forEach((statement, i) => {
      this.sql.exec(statement);
      this.sql.exec("INSERT INTO _schema (version) VALUES (?)", version + i + 1);
    });
  }

  run(): RunRow | null {
    const row = this.sql.exec("SELECT status, created_at, started_at, completed_at, error FROM run WHERE id = 1").toArray()[0];
    if (!row) {
      this.#plan = undefined;
      return null;
    }
    this.#plan ??= parse<RunPlan>(this.sql.exec("SELECT spec FROM run WHERE id = 1").one().spec);
    return {
      spec: this.#plan,
      status: row.status as RunStatus,
      createdAt: Number(row.created_at),
      startedAt: num(row.started_at),
      completedAt: num(row.completed_at),
      error: row.error as string | null,
    };
  }

  createRun(spec: RunSpec, now: number): void {
    // The contacts live in their own table; the run row keeps the rest of the spec.
    const { contacts: _contacts, ...plan } = spec;
    this.sql.exec("INSERT INTO run (id, spec, status, created_at, started_at) VALUES (1, ?, 'running', ?, ?)", JSON.stringify(plan), now, now);
    spec.contacts.forEach((contact, position) => {
      const unsubscribed = contact.unsubscribed;
      this.sql.exec(
        "INSERT INTO contacts (position, contact_id, snapshot, status, current_step, next_step_at, stop_reason) VALUES (?, ?, ?, ?, 0, ?, ?)",
        position,
        contact.id,
        JSON.stringify(contact),
        unsubscribed ? "stopped" : "pending",
        unsubscribed ? null : now + stepWait(spec, 0),
        unsubscribed ? "unsubscribe" : null,
      );
    });
  }

  /** The next number for a D1 summary write, taken synchronously so writes are ordered. */
  nextMirrorSeq(): number {
    return Number(this.sql.exec("UPDATE run SET mirror_seq = mirror_seq + 1 WHERE id = 1 RETURNING mirror_seq").one().mirror_seq);
  }

  setRunStatus(status: RunStatus, now: number, error: string | null = null): void {
    const finished = ["completed", "failed", "cancelled"].includes(status);
    this.sql.exec(
      "UPDATE run SET status = ?, error = coalesce(?, error), completed_at = CASE WHEN ? THEN coalesce(completed_at, ?) ELSE NULL END WHERE id = 1",
      status,
      error,
      finished ? 1 : 0,
      now,
    );
  }

  contact(contactId: string): ContactRow | null {
    const row = this.sql.exec("SELECT * FROM contacts WHERE contact_id = ?", contactId).toArray()[0];
    return row ? toContact(row) : null;
  }

  contacts(): ContactRow[] {
    return this.sql.exec("SELECT * FROM contacts ORDER BY position").toArray().map(toContact);
  }

  /** Contacts whose next step is due, oldest first. */
  dueContacts(now: number, limit: number): ContactRow[] {
    return this.sql
      .exec("SELECT * FROM contacts WHERE status IN ('pending', 'waiting') AND next_step_at <= ? ORDER BY next_step_at, position LIMIT ?", now, limit)
      .toArray()
      .map(toContact);
  }

  /** Writes only the given fields: no read of the row (and its snapshot) first. */
  updateContact(contactId: string, fields: Partial<Pick<ContactRow, "status" | "currentStep" | "nextStepAt" | "stopReason">>): void {
    const columns = { status: "status", currentStep: "current_step", nextStepAt: "next_step_at", stopReason: "stop_reason" } as const;
    const entries = Object.entries(fields).filter(([, value]) => value !== undefined) as [keyof typeof columns, SqlStorageValue][];
    if (entries.length === 0) return;
    this.sql.exec(
      `UPDATE contacts SET ${entries.map(([key]) => `${columns[key]} = ?`).join(", ")} WHERE contact_id = ?`,
      ...entries.map(([, value]) => value),
      contactId,
    );
  }

  action(contactId: string, index: number): ActionRow | null {
    const row = this.sql.exec("SELECT * FROM actions WHERE contact_id = ? AND idx = ?", contactId, index).toArray()[0];
    return row ? toAction(row) : null;
  }

  actionForStep(contactId: string, stepIndex: number): ActionRow | null {
    const row = this.sql.exec("SELECT * FROM actions WHERE contact_id = ? AND step_index = ?", contactId, stepIndex).toArray()[0];
    return row ? toAction(row) : null;
  }

  actionsOf(contactId: string): ActionRow[] {
    return this.sql.exec("SELECT * FROM actions WHERE contact_id = ? ORDER BY idx", contactId).toArray().map(toAction);
  }

  allActions(): ActionRow[] {
    return this.sql.exec("SELECT * FROM actions ORDER BY contact_id, idx").toArray().map(toAction);
  }

  /** Approved actions ready to carry out: now, or at their scheduled time. */
  dueActions(now: number, limit: number): ActionRow[] {
    return this.sql
      .exec(
        "SELECT * FROM actions WHERE status IN ('approved', 'auto_approved') OR (status IN ('scheduled', 'running') AND coalesce(scheduled_for, 0) <= ?) ORDER BY proposed_at LIMIT ?",
        now,
        limit,
      )
      .toArray()
      .map(toAction);
  }

  insertAction(action: Omit<ActionRow, "index">): ActionRow {
    const index = Number(this.sql.exec("SELECT count(*) AS n FROM actions WHERE contact_id = ?", action.contactId).one().n);
    this.sql.exec(
      `INSERT INTO actions (contact_id, idx, step_id, step_index, type, status, identity_id, params, reasoning, digest, proposed_at, error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      action.contactId,
      index,
      action.stepId,
      action.stepIndex,
      action.type,
      action.status,
      action.identityId,
      JSON.stringify(action.params),
      action.reasoning,
      action.digest,
      action.proposedAt,
      action.error,
    );
    return this.action(action.contactId, index)!;
  }

  /**
   * Moves an action from `from` to `to` and writes `fields`, only if it is still in `from`:
   * the compare-and-set that lets exactly one of two racing decisions win.
   */
  transitionAction(contactId: string, index: number, from: ActionStatus[], to: ActionStatus, fields: Partial<ActionRow> = {}): boolean {
    const sets = ["status = ?"];
    const values: SqlStorageValue[] = [to];
    const columns: Record<string, [string, (v: unknown) => SqlStorageValue]> = {
      params: ["params", (v) => JSON.stringify(v)],
      originalParams: ["original_params", (v) => (v === null ? null : JSON.stringify(v))],
      digest: ["digest", (v) => v as string],
      decidedAt: ["decided_at", (v) => v as number | null],
      decision: ["decision", (v) => (v === null ? null : JSON.stringify(v))],
      scheduledFor: ["scheduled_for", (v) => v as number | null],
      executedAt: ["executed_at", (v) => v as number | null],
      result: ["result", (v) => (v === null ? null : JSON.stringify(v))],
      error: ["error", (v) => v as string | null],
    };
    for (const [key, value] of Object.entries(fields)) {
      const column = columns[key];
      if (!column) continue;
      sets.push(`${column[0]} = ?`);
      values.push(column[1](value));
    }
    const cursor = this.sql.exec(
      `UPDATE actions SET ${sets.join(", ")} WHERE contact_id = ? AND idx = ? AND status IN (${from.map(() => "?").join(", ")})`,
      ...values,
      contactId,
      index,
      ...from,
    );
    return cursor.rowsWritten > 0;
  }

  counts(): RunCounts {
    const counts: RunCounts = { pending_approval: 0, approved: 0, rejected: 0, completed: 0, failed: 0 };
    for (const row of this.sql.exec("SELECT status, count(*) AS n FROM actions GROUP BY status")) {
      const status = row.status as ActionStatus;
      const bucket = status === "auto_approved" || status === "scheduled" || status === "running" ? "approved" : status;
      if (bucket in counts) counts[bucket as keyof RunCounts] += Number(row.n);
    }
    return counts;
  }

  contactStatusCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const row of this.sql.exec("SELECT status, count(*) AS n FROM contacts GROUP BY status")) out[row.status as string] = Number(row.n);
    return out;
  }

  /** The earliest time anything in this run is due, or null when nothing is. */
  nextWakeAt(): number | null {
    const row = this.sql
      .exec(
        `SELECT min(t) AS t FROM (
           SELECT min(next_step_at) AS t FROM contacts WHERE status IN ('pending', 'waiting')
           UNION ALL SELECT min(proposed_at) FROM actions WHERE status IN ('approved', 'auto_approved')
           UNION ALL SELECT min(coalesce(scheduled_for, 0)) FROM actions WHERE status IN ('scheduled', 'running'))`,
      )
      .one();
    return num(row.t);
  }
}

export const stepWait = (spec: RunPlan, stepIndex: number) => {
  const wait = spec.steps[stepIndex]?.wait;
  return ((wait?.days ?? 0) * 1440 + (wait?.hours ?? 0) * 60 + (wait?.minutes ?? 0)) * 60_000;
};
