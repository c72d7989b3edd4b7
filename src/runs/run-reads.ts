import { COUNT_BUCKET, emptyCounts, OPEN_ACTIONS, type ActionStatus, type ContactStatus, type RunCounts, type RunStatus } from "./machine";
import { num, parse, toAction, toContact, type ActionRow, type ContactRow } from "./run-rows";
import type { RunPlan } from "./spec";

export type RunUsage = { proposals: number; input_tokens: number; output_tokens: number };
export type RunRow = { spec: RunPlan; status: RunStatus; createdAt: number; startedAt: number | null; completedAt: number | null; error: string | null };

/** An action's key within its run. */
export const actionKey = (a: { contactId: string; index: number }) => `${a.contactId}/${a.index}`;

/** The reads of one run's SQLite storage; RunStore adds the writes. */
export class RunReads {
  /** The plan never changes once a run starts: parsed once, not on every read. */
  protected planCache: RunPlan | undefined;
  /** Whether this object has tables at all: an object nobody started stores nothing. */
  protected ready: boolean;

  constructor(protected readonly storage: DurableObjectStorage) {
    this.ready = this.sql.exec("SELECT 1 FROM sqlite_master WHERE name = '_schema'").toArray().length > 0;
  }

  /** For reads that belong to one caller (the run view's pages): writes go through the methods. */
  get sql(): SqlStorage {
    return this.storage.sql;
  }

  run(): RunRow | null {
    if (!this.ready) return null;
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
    return (this.planCache ??= parse<RunPlan>(this.sql.exec("SELECT spec FROM run WHERE id = 1").one().spec));
  }

  mirrorState(): { version: number; mirrorSeq: number; retryAt: number | null; failures: number } {
    const row = this.sql.exec("SELECT version, mirror_seq, mirror_retry_at, mirror_failures FROM run WHERE id = 1").one();
    return { version: Number(row.version), mirrorSeq: Number(row.mirror_seq), retryAt: num(row.mirror_retry_at), failures: Number(row.mirror_failures) };
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

  action(contactId: string, index: number): ActionRow | null {
    const row = this.sql.exec("SELECT * FROM actions WHERE contact_id = ? AND idx = ?", contactId, index).toArray()[0];
    return row ? toAction(row) : null;
  }

  /** The actions at these keys, in one read, by `contactId/index` (actionKey). */
  actionsAt(keys: { contactId: string; index: number }[]): Map<string, ActionRow> {
    return new Map(this.#rowsAt("actions.*", keys).map((row) => toAction(row)).map((a) => [actionKey(a), a]));
  }

  /** The statuses of the actions at these keys, in one read, by actionKey: nothing else is parsed. */
  statusesAt(keys: { contactId: string; index: number }[]): Map<string, ActionStatus> {
    const rows = this.#rowsAt("actions.contact_id, actions.idx, actions.status", keys);
    return new Map(rows.map((r) => [actionKey({ contactId: r.contact_id as string, index: Number(r.idx) }), r.status as ActionStatus]));
  }

  // `columns` of the actions at these keys, in one read.
  #rowsAt(columns: string, keys: { contactId: string; index: number }[]) {
    return this.sql
      .exec(
        `SELECT ${columns} FROM json_each(?) AS k JOIN actions ON actions.contact_id = k.value ->> 0 AND actions.idx = k.value ->> 1`,
        JSON.stringify(keys.map((k) => [k.contactId, k.index])),
      )
      .toArray();
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
