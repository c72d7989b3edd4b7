import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { RUN_STATUSES, type RunCounts } from "../runs/machine";
import type { RunUsage } from "../runs/run-store";

/** Milliseconds since the epoch; serialised as ISO 8601 at the edge of the API. */
const timestamp = (name: string) => integer(name, { mode: "timestamp_ms" });
const json = <T>(name: string) => text(name, { mode: "json" }).$type<T>();

export const workspaces = sqliteTable("workspaces", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: timestamp("created_at").notNull(),
});

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    name: text("name"),
    /** SHA-256 of the secret, hex. The secret itself is never stored. */
    keyHash: text("key_hash").notNull(),
    scopes: json<string[]>("scopes").notNull(),
    createdAt: timestamp("created_at").notNull(),
    revokedAt: timestamp("revoked_at"),
  },
  (t) => [uniqueIndex("api_keys_key_hash").on(t.keyHash), index("api_keys_workspace").on(t.workspaceId)],
);

export const agents = sqliteTable(
  "agents",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description"),
    playbookTemplate: text("playbook_template"),
    playbook: json<unknown>("playbook"),
    capabilities: json<string[]>("capabilities").notNull(),
    identityId: text("identity_id"),
    monitoring: json<unknown>("monitoring").notNull(),
    llmConfig: json<unknown>("llm_config").notNull(),
    enabled: integer("enabled", { mode: "boolean" }).notNull(),
    createdAt: timestamp("created_at").notNull(),
    updatedAt: timestamp("updated_at").notNull(),
    lastRunAt: timestamp("last_run_at"),
  },
  (t) => [
    index("agents_workspace_created").on(t.workspaceId, t.id),
    index("agents_workspace_enabled").on(t.workspaceId, t.enabled, t.id),
    index("agents_workspace_template").on(t.workspaceId, t.playbookTemplate, t.id),
    index("agents_identity").on(t.identityId),
    // The per-minute scheduler reads enabled agents across workspaces.
    index("agents_enabled").on(t.enabled),
  ],
);

export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    /** A workspace id, or `admin` for operator requests. */
    scope: text("scope").notNull(),
    key: text("key").notNull(),
    /** SHA-256 over method, path and body: a repeat must match it exactly. */
    fingerprint: text("fingerprint").notNull(),
    state: text("state", { enum: ["in_flight", "done"] }).notNull(),
    responseStatus: integer("response_status"),
    responseBody: text("response_body"),
    createdAt: timestamp("created_at").notNull(),
    lockedUntil: timestamp("locked_until").notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.key] }), index("idempotency_keys_created").on(t.createdAt)],
);

export const contacts = sqliteTable(
  "contacts",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    email: text("email").notNull(),
    /** Lower-cased email: uniqueness and lookups ignore case. */
    emailKey: text("email_key").notNull(),
    firstName: text("first_name"),
    lastName: text("last_name"),
    company: text("company"),
    jobTitle: text("job_title"),
    lifecycleStage: text("lifecycle_stage"),
    linkedinUrl: text("linkedin_url"),
    timezone: text("timezone"),
    properties: json<Record<string, unknown>>("properties").notNull(),
    unsubscribed: integer("unsubscribed", { mode: "boolean" }).notNull(),
    createdAt: timestamp("created_at").notNull(),
    updatedAt: timestamp("updated_at").notNull(),
    /** Set when an outbound action to the contact is delivered; feeds `not_contacted_within_days`. */
    lastContactedAt: timestamp("last_contacted_at"),
  },
  (t) => [
    uniqueIndex("contacts_workspace_email").on(t.workspaceId, t.emailKey),
    index("contacts_workspace_id").on(t.workspaceId, t.id),
    index("contacts_workspace_stage").on(t.workspaceId, t.lifecycleStage, t.id),
    index("contacts_workspace_unsubscribed").on(t.workspaceId, t.unsubscribed, t.id),
    index("contacts_workspace_created").on(t.workspaceId, t.createdAt),
    index("contacts_workspace_contacted").on(t.workspaceId, t.lastContactedAt),
  ],
);

export type SendWindow = { start: string; end: string; days: number[]; timezone: string };

export const identities = sqliteTable(
  "identities",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    firstName: text("first_name").notNull(),
    lastName: text("last_name"),
    role: text("role"),
    emailAddress: text("email_address"),
    linkedinUrl: text("linkedin_url"),
    dailyLimit: integer("daily_limit").notNull(),
    sendWindow: json<SendWindow>("send_window"),
    createdAt: timestamp("created_at").notNull(),
    updatedAt: timestamp("updated_at").notNull(),
  },
  (t) => [index("identities_workspace_id").on(t.workspaceId, t.id)],
);

