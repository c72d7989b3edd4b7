import { ACTION, CONTACT, COUNT_BUCKET, emptyCounts, FINISHED_RUN_STATUSES, OPEN_ACTIONS, type ActionStatus, type ContactStatus, type RunCounts, type RunStatus } from "./machine";
import { ACTION_COLUMNS, assignments, CONTACT_COLUMNS, MIGRATIONS, num, parse, toAction, toContact, type ActionFields, type ActionRow, type ContactFields, type ContactRow } from "./run-rows";
import { ACTION_EVENTS, actionEventData, contactStoppedData, inboxEntry, RUN_EVENTS, runEventData, RunOutbox } from "./run-events";
import type { ContactSnapshot, RunPlan, RunSpec } from "./spec";

/** Where a pending action can go: each takes it out of the approvals inbox. */
const LEAVES_INBOX: ActionStatus[] = ["approved", "rejected", "invalidated", "cancelled"];

export type RunUsage = { proposals: number; input_tokens: number; output_tokens: number };
export type RunRow = { spec: RunPlan; status: RunStatus; createdAt: number; startedAt: number | null; completedAt: number | null; error: string | null };
export type { ActionRow, ContactRow, Decision } from "./run-rows";

/** One action of moveActions, with the fields only it gets. */
export type ActionMove = { contactId: string; index: number; fields?: ActionFields };

/** An action's key within its run. */
export const actionKey = (a: { contactId: string; index: number }) => `${a.contactId}/${a.index}`;

/**
 * Typed access to one run's SQLite storage. Every method is synchronous, so nothing
 * interleaves inside one; every status write is a compare-and-set from the states that
 * may move to the new one (src/runs/machine.ts), and the one place its webhook event is
 * written, in the same transaction: a move that lost its race emits nothing.
 */
export class RunStore {
  readonly outbox: RunOutbox;
  /** The plan never changes once a run starts: parsed once, not on every read. */
  #plan: RunPlan | undefined;
  /** Whether this object has tables at all: an object nobody started stores nothing. */
  #ready: boolean;
  #inTransaction = false;

