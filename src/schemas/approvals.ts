import { z } from "zod";
import { ActionType } from "./agents";
import { ListMeta, Pagination } from "./common";
import { Action } from "./runs";

/** What narrows the inbox, for listing and for deciding by filter. */
const InboxFilter = {
  agent_id: z.string().max(64).optional(),
  run_id: z.string().max(64).optional(),
  type: ActionType.optional(),
  proposed_before: z.iso.datetime().optional().meta({ description: "Only actions proposed before this time (ISO 8601)" }),
};

export const ListApprovalsQuery = Pagination.extend(InboxFilter);
export type InboxQuery = { agent_id?: string; run_id?: string; type?: string; proposed_before?: string };

export const Approval = z
  .object({
    run_id: z.string(),
    agent_id: z.string(),
    contact_id: z.string(),
    action_index: z.int(),
    contact: z.object({
      id: z.string(),
      email: z.string().optional(),
      first_name: z.string().nullable().optional(),
      last_name: z.string().nullable().optional(),
      company: z.string().nullable().optional(),
      job_title: z.string().nullable().optional(),
    }),
    action: Action,
  })
  .meta({ id: "Approval" });

export const ApprovalList = z.object({ status: z.literal("success"), approvals: z.array(Approval), ...ListMeta });

/** The most actions one decide request may name or select. */
export const MAX_DECISIONS = 1000;

const Item = z.strictObject({
  run_id: z.string().max(64),
  contact_id: z.string().max(64),
  action_index: z.int().min(0).max(9999),
  digest: z.string().max(100).optional().meta({ description: "The digest you reviewed; digest_mismatch if the action changed" }),
});

export const DecideBody = z
  .strictObject({
    decision: z.enum(["approve", "reject"]),
    items: z.array(Item).min(1).max(MAX_DECISIONS).optional(),
    filter: z.strictObject(InboxFilter).optional().meta({ description: "Every pending action the inbox lists for it, oldest first, at most 1000" }),
    reason: z.string().max(2000).optional(),
    dry_run: z.boolean().default(false).meta({ description: "Decide nothing; answer what would be decided" }),
  })
  .refine((body) => (body.items === undefined) !== (body.filter === undefined), { message: "Send exactly one of items or filter", path: ["items"] })
  .meta({ id: "DecideApprovals" });
export type DecideBody = z.infer<typeof DecideBody>;

export const DecisionOutcome = z
  .object({
    run_id: z.string(),
    contact_id: z.string(),
    action_index: z.int(),
    status: z.string().meta({ description: "The action's status after the decision (or, for a dry run, the status it would take); not_found when there is no such action" }),
    code: z.string().optional().meta({ description: "Why it was not decided: not_found, digest_mismatch, action_not_pending, validation_error" }),
    message: z.string().optional(),
  })
  .meta({ id: "DecisionOutcome" });

export const DecideResult = z.object({
  status: z.literal("success"),
  decided: z.int(),
  dry_run: z.boolean(),
  results: z.array(DecisionOutcome),
});