export const events = sqliteTable(
  "events",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    contactId: text("contact_id")
      .notNull()
      .references(() => contacts.id, { onDelete: "cascade" }),
    type: text("type").notNull(),
    url: text("url"),
    properties: json<Record<string, unknown>>("properties").notNull(),
    occurredAt: timestamp("occurred_at").notNull(),
    createdAt: timestamp("created_at").notNull(),
  },
  (t) => [
    index("events_contact_time").on(t.contactId, t.occurredAt),
    index("events_contact_type_time").on(t.contactId, t.type, t.occurredAt),
    // Monitoring filters: events of a type in a time window, across the workspace.
    index("events_workspace_type_time").on(t.workspaceId, t.type, t.occurredAt),
  ],
);

export { ACTIVE_RUN_STATUSES, FINISHED_RUN_STATUSES, RUN_STATUSES, type RunCounts, type RunStatus } from "../runs/machine";

/** D1's mirror of each run's summary; the run's Durable Object is the source of truth. */
export const runs = sqliteTable(
  "runs",
  {
    id: text("id").primaryKey(),
    jobId: text("job_id").notNull(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    agentId: text("agent_id")
      .notNull()
      .references(() => agents.id, { onDelete: "cascade" }),
    status: text("status", { enum: RUN_STATUSES }).notNull(),
    trigger: text("trigger", { enum: ["manual", "schedule", "event"] }).notNull(),
    contactCount: integer("contact_count").notNull(),
    counts: json<RunCounts>("counts").notNull(),
    /** What the run's model calls cost; null until its object first reports. */
    usage: json<RunUsage>("usage"),
    /** The agent as it was when triggered: a later edit does not change a run under way. */
    agentSnapshot: json<unknown>("agent_snapshot").notNull(),
    error: text("error"),
    createdAt: timestamp("created_at").notNull(),
    startedAt: timestamp("started_at"),
    completedAt: timestamp("completed_at"),
    /** When the queue message was last sent; the reconciler re-sends runs stuck in `queued`. */
    enqueuedAt: timestamp("enqueued_at").notNull(),
    enqueueAttempts: integer("enqueue_attempts").notNull(),
    /** The run object's write counter: an older summary never overwrites a newer one. */
    mirrorSeq: integer("mirror_seq").notNull().default(0),
    /**
     * The minute a `schedule` run (its cron minute) or an `event` run (the minute its contacts
     * matched) claims: unique per agent and trigger, so a minute handled twice starts one run.
     */
    scheduleSlot: timestamp("schedule_slot"),
  },
  (t) => [
    index("runs_agent").on(t.workspaceId, t.agentId, t.id),
    index("runs_agent_status").on(t.workspaceId, t.agentId, t.status, t.id),
    index("runs_status_enqueued").on(t.status, t.enqueuedAt),
    // NULLs are distinct in a unique index: manual runs never collide here.
    uniqueIndex("runs_agent_trigger_slot").on(t.agentId, t.trigger, t.scheduleSlot),
  ],
);

/** Which contacts a run targets, in trigger order; also finds the runs a stop event concerns. */
export const runContacts = sqliteTable(
  "run_contacts",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    position: integer("position").notNull(),
    contactId: text("contact_id").notNull(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.position] }), index("run_contacts_contact").on(t.contactId, t.runId)],
);

