import type { ActionType } from "../schemas/agents";
import type { ActionParams } from "./actions";
import type { Generation } from "./generators/types";
import type { ActionStatus, ContactStatus } from "./machine";
import type { ContactSnapshot } from "./spec";

/** Versioned schema steps; each runs once, in order, inside blockConcurrencyWhile. */
export const MIGRATIONS = [
  `CREATE TABLE run (
     id INTEGER PRIMARY KEY CHECK (id = 1), spec TEXT NOT NULL, status TEXT NOT NULL,
     created_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER, error TEXT);
   CREATE TABLE contacts (
     position INTEGER PRIMARY KEY, contact_id TEXT NOT NULL UNIQUE, snapshot TEXT NOT NULL,
     status TEXT NOT NULL, current_step INTEGER NOT NULL, next_step_at INTEGER, stop_reason TEXT);
   CREATE INDEX contacts_due ON contacts (status, next_step_at);
   CREATE TABLE actions (
     contact_id TEXT NOT NULL, idx INTEGER NOT NULL, step_id TEXT NOT NULL, step_index INTEGER NOT NULL,
     type TEXT NOT NULL, status TEXT NOT NULL, identity_id TEXT, params TEXT NOT NULL, original_params TEXT,
     reasoning TEXT NOT NULL, digest TEXT NOT NULL, proposed_at INTEGER NOT NULL, decided_at INTEGER,
     decision TEXT, scheduled_for INTEGER, executed_at INTEGER, result TEXT, error TEXT,
     PRIMARY KEY (contact_id, idx), UNIQUE (contact_id, step_index));
   CREATE INDEX actions_status ON actions (status, scheduled_for);`,
  `ALTER TABLE run ADD COLUMN mirror_seq INTEGER NOT NULL DEFAULT 0;`,
  // Leases get their own column (scheduled_for means only "scheduled"); executions and
  // proposals count their attempts; a step proposed again (its contact's email changed)
  // is a new round, so the one-action-per-step key becomes (contact, step, round). A contact
  // the old code left mid-proposal is due again at once.
  `ALTER TABLE contacts ADD COLUMN lease_until INTEGER;
   ALTER TABLE contacts ADD COLUMN round INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE contacts ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE actions_v3 (
     contact_id TEXT NOT NULL, idx INTEGER NOT NULL, step_id TEXT NOT NULL, step_index INTEGER NOT NULL,
     round INTEGER NOT NULL DEFAULT 0, type TEXT NOT NULL, status TEXT NOT NULL, identity_id TEXT,
     params TEXT NOT NULL, original_params TEXT, reasoning TEXT NOT NULL, digest TEXT NOT NULL,
     proposed_at INTEGER NOT NULL, decided_at INTEGER, decision TEXT, scheduled_for INTEGER,
     lease_until INTEGER, attempts INTEGER NOT NULL DEFAULT 0, executed_at INTEGER, result TEXT, error TEXT,
     PRIMARY KEY (contact_id, idx), UNIQUE (contact_id, step_index, round));
   INSERT INTO actions_v3 (contact_id, idx, step_id, step_index, type, status, identity_id, params, original_params,
     reasoning, digest, proposed_at, decided_at, decision, scheduled_for, lease_until, executed_at, result, error)
   SELECT contact_id, idx, step_id, step_index, type, status, identity_id, params, original_params, reasoning, digest,
     proposed_at, decided_at, decision, CASE WHEN status = 'running' THEN NULL ELSE scheduled_for END,
     CASE WHEN status = 'running' THEN scheduled_for END, executed_at, result, error FROM actions;
   DROP TABLE actions;
   ALTER TABLE actions_v3 RENAME TO actions;
   CREATE INDEX actions_status ON actions (status, scheduled_for);
   CREATE INDEX contacts_lease ON contacts (status, lease_until);
   CREATE INDEX actions_lease ON actions (status, lease_until);
   UPDATE contacts SET lease_until = 0 WHERE status = 'processing' AND NOT EXISTS
     (SELECT 1 FROM actions a WHERE a.contact_id = contacts.contact_id AND a.step_index = contacts.current_step);
   ALTER TABLE run ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
   UPDATE run SET version = mirror_seq + 1;
   ALTER TABLE run ADD COLUMN mirror_retry_at INTEGER;
   ALTER TABLE run ADD COLUMN mirror_failures INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE early_stops (contact_id TEXT PRIMARY KEY, reason TEXT NOT NULL);`,
  // How a model wrote each proposal (provider, model, tokens, latency, attempts).
  `ALTER TABLE actions ADD COLUMN generation TEXT;`,
  // What D1 must learn from this object, each written with its transition until the mirror
  // copies it: webhook events (`event`) and changes to the approvals inbox (`inbox`).
  `CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL);`,
];

