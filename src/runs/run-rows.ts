import type { ActionType } from "../schemas/agents";
import type { ActionParams } from "./actions";
import type { ActionRow, ActionStatus, ContactRow, ContactStatus, Decision } from "./run-store";
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
];

export const parse = <T>(value: unknown): T => (value === null ? null : JSON.parse(value as string)) as T;
export const num = (value: unknown) => (value === null ? null : Number(value));


export function toContact(row: Record<string, SqlStorageValue>): ContactRow {
  return {
    position: Number(row.position),
    contactId: row.contact_id as string,
    snapshot: parse<ContactSnapshot>(row.snapshot),
    status: row.status as ContactStatus,
    currentStep: Number(row.current_step),
    nextStepAt: num(row.next_step_at),
    stopReason: row.stop_reason as string | null,
  };
}

export function toAction(row: Record<string, SqlStorageValue>): ActionRow {
  return {
    contactId: row.contact_id as string,
    index: Number(row.idx),
    stepId: row.step_id as string,
    stepIndex: Number(row.step_index),
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
    executedAt: num(row.executed_at),
    result: parse<ActionParams | null>(row.result),
    error: row.error as string | null,
  };
}
