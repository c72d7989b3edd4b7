import { z } from "zod";
import { ACTION, CONTACT, RUN_STATUSES } from "../runs/machine";
import { SKIP_REASONS } from "../runs/eligibility";
import { decimal, ListMeta, Pagination, Timestamp, WHOLE } from "./common";
import { freeJsonObject } from "./json";
import { TRANSPORTS } from "../delivery/email-sender";

export const TriggerBody = z
  .strictObject({
    contact_ids: z
      .array(z.string().max(64))
      .min(1)
      .max(1000)
      .refine((ids) => new Set(ids).size === ids.length, "Contact ids must not repeat")
      .optional()
      .meta({ description: "1-1000 contacts; without it the agent's monitoring filter picks them" }),
  })
  .meta({ id: "TriggerRun" });

export const TriggerResult = z
  .object({
    status: z.literal("success"),
    job_id: z.string(),
    run_id: z.string(),
    contact_count: z.int(),
    skipped: z
      .array(z.object({ contact_id: z.string(), reason: z.enum(SKIP_REASONS) }))
      .meta({ description: "Contacts left out and why (the first reason that applies, in this enum's order); at most 1000" }),
  })
  .meta({ id: "TriggerResult" });

export const RunParams = z.strictObject({ runId: z.string().max(64) });
export const ActionParamsPath = z.strictObject({
  runId: z.string().max(64),
  contactId: z.string().max(64),
  // Canonical decimals only: "00" or "01" names no action.
  actionIndex: z.string().regex(/^(0|[1-9]\d{0,3})$/).transform(Number),
});

export const ApproveBody = z
  .strictObject({
    params: freeJsonObject(z.string()).optional().meta({ description: "Edits merged over the proposed params; validated for the action type" }),
    reason: z.string().max(2000).optional(),
    digest: z.string().max(100).optional().meta({ description: "The digest you reviewed; 409 digest_mismatch if the action changed" }),
  })
  .meta({ id: "ApproveAction" });
export const RejectBody = z
  .strictObject({
    reason: z.string().max(2000).optional(),
    digest: z.string().max(100).optional().meta({ description: "The digest you reviewed; 409 digest_mismatch if the action changed" }),
  })
  .meta({ id: "RejectAction" });

export const RunViewQuery = z.strictObject({
  contacts_limit: z.preprocess(decimal, z.int(WHOLE).min(1).max(1000).default(100)).meta({ description: "Contacts per page (1-1000)" }),
  contacts_offset: z.preprocess(decimal, z.int(WHOLE).min(0).default(0)),
  contact_status: z.enum(CONTACT.statuses).optional().meta({ description: "Only contacts in this status" }),
});

export const ListRunsQuery = Pagination.extend({ status: z.enum(RUN_STATUSES).optional() });

const Counts = z.object({
  pending_approval: z.int(),
  approved: z.int(),
  rejected: z.int(),
  completed: z.int(),
  failed: z.int(),
  invalidated: z.int(),
  cancelled: z.int(),
});

export const Run = z
  .object({
    id: z.string(),
    job_id: z.string(),
    agent_id: z.string(),
    status: z.enum(RUN_STATUSES),
    trigger: z.enum(["manual", "schedule", "event"]),
    contact_count: z.int(),
    counts: Counts,
    usage: z
      .object({ proposals: z.int(), input_tokens: z.int(), output_tokens: z.int() })
      .meta({ description: "Proposals a model wrote for this run, and the tokens they took" }),
    created_at: Timestamp,
    started_at: Timestamp.nullable(),
    completed_at: Timestamp.nullable(),
    error: z.string().nullable(),
  })
  .meta({ id: "Run" });

