import { ACTION, CONTACT, FINISHED_RUN_STATUSES, type ActionStatus, type ContactStatus, type RunStatus } from "./machine";
import { ACTION_COLUMNS, assignments, CONTACT_COLUMNS, MIGRATIONS, toAction, type ActionFields, type ActionRow, type ContactFields } from "./run-rows";
import { ACTION_EVENTS, actionEventData, contactStoppedData, inboxEntry, RUN_EVENTS, runEventData, RunOutbox } from "./run-events";
import { actionKey, RunReads } from "./run-reads";
import type { ContactSnapshot, RunPlan, RunSpec } from "./spec";

/** Where a pending action can go: each takes it out of the approvals inbox. */
const LEAVES_INBOX: ActionStatus[] = ["approved", "rejected", "invalidated", "cancelled"];

export { actionKey, type RunRow, type RunUsage } from "./run-reads";
export type { ActionRow, ContactRow, Decision } from "./run-rows";

/** One action of moveActions, with the fields only it gets. */
export type ActionMove = { contactId: string; index: number; fields?: ActionFields };

/**
 * Typed access to one run's SQLite storage: its reads (run-reads.ts) and every write. Every
 * method is synchronous, so nothing interleaves inside one; every status write is a
 * compare-and-set from the states that may move to the new one (src/runs/machine.ts), and
 * the one place its webhook event is written, in the same transaction: a move that lost its
 * race emits nothing.
 */
export class RunStore extends RunReads {
  readonly outbox: RunOutbox;
  #inTransaction = false;

  constructor(storage: DurableObjectStorage) {
    super(storage);
    this.outbox = new RunOutbox(storage.sql);
    if (this.ready) this.migrate();
  }

  migrate(): void {
    this.sql.exec("CREATE TABLE IF NOT EXISTS _schema (version INTEGER NOT NULL)");
    const version = Number(this.sql.exec("SELECT coalesce(max(version), 0) AS v FROM _schema").one().v);
    // Each step lands whole or not at all.
    MIGRATIONS.slice(version).forEach((statement, i) =>
      this.atomically(() => {
        this.sql.exec(statement);
        this.sql.exec("INSERT INTO _schema (version) VALUES (?)", version + i + 1);
      }),
    );
    this.ready = true;
  }

  /** After `deleteAll()`: the object holds nothing again. */
  forget(): void {
    this.ready = false;
    this.planCache = undefined;
  }

