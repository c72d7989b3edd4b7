import type { ErrorDetail } from "../lib/errors";
import { issuesToDetails } from "../lib/validate";
import { ACTION_PARAMS, type ActionParams } from "./actions";
import { OPEN_ACTIONS } from "./machine";
import type { ActionRow } from "./run-store";
import { toActionJson, type ActionJson } from "./views";

/** The answers a run object gives a human decision (CONTRACT.md sections 5 and 8). */
export type DecisionInput = { keyId: string; reason?: string; params?: ActionParams; digest?: string };
export type DecisionResult =
  | { ok: true; action: ActionJson }
  | { ok: false; status: 400 | 404 | 409; code: string; message: string; details?: ErrorDetail[] };

// A run that has not started has no actions yet: to its caller, the same as no such run.
export const missing = (what: "run" | "action"): DecisionResult => ({ ok: false, status: 404, code: "not_found", message: what === "run" ? "No such run, or it has not started yet" : "No such action" });

export const notPending = (action: ActionRow, kind: "approve" | "reject"): DecisionResult => ({
  ok: false,
  status: 409,
  code: "action_not_pending",
  // An approval whose send failed says why, so the approver need not look it up.
  details: [{ path: "status", message: action.status }, ...(action.status === "failed" && action.error ? [{ path: "error", message: action.error }] : [])],
  message:
    kind === "approve" && action.status === "failed" && action.error
      ? `Approved, but the send failed: ${action.error}`
      : `The action is ${action.status}; it can no longer be ${kind === "approve" ? "approved" : "rejected"}`,
});

/** Statuses an approved action moves through on its way to done. */
const APPROVED_PATH = [...OPEN_ACTIONS, "completed"];

/**
 * Deciding an action again: the same decision is answered with the action while it still
 * stands (approved and on its way, or rejected); anything else is a conflict.
 */
export function repeat(action: ActionRow, kind: "approve" | "reject"): DecisionResult {
  const same = kind === "approve" ? APPROVED_PATH.includes(action.status) : action.status === "rejected";
  return same ? { ok: true, action: toActionJson(action) } : notPending(action, kind);
}

/** One action of a bulk decision, and what became of it. */
export type BulkItem = { contactId: string; index: number; digest?: string };
export type BulkOutcome = BulkItem & { status: string; code?: string; message?: string };

/** A bulk item's outcome from the answer the single decision would give, and the action's status now (none: not found). */
export function bulkOutcome(item: BulkItem, result: DecisionResult, status: string | undefined): BulkOutcome {
  if (result.ok) return { ...item, status: result.action.status };
  return { ...item, status: status ?? "not_found", code: result.code, message: result.message };
}

/** An unedited proposal that is not a valid action of its type cannot be approved as it is. */
export function invalidProposal(action: ActionRow): DecisionResult | null {
  const parsed = ACTION_PARAMS[action.type].safeParse(action.params);
  if (parsed.success) return null;
  return { ok: false, status: 400, code: "validation_error", message: `The proposed params are not a valid ${action.type}; send corrected params`, details: issuesToDetails(parsed.error.issues, ["params"]) };
}