/** The workspace outbox: what outbound actions would have sent. One row per action, ever. */
export const deliveries = sqliteTable(
  "deliveries",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    /** `run_id/contact_id/action_index`: a second execution of the action finds it taken. */
    actionKey: text("action_key").notNull(),
    runId: text("run_id").notNull(),
    agentId: text("agent_id").notNull(),
    contactId: text("contact_id").notNull(),
    actionIndex: integer("action_index").notNull(),
    actionType: text("action_type").notNull(),
    identityId: text("identity_id"),
    channel: text("channel").notNull(),
    params: json<Record<string, unknown>>("params").notNull(),
    createdAt: timestamp("created_at").notNull(),
    /** `outbox`, `resend` or `cloudflare`: how it left (CONTRACT.md section 11). */
    transport: text("transport").notNull().default("outbox"),
    /** `scheduled` (a later day's slot, held under the daily limit), `sending` (handed to the provider, not yet confirmed), `sent`, `delivered`, `bounced`, `complained`, `failed`. */
    status: text("status").notNull().default("sent"),
    /** The email's `Message-ID`: replies name it in `In-Reply-To` / `References`. */
    messageId: text("message_id"),
    providerMessageId: text("provider_message_id"),
    /** The identity's local day (`YYYY-MM-DD`, send-window time zone) the email counts against. */
    sendDay: text("send_day"),
    error: text("error"),
    updatedAt: timestamp("updated_at"),
  },
  (t) => [
    uniqueIndex("deliveries_action_key").on(t.actionKey),
    // The daily limit: an identity's emails on one local day, counted inside the send itself.
    index("deliveries_identity_day").on(t.identityId, t.sendDay, t.status),
    index("deliveries_message_id").on(t.messageId),
    index("deliveries_provider_message").on(t.providerMessageId),
    index("deliveries_workspace").on(t.workspaceId, t.id),
    index("deliveries_workspace_run").on(t.workspaceId, t.runId, t.id),
    // Eligibility: did this agent reach this contact within its cooldown?
    index("deliveries_contact_agent_time").on(t.contactId, t.agentId, t.createdAt),
  ],
);

export const notes = sqliteTable(
  "notes",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    contactId: text("contact_id")
      .notNull()
      .references(() => contacts.id, { onDelete: "cascade" }),
    body: text("body").notNull(),
    /** Set when a run's action wrote the note; unique, so a repeated execution writes nothing. */
    actionKey: text("action_key"),
    runId: text("run_id"),
    createdAt: timestamp("created_at").notNull(),
  },
  (t) => [uniqueIndex("notes_action_key").on(t.actionKey), index("notes_contact").on(t.contactId, t.id)],
);

/** Where a workspace's webhooks go (CONTRACT.md section 12). */
export const webhookEndpoints = sqliteTable(
  "webhook_endpoints",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    /** Event types it receives, or `["*"]`. */
    events: json<string[]>("events").notNull(),
    enabled: integer("enabled", { mode: "boolean" }).notNull(),
    description: text("description"),
    /** The `whsec_` signing secret, sealed with ENCRYPTION_KEY. */
    secret: text("secret").notNull(),
    /** The secret before the last rotation, which also signs until `previous_secret_expires_at`. */
    previousSecret: text("previous_secret"),
    previousSecretExpiresAt: timestamp("previous_secret_expires_at"),
    /** Why the endpoint stopped receiving: a 410, or five days of failures. Cleared when re-enabled. */
    disabledReason: text("disabled_reason"),
    /** The first failed attempt since the last success. */
    failingSince: timestamp("failing_since"),
    createdAt: timestamp("created_at").notNull(),
    updatedAt: timestamp("updated_at").notNull(),
  },
  (t) => [index("webhook_endpoints_workspace").on(t.workspaceId, t.id)],
);

/**
 * Every webhook event, written in the same D1 write as the transition that caused it
 * (or copied from a run object's outbox). Inserting one fans it out to the workspace's
 * endpoints (the `webhook_events_fan_out` trigger).
 */
export const webhookEvents = sqliteTable(
  "webhook_events",
  {
    /** `msg_`: the `webhook-id` receivers deduplicate by. */
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    type: text("type").notNull(),
    data: json<Record<string, unknown>>("data").notNull(),
    /** A test event goes to this endpoint only. */
    endpointId: text("endpoint_id"),
    createdAt: timestamp("created_at").notNull(),
  },
  (t) => [index("webhook_events_workspace").on(t.workspaceId, t.id)],
);

/** One event on its way to one endpoint, named by the event's id under the endpoint. */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    endpointId: text("endpoint_id")
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: "cascade" }),
    eventId: text("event_id")
      .notNull()
      .references(() => webhookEvents.id, { onDelete: "cascade" }),
    workspaceId: text("workspace_id").notNull(),
    eventType: text("event_type").notNull(),
    status: text("status", { enum: ["pending", "succeeded", "failed"] }).notNull(),
    attempts: integer("attempts").notNull(),
    nextAttemptAt: timestamp("next_attempt_at").notNull(),
    /** An attempt under way holds the delivery until then; a lapsed lease may be taken again. */
    leaseUntil: timestamp("lease_until"),
    /** Whether its first queue message was sent; the sweep sends those that were not. */
    enqueued: integer("enqueued", { mode: "boolean" }).notNull(),
    /** A redelivery asked for by hand: one attempt, no retry schedule. */
    manual: integer("manual", { mode: "boolean" }).notNull(),
    lastError: text("last_error"),
    createdAt: timestamp("created_at").notNull(),
    updatedAt: timestamp("updated_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.endpointId, t.eventId] }),
    index("webhook_deliveries_unsent").on(t.enqueued, t.workspaceId),
    index("webhook_deliveries_due").on(t.status, t.nextAttemptAt),
  ],
);