  /**
   * Runs `fn` as one storage transaction: all of its writes land, or none. Called inside one,
   * it joins it: a bulk decision's thousand moves take one savepoint, not one each.
   */
  atomically<T>(fn: () => T): T {
    if (this.#inTransaction) return fn();
    this.#inTransaction = true;
    try {
      return this.storage.transactionSync(fn);
    } finally {
      this.#inTransaction = false;
    }
  }

  createRun(spec: RunSpec, now: number): void {
    // The contacts live in their own table; the run row keeps the rest of the spec.
    const { contacts, ...plan } = spec;
    const early = new Map(this.sql.exec("SELECT contact_id, reason FROM early_stops").toArray().map((r) => [r.contact_id as string, r.reason as string]));
    this.atomically(() => {
      this.sql.exec("INSERT INTO run (id, spec, status, created_at, started_at) VALUES (1, ?, 'running', ?, ?)", JSON.stringify(plan), now, now);
      for (const contact of contacts) {
        // Stopped before the run started: deleted, unsubscribed, bounced or replied since the trigger.
        const stop = contact.stop ?? early.get(contact.id) ?? null;
        this.sql.exec(
          "INSERT INTO contacts (position, contact_id, snapshot, status, current_step, next_step_at, stop_reason) VALUES (?, ?, ?, ?, 0, ?, ?)",
          contact.position,
          contact.id,
          JSON.stringify(contact.snapshot),
          stop ? "stopped" : "pending",
          stop ? null : now + stepWait(spec, 0),
          stop,
        );
      }
      this.sql.exec("DELETE FROM early_stops");
      const run = this.run()!;
      this.outbox.add("run.started", runEventData(this, run), now);
      for (const row of this.sql.exec("SELECT contact_id, stop_reason FROM contacts WHERE status = 'stopped'")) {
        this.outbox.add("contact.stopped", contactStoppedData(run.spec, row.contact_id as string, row.stop_reason as string), now);
      }
    });
  }

  /** A stop signal for a run whose object has not started yet: applied by `createRun`. */
  rememberStop(contactId: string, reason: string): void {
    this.sql.exec("INSERT INTO early_stops (contact_id, reason) VALUES (?, ?) ON CONFLICT DO NOTHING", contactId, reason);
  }

  /** Records that something changed: the D1 mirror is behind until `mirrored(version)`. */
  touch(): void {
    this.sql.exec("UPDATE run SET version = version + 1, mirror_retry_at = NULL, mirror_failures = 0 WHERE id = 1");
  }

  mirrored(version: number): void {
    this.sql.exec("UPDATE run SET mirror_seq = max(mirror_seq, ?), mirror_failures = 0, mirror_retry_at = NULL WHERE id = 1", version);
  }

  mirrorFailed(retryAt: number): void {
    this.sql.exec("UPDATE run SET mirror_failures = mirror_failures + 1, mirror_retry_at = ? WHERE id = 1", retryAt);
  }

  /** Compare-and-set on the run's status; arriving at a status with an event emits it. */
  setRunStatus(status: RunStatus, now: number, error: string | null = null): void {
    const finished = FINISHED_RUN_STATUSES.includes(status);
    this.atomically(() => {
      const before = this.sql.exec("SELECT status FROM run WHERE id = 1").one().status;
      const cursor = this.sql.exec(
        `UPDATE run SET status = ?, error = coalesce(?, error), completed_at = CASE WHEN ? THEN coalesce(completed_at, ?) ELSE NULL END
         WHERE id = 1 AND status NOT IN (${FINISHED_RUN_STATUSES.map((s) => `'${s}'`).join(", ")})`,
        status,
        error,
        finished ? 1 : 0,
        now,
      );
      const event = RUN_EVENTS[status];
      if (cursor.rowsWritten > 0 && before !== status && event) this.outbox.add(event, runEventData(this, this.run()!), now);
    });
  }

  /**
   * Moves a contact to `to` and writes `fields`, only from a state that may move there
   * (narrowed by `from`): false when a stop, a cancel or another step got there first.
   */
  moveContact(contactId: string, to: ContactStatus, fields: ContactFields = {}, from?: ContactStatus[]): boolean {
    return this.moveContacts([contactId], to, fields, from).length > 0;
  }

  /** moveContact for many contacts in one statement, the same `fields` for each: the ids of those that moved. */
  moveContacts(contactIds: string[], to: ContactStatus, fields: ContactFields = {}, from?: ContactStatus[]): string[] {
    const sources = CONTACT.sources(to).filter((s) => !from || from.includes(s));
    const { sets, values } = assignments(fields, CONTACT_COLUMNS);
    return this.atomically(() => {
      const moved = this.sql
        .exec(
          `UPDATE contacts SET ${["status = ?", ...sets].join(", ")} WHERE contact_id IN (SELECT value FROM json_each(?)) AND status IN (${sources.map(() => "?").join(", ")}) RETURNING contact_id, stop_reason`,
          to,
          ...values,
          JSON.stringify(contactIds),
          ...sources,
        )
        .toArray();
      if (to === "stopped") this.outbox.addAll(moved.map((m) => ({ type: "contact.stopped", data: contactStoppedData(this.plan(), m.contact_id as string, m.stop_reason as string) })));
      return moved.map((m) => m.contact_id as string);
    });
  }

  /** Pushes these contacts' next step back to `until`, if they are still waiting for it (no status changes). */
  deferDue(contactIds: string[], until: number): void {
    if (contactIds.length === 0) return;
    this.sql.exec(
      "UPDATE contacts SET next_step_at = max(coalesce(next_step_at, 0), ?) WHERE status IN ('pending', 'waiting') AND contact_id IN (SELECT value FROM json_each(?))",
      until,
      JSON.stringify(contactIds),
    );
  }

  setSnapshot(contactId: string, snapshot: ContactSnapshot | null): void {
    this.sql.exec("UPDATE contacts SET snapshot = ? WHERE contact_id = ?", JSON.stringify(snapshot), contactId);
  }

  insertAction(action: Omit<ActionRow, "index" | "leaseUntil" | "attempts" | "originalParams" | "decidedAt" | "decision" | "scheduledFor" | "executedAt" | "result">): void {
    this.atomically(() => {
      const index = Number(this.sql.exec("SELECT count(*) AS n FROM actions WHERE contact_id = ?", action.contactId).one().n);
      const [row] = this.sql
        .exec(
          `INSERT INTO actions (contact_id, idx, step_id, step_index, round, type, status, identity_id, params, reasoning, digest, proposed_at, error, generation)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
          action.contactId,
          index,
          action.stepId,
          action.stepIndex,
          action.round,
          action.type,
          action.status,
          action.identityId,
          JSON.stringify(action.params),
          action.reasoning,
          action.digest,
          action.proposedAt,
          action.error,
          action.generation === null ? null : JSON.stringify(action.generation),
        )
        .toArray();
      const data = actionEventData(this.plan(), toAction(row!));
      // A proposal that could not be made is born failed: it was never proposed.
      if (action.status === "failed") return this.outbox.add("action.failed", data, action.proposedAt);
      this.outbox.add("action.proposed", data, action.proposedAt);
      if (action.status === "auto_approved") this.outbox.add("action.approved", data, action.proposedAt);
      else this.outbox.addToInbox(inboxEntry(toAction(row!), this.contact(action.contactId)?.snapshot ?? null, this.plan().sender));
    });
  }

  /**
   * Moves an action to `to` and writes `fields`, only from a state that may move there
   * (narrowed by `from`). Taking a `running` action again needs its lease lapsed by `now`.
   */
  moveAction(contactId: string, index: number, to: ActionStatus, fields: ActionFields = {}, opts: { from?: ActionStatus[]; now?: number } = {}): boolean {
    return this.moveActions([{ contactId, index }], to, fields, opts).length > 0;
  }

  /**
   * moveAction for many actions in one statement: `fields` for each, and each move's own
   * (the same keys for every move) on top. The actions that moved, in the order given, with
   * their events and inbox removals.
   */
  moveActions(moves: ActionMove[], to: ActionStatus, fields: ActionFields = {}, opts: { from?: ActionStatus[]; now?: number } = {}): ActionRow[] {
    const sources = ACTION.sources(to).filter((s) => !opts.from || opts.from.includes(s));
    const { sets, values } = assignments(fields, ACTION_COLUMNS);
    const own = Object.keys(moves[0]?.fields ?? {}) as (keyof ActionFields)[];
    const ownSets = own.map((key, i) => `${ACTION_COLUMNS[key][0]} = json_extract(m.fields, '$[${i}]')`);
    const rows = moves.map((m) => [m.contactId, m.index, own.map((key) => ACTION_COLUMNS[key][1](m.fields![key] as never))]);
    const lapsed = to === "running" ? " AND (status <> 'running' OR coalesce(lease_until, 0) <= ?)" : "";
    return this.atomically(() => {
      const byKey = new Map(
        this.sql
          .exec(
            // Materialized, so each move finds its action by key: a bare json_each would be read again for every action.
            `WITH m AS MATERIALIZED (SELECT value ->> 0 AS contact_id, value ->> 1 AS idx, value -> 2 AS fields FROM json_each(?))
             UPDATE actions SET ${["status = ?", ...sets, ...ownSets].join(", ")} FROM m
             WHERE actions.contact_id = m.contact_id AND actions.idx = m.idx AND status IN (${sources.map(() => "?").join(", ")})${lapsed} RETURNING *`,
            JSON.stringify(rows),
            to,
            ...values,
            ...sources,
            ...(lapsed ? [opts.now ?? Date.now()] : []),
          )
          .toArray()
          .map((row) => [actionKey({ contactId: row.contact_id as string, index: Number(row.idx) }), toAction(row)]),
      );
      // Named twice, moved once.
      const moved = [...new Set(moves.map(actionKey))].flatMap((key) => byKey.get(key) ?? []);
      const event = ACTION_EVENTS[to];
      if (event) this.outbox.addAll(moved.map((action) => ({ type: event, data: actionEventData(this.plan(), action) })));
      if (LEAVES_INBOX.includes(to)) this.outbox.removeAllFromInbox(moved);
      return moved;
    });
  }

}

export const stepWait = (spec: RunPlan, stepIndex: number) => {
  const wait = spec.steps[stepIndex]?.wait;
  return ((wait?.days ?? 0) * 1440 + (wait?.hours ?? 0) * 60 + (wait?.minutes ?? 0)) * 60_000;
};