export type Decision = { kind: "approve" | "reject"; by_key_id: string | null; reason: string | null; edited: boolean };

export type ContactRow = {
  position: number;
  contactId: string;
  /** Null when the contact was deleted before the run started. */
  snapshot: ContactSnapshot | null;
  status: ContactStatus;
  currentStep: number;
  /** Bumped when the current step must be proposed again (the contact's address changed). */
  round: number;
  nextStepAt: number | null;
  /** While a proposal is being made: when it may be taken over if its maker died. */
  leaseUntil: number | null;
  attempts: number;
  stopReason: string | null;
};
export type ActionRow = {
  contactId: string;
  index: number;
  stepId: string;
  stepIndex: number;
  round: number;
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
  leaseUntil: number | null;
  attempts: number;
  executedAt: number | null;
  result: ActionParams | null;
  error: string | null;
  generation: Generation | null;
};

export type ContactFields = Partial<Pick<ContactRow, "currentStep" | "round" | "nextStepAt" | "leaseUntil" | "attempts" | "stopReason">>;
export type ActionFields = Partial<
  Pick<ActionRow, "params" | "originalParams" | "digest" | "decidedAt" | "decision" | "scheduledFor" | "leaseUntil" | "attempts" | "executedAt" | "result" | "error">
>;

const json = (v: unknown) => (v === null ? null : JSON.stringify(v));
export const CONTACT_COLUMNS: Record<keyof ContactFields, [string, (v: never) => SqlStorageValue]> = {
  currentStep: ["current_step", (v: number) => v],
  round: ["round", (v: number) => v],
  nextStepAt: ["next_step_at", (v: number | null) => v],
  leaseUntil: ["lease_until", (v: number | null) => v],
  attempts: ["attempts", (v: number) => v],
  stopReason: ["stop_reason", (v: string | null) => v],
};
export const ACTION_COLUMNS: Record<keyof ActionFields, [string, (v: never) => SqlStorageValue]> = {
  params: ["params", json],
  originalParams: ["original_params", json],
  digest: ["digest", (v: string) => v],
  decidedAt: ["decided_at", (v: number | null) => v],
  decision: ["decision", json],
  scheduledFor: ["scheduled_for", (v: number | null) => v],
  leaseUntil: ["lease_until", (v: number | null) => v],
  attempts: ["attempts", (v: number) => v],
  executedAt: ["executed_at", (v: number | null) => v],
  result: ["result", json],
  error: ["error", (v: string | null) => v],
};

/** The `SET` clauses and values for the fields given, by a column map. */
export function assignments(fields: object, columns: Record<string, [string, (v: never) => SqlStorageValue]>) {
  const entries = Object.entries(fields).filter(([key, value]) => value !== undefined && key in columns);
  return { sets: entries.map(([key]) => `${columns[key]![0]} = ?`), values: entries.map(([key, value]) => columns[key]![1](value as never)) };
}

export const parse = <T>(value: unknown): T => (value === null ? null : JSON.parse(value as string)) as T;
export const num = (value: unknown) => (value === null || value === undefined ? null : Number(value));

export function toContact(row: Record<string, SqlStorageValue>): ContactRow {
  return {
    position: Number(row.position),
    contactId: row.contact_id as string,
    snapshot: parse<ContactSnapshot | null>(row.snapshot),
    status: row.status as ContactStatus,
    currentStep: Number(row.current_step),
    round: Number(row.round),
    nextStepAt: num(row.next_step_at),
    leaseUntil: num(row.lease_until),
    attempts: Number(row.attempts),
    stopReason: row.stop_reason as string | null,
  };
}

export function toAction(row: Record<string, SqlStorageValue>): ActionRow {
  return {
    contactId: row.contact_id as string,
    index: Number(row.idx),
    stepId: row.step_id as string,
    stepIndex: Number(row.step_index),
    round: Number(row.round),
    type: row.type as ActionType,
    status: row.status as ActionStatus,
    identityId: row.identity_id as string | null,
    params: parse<ActionParams>(row.params),
    originalParams: parse<ActionParams | null>(row.original_params),
    reasoning: row.reasoning as string,
    digest: row.digest as string,
    proposedAt: Number(row.proposed_at),
    decidedAt: num(row.decided_at),
    decision: parse<Decision | null>(row.decision),
    scheduledFor: num(row.scheduled_for),
    leaseUntil: num(row.lease_until),
    attempts: Number(row.attempts),
    executedAt: num(row.executed_at),
    result: parse<ActionParams | null>(row.result),
    error: row.error as string | null,
    generation: parse<Generation | null>(row.generation ?? null),
  };
}
