import type { ErrorDetail } from "../lib/errors";
import type { ActionParams } from "./actions";
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
