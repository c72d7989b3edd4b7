import { iso } from "../lib/time";
import type { RunPlan } from "./spec";
import type { ActionRow, ContactRow } from "./run-store";


/** The action object of CONTRACT.md section 4. */
export function toActionJson(a: ActionRow) {
  return {
    index: a.index,
    step_id: a.stepId,
    type: a.type,
    status: a.status,
    identity_id: a.identityId,
    params: a.params,
    ...(a.originalParams ? { original_params: a.originalParams } : {}),
    reasoning: a.reasoning,
    digest: a.digest,
    proposed_at: iso(a.proposedAt),
    decided_at: iso(a.decidedAt),
    decision: a.decision
      ? { type: a.decision.kind, by_key_id: a.decision.by_key_id, reason: a.decision.reason, edited: a.decision.edited }
      : null,
    scheduled_for: iso(a.scheduledFor),
    executed_at: iso(a.executedAt),
    result: a.result,
    error: a.error,
  };
}
export type ActionJson = ReturnType<typeof toActionJson>;

/** A contact's progress through the run, without its current details (the route adds those). */
export function toContactProgress(spec: RunPlan, c: ContactRow, actions: ActionRow[]) {
  const finished = c.currentStep >= spec.steps.length;
  return {
    contact_id: c.contactId,
    status: c.status,
    current_step: finished ? null : c.currentStep,
    current_step_id: finished ? null : spec.steps[c.currentStep]!.id,
    next_step_at: iso(c.nextStepAt),
    stop_reason: c.stopReason,
    actions: actions.map(toActionJson),
  };
}