export const Action = z
  .object({
    index: z.int(),
    step_id: z.string(),
    type: z.string(),
    status: z.enum(ACTION.statuses),
    identity_id: z.string().nullable(),
    params: z.record(z.string(), z.json()),
    original_params: z.record(z.string(), z.json()).optional(),
    reasoning: z.string(),
    digest: z.string(),
    proposed_at: Timestamp,
    decided_at: Timestamp.nullable(),
    decision: z.object({ type: z.enum(["approve", "reject"]), by_key_id: z.string().nullable(), reason: z.string().nullable(), edited: z.boolean() }).nullable(),
    scheduled_for: Timestamp.nullable(),
    attempts: z.int().meta({ description: "Executions tried so far" }),
    executed_at: Timestamp.nullable(),
    result: z.record(z.string(), z.json()).nullable(),
    error: z.string().nullable(),
    generation: z
      .object({ provider: z.string(), model: z.string(), input_tokens: z.int(), output_tokens: z.int(), latency_ms: z.int(), attempts: z.int() })
      .nullable()
      .meta({ description: "How a model wrote the proposal; null for builtin" }),
    estimated_send_at: Timestamp.nullable().meta({
      description:
        "Pending emails: when it would go out if approved now, given the identity's send window and its daily limit (emails already sent or held today, oldest proposals first)",
    }),
  })
  .meta({ id: "Action" });

export const RunContact = z
  .object({
    contact_id: z.string(),
    contact: z
      .object({
        email: z.string(),
        first_name: z.string().nullable(),
        last_name: z.string().nullable(),
        company: z.string().nullable(),
        job_title: z.string().nullable(),
        lifecycle_stage: z.string().nullable(),
      })
      .nullable(),
    status: z.enum(CONTACT.statuses),
    current_step: z.int().nullable(),
    current_step_id: z.string().nullable(),
    next_step_at: Timestamp.nullable(),
    stop_reason: z.string().nullable(),
    actions: z.array(Action),
  })
  .meta({ id: "RunContact" });

export const RunList = z.object({ status: z.literal("success"), runs: z.array(Run), ...ListMeta });
export const RunDetail = z.object({
  status: z.literal("success"),
  run: Run.extend({
    contacts: z.array(RunContact),
    contacts_total: z.int().meta({ description: "Contacts matching contact_status (all of them without it)" }),
    contacts_limit: z.int(),
    contacts_offset: z.int(),
    contacts_next_offset: z.int().nullable().meta({ description: "Where the next page starts; null on the last page. A page also ends early at about 1 MB." }),
  }),
});
export const RunEnvelope = z.object({ status: z.literal("success"), run: Run });
export const ActionEnvelope = z.object({ status: z.literal("success"), action: Action });

const DELIVERY_STATUSES = ["scheduled", "sending", "sent", "delivered", "bounced", "complained", "failed"] as const;
export const ListOutboxQuery = Pagination.extend({
  run_id: z.string().max(64).optional(),
  contact_id: z.string().max(64).optional(),
  status: z.enum(DELIVERY_STATUSES).optional(),
});
export const Delivery = z
  .object({
    id: z.string(),
    channel: z.string(),
    action: z.object({ run_id: z.string(), agent_id: z.string(), contact_id: z.string(), index: z.int(), type: z.string() }),
    contact: z.object({ id: z.string(), email: z.string(), first_name: z.string().nullable(), last_name: z.string().nullable() }).nullable(),
    identity: z.object({ id: z.string(), first_name: z.string(), last_name: z.string().nullable(), email_address: z.string().nullable() }).nullable(),
    params: z.record(z.string(), z.json()),
    transport: z.enum(TRANSPORTS).meta({
      description: "How it left. LinkedIn, CRM and task actions are always `outbox`: delivered here for a person or an integration to carry out",
    }),
    status: z.enum(DELIVERY_STATUSES).meta({
      description:
        "`scheduled`: a later day's slot held under the identity's daily limit; `sending`: handed to the provider, not yet confirmed; `sent`; then `delivered`, `bounced` or `complained` as the provider reports; `failed`: refused (see `error`)",
    }),
    message_id: z.string().nullable().meta({ description: "The email's Message-ID header, which replies name" }),
    provider_message_id: z.string().nullable().meta({ description: "The provider's id for the email (Resend's email id, Cloudflare's Message-ID)" }),
    send_day: z.string().nullable().meta({ description: "The identity's local day (YYYY-MM-DD) the email counts against its daily limit" }),
    error: z.string().nullable(),
    created_at: Timestamp,
    updated_at: Timestamp.nullable(),
  })
  .meta({ id: "Delivery" });
export const OutboxList = z.object({ status: z.literal("success"), deliveries: z.array(Delivery), ...ListMeta });
