import type { ActionType } from "../schemas/agents";
import type { ActionParams } from "./actions";
import type { ActionStatus, ContactStatus } from "./machine";
import type { ActionRow, ContactRow, Decision } from "./run-store";
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
  // is a new round, so the one-action-per-step key becomes (contact, step, round).
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
   ALTER TABLE run ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
   UPDATE run SET version = mirror_seq + 1;
   ALTER TABLE run ADD COLUMN mirror_retry_at INTEGER;
   ALTER TABLE run ADD COLUMN mirror_failures INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE early_stops (contact_id TEXT PRIMARY KEY, reason TEXT NOT NULL);`,
];

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
  };
}