/** Each attempt at a delivery: what the receiver answered, or why there was no answer. */
export const webhookAttempts = sqliteTable(
  "webhook_attempts",
  {
    endpointId: text("endpoint_id")
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: "cascade" }),
    eventId: text("event_id")
      .notNull()
      .references(() => webhookEvents.id, { onDelete: "cascade" }),
    /** 1 for the first attempt. */
    number: integer("number").notNull(),
    attemptedAt: timestamp("attempted_at").notNull(),
    durationMs: integer("duration_ms").notNull(),
    statusCode: integer("status_code"),
    responseExcerpt: text("response_excerpt"),
    error: text("error"),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.eventId, t.number] })],
);

/**
 * Ingested events waiting to be matched against event-driven agents (a queue consumer does
 * it, off the request path); the cron sends again any whose queue message was lost.
 */
export const eventMatchRequests = sqliteTable(
  "event_match_requests",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    contactIds: json<string[]>("contact_ids").notNull(),
    types: json<string[]>("types").notNull(),
    createdAt: timestamp("created_at").notNull(),
    /** When a consumer took it: events arriving after that need a request of their own. */
    claimedAt: timestamp("claimed_at"),
  },
  (t) => [index("event_match_requests_created").on(t.createdAt), index("event_match_requests_waiting").on(t.workspaceId, t.claimedAt)],
);

/** Contacts an event-driven agent matched in one minute: the cron starts one run for each (agent, minute). */
export const eventRunCandidates = sqliteTable(
  "event_run_candidates",
  {
    agentId: text("agent_id")
      .notNull()
      .references(() => agents.id, { onDelete: "cascade" }),
    minute: timestamp("minute").notNull(),
    contactId: text("contact_id").notNull(),
    matchedAt: timestamp("matched_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.agentId, t.minute, t.contactId] }), index("event_run_candidates_minute").on(t.minute)],
);

/**
 * The approvals inbox (CONTRACT.md section 13): every `pending_approval` action of every
 * run, kept exact by the run objects (each proposal adds its row, each decision, stop or
 * cancel removes it, copied with the run's D1 mirror), so the inbox never visits a run object.
 */
export const approvals = sqliteTable(
  "approvals",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    contactId: text("contact_id").notNull(),
    actionIndex: integer("action_index").notNull(),
    workspaceId: text("workspace_id").notNull(),
    agentId: text("agent_id").notNull(),
    type: text("type").notNull(),
    /** The sending identity and its send window as the run took them, for emails' `estimated_send_at`. */
    identityId: text("identity_id"),
    sendWindow: json<SendWindow>("send_window"),
    proposedAt: timestamp("proposed_at").notNull(),
    /** The action as the run's view shows it, and the contact's summary, as JSON. */
    action: json<Record<string, unknown>>("action").notNull(),
    contact: json<Record<string, unknown>>("contact").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.runId, t.contactId, t.actionIndex] }),
    // The inbox order in full, so a page is read in order and never sorted.
    index("approvals_workspace_order").on(t.workspaceId, t.proposedAt, t.runId, t.contactId, t.actionIndex),
    index("approvals_workspace_agent_order").on(t.workspaceId, t.agentId, t.proposedAt, t.runId, t.contactId, t.actionIndex),
    index("approvals_workspace_type_order").on(t.workspaceId, t.type, t.proposedAt, t.runId, t.contactId, t.actionIndex),
    // An email's place among its identity's pending emails (its estimated send slot), ranked
    // from this index alone: it holds the whole inbox order.
    index("approvals_identity_queue").on(t.identityId, t.type, t.proposedAt, t.runId, t.contactId, t.actionIndex),
  ],
);

/**
 * Each workspace's inbox in one row, kept by triggers (migration 0015) in the statement that
 * makes each change: `pending` counts its entries, so the unfiltered inbox reads its total
 * here instead of counting the index; `version` moves with every change a page of the inbox
 * depends on (an entry added or removed, a delivery taking or freeing a send slot, a sender's
 * daily limit), so a page read at one version stands for as long as the version does.
 */
export const inboxes = sqliteTable("inboxes", {
  workspaceId: text("workspace_id").primaryKey(),
  pending: integer("pending").notNull(),
  version: integer("version").notNull(),
});