  constructor(private readonly storage: DurableObjectStorage) {
    this.outbox = new RunOutbox(storage.sql);
    this.#ready = this.sql.exec("SELECT 1 FROM sqlite_master WHERE name = '_schema'").toArray().length > 0;
    if (this.#ready) this.migrate();
  }

  /** For reads that belong to one caller (the run view's pages): writes go through the methods. */
  get sql(): SqlStorage {
    return this.storage.sql;
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
    this.#ready = true;
  }

  /** After `deleteAll()`: the object holds nothing again. */
  forget(): void {
    this.#ready = false;
    this.#plan = undefined;
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

  run(): RunRow | null {
    if (!this.#ready) return null;
    const row = this.sql.exec("SELECT status, created_at, started_at, completed_at, error FROM run WHERE id = 1").toArray()[0];
    if (!row) return null;
    return {
      spec: this.plan(),
      status: row.status as RunStatus,
      createdAt: Number(row.created_at),
      startedAt: num(row.started_at),
      completedAt: num(row.completed_at),
      error: row.error as string | null,
    };
  }

  /** The run's plan, of a run that has started: it never changes, so it is read once, and whoever needs only it need not read the run row. */
  plan(): RunPlan {
    return (this.#plan ??= parse<RunPlan>(this.sql.exec("SELECT spec FROM run WHERE id = 1").one().spec));
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

  mirrorState(): { version: number; mirrorSeq: number; retryAt: number | null; failures: number } {
    const row = this.sql.exec("SELECT version, mirror_seq, mirror_retry_at, mirror_failures FROM run WHERE id = 1").one();
    return { version: Number(row.version), mirrorSeq: Number(row.mirror_seq), retryAt: num(row.mirror_retry_at), failures: Number(row.mirror_failures) };
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

  contact(contactId: string): ContactRow | null {
    const row = this.sql.exec("SELECT * FROM contacts WHERE contact_id = ?", contactId).toArray()[0];
    return row ? toContact(row) : null;
  }

  /** These contacts, in one read, by id. */
  contactsAt(contactIds: string[]): Map<string, ContactRow> {
    const rows = this.sql.exec("SELECT contacts.* FROM json_each(?) AS k JOIN contacts ON contacts.contact_id = k.value", JSON.stringify(contactIds));
    return new Map(rows.toArray().map((row) => toContact(row)).map((c) => [c.contactId, c]));
  }

  /** The ids of contacts in these statuses, in trigger order: no row is parsed. */
  contactIdsIn(statuses: readonly ContactStatus[]): string[] {
    return this.sql.exec(`SELECT contact_id FROM contacts WHERE status IN (${statuses.map(() => "?").join(", ")}) ORDER BY position`, ...statuses).toArray().map((r) => r.contact_id as string);
  }

  /** Contacts whose next step is due, and proposals whose maker's lease lapsed; oldest first. */
  dueContacts(now: number, limit: number): ContactRow[] {
    // One indexed read per kind of due, rather than one OR that would scan every contact.
    const read = (query: string) => this.sql.exec(query, now, limit).toArray().map(toContact);
    const due = [
      ...read("SELECT * FROM contacts WHERE status IN ('pending', 'waiting') AND next_step_at <= ? ORDER BY next_step_at LIMIT ?"),
      ...read("SELECT * FROM contacts WHERE status = 'processing' AND lease_until <= ? ORDER BY lease_until LIMIT ?"),
    ];
    const at = (c: ContactRow) => c.nextStepAt ?? c.leaseUntil ?? 0;
    return due.sort((a, b) => at(a) - at(b) || a.position - b.position).slice(0, limit);
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

  action(contactId: string, index: number): ActionRow | null {
    const row = this.sql.exec("SELECT * FROM actions WHERE contact_id = ? AND idx = ?", contactId, index).toArray()[0];
    return row ? toAction(row) : null;
  }

  /** The actions at these keys, in one read, by `contactId/index` (actionKey). */
  actionsAt(keys: { contactId: string; index: number }[]): Map<string, ActionRow> {
    const rows = this.sql.exec(
      "SELECT actions.* FROM json_each(?) AS k JOIN actions ON actions.contact_id = k.value ->> 0 AND actions.idx = k.value ->> 1",
      JSON.stringify(keys.map((k) => [k.contactId, k.index])),
    );
    return new Map(rows.toArray().map((row) => toAction(row)).map((a) => [actionKey(a), a]));
  }

  actionForStep(contactId: string, stepIndex: number, round: number): ActionRow | null {
    const row = this.sql.exec("SELECT * FROM actions WHERE contact_id = ? AND step_index = ? AND round = ?", contactId, stepIndex, round).toArray()[0];
    return row ? toAction(row) : null;
  }

  actionsOf(contactId: string): ActionRow[] {
    return this.sql.exec("SELECT * FROM actions WHERE contact_id = ? ORDER BY idx", contactId).toArray().map(toAction);
  }

  /** Actions ready to carry out: approved, scheduled and due, or running under a lapsed lease. */
  dueActions(now: number, limit: number): ActionRow[] {
    const read = (query: string, ...args: SqlStorageValue[]) => this.sql.exec(query, ...args, limit).toArray().map(toAction);
    const due = [
      ...read("SELECT * FROM actions WHERE status IN ('approved', 'auto_approved') ORDER BY proposed_at LIMIT ?"),
      ...read("SELECT * FROM actions WHERE status = 'scheduled' AND scheduled_for <= ? ORDER BY scheduled_for LIMIT ?", now),
      ...read("SELECT * FROM actions WHERE status = 'running' AND lease_until <= ? ORDER BY lease_until LIMIT ?", now),
    ];
    return due.sort((a, b) => a.proposedAt - b.proposedAt).slice(0, limit);
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


  /** What the run's model calls cost: CONTRACT.md section 10's `usage`. */
  usage(): RunUsage {
    const row = this.sql
      .exec(
        `SELECT count(generation) AS proposals, coalesce(sum(json_extract(generation, '$.input_tokens')), 0) AS input_tokens,
           coalesce(sum(json_extract(generation, '$.output_tokens')), 0) AS output_tokens FROM actions`,
      )
      .one();
    return { proposals: Number(row.proposals), input_tokens: Number(row.input_tokens), output_tokens: Number(row.output_tokens) };
  }

  /** Actions approved and not yet done: a run with any is not finished. */
  openActionCount(): number {
    return Number(this.sql.exec(`SELECT count(*) AS n FROM actions WHERE status IN (${OPEN_ACTIONS.map(() => "?").join(", ")})`, ...OPEN_ACTIONS).one().n);
  }

  counts(): RunCounts {
    const counts = emptyCounts();
    for (const row of this.sql.exec("SELECT status, count(*) AS n FROM actions GROUP BY status")) {
      counts[COUNT_BUCKET[row.status as ActionStatus]] += Number(row.n);
    }
    return counts;
  }

  /** Whether any contact is in one of these statuses: an index probe, whatever the run's size. */
  anyContactIn(statuses: readonly ContactStatus[]): boolean {
    return this.sql.exec(`SELECT EXISTS (SELECT 1 FROM contacts WHERE status IN (${statuses.map(() => "?").join(", ")})) AS yes`, ...statuses).one().yes === 1;
  }

  /** The earliest time any step or action of this run is due, or null. */
  nextWakeAt(): number | null {
    const row = this.sql
      .exec(
        `SELECT
           (SELECT min(next_step_at) FROM contacts WHERE status IN ('pending', 'waiting')) AS step,
           (SELECT min(lease_until) FROM contacts WHERE status = 'processing') AS proposal,
           (SELECT min(proposed_at) FROM actions WHERE status IN ('approved', 'auto_approved')) AS approved,
           (SELECT min(scheduled_for) FROM actions WHERE status = 'scheduled') AS scheduled,
           (SELECT min(coalesce(lease_until, 0)) FROM actions WHERE status = 'running') AS running`,
      )
      .one();
    const times = Object.values(row).flatMap((t) => (t === null ? [] : [Number(t)]));
    return times.length > 0 ? Math.min(...times) : null;
  }
}

export const stepWait = (spec: RunPlan, stepIndex: number) => {
  const wait = spec.steps[stepIndex]?.wait;
  return ((wait?.days ?? 0) * 1440 + (wait?.hours ?? 0) * 60 + (wait?.minutes ?? 0)) * 60_000;
};
