import { z } from "zod";
import { ApiKey, AuthStatus, CreateApiKeyBody, CreateWorkspaceBody, Workspace } from "../schemas/admin";
import { AgentEnvelope, AgentList, CreateAgentBody, ListAgentsQuery, UpdateAgentBody } from "../schemas/agents";
import { IdParam, Pagination } from "../schemas/common";
import { ActionEnvelope, ActionParamsPath, ApproveBody, ListOutboxQuery, ListRunsQuery, OutboxList, RejectBody, RunDetail, RunEnvelope, RunList, RunParams, RunViewQuery, TriggerBody, TriggerResult } from "../schemas/runs";
import { BatchContactsBody, BatchResult, ContactEnvelope, ContactList, CreateContactBody, ListContactsQuery, NoteList, UpdateContactBody } from "../schemas/contacts";
import { CreateEventsBody, EventList, EventsCreated, ListEventsQuery } from "../schemas/events";
import { InboundResult, ResendEvent } from "../schemas/inbound";
import { CreateIdentityBody, IdentityEnvelope, IdentityList, ListIdentitiesQuery, UpdateIdentityBody } from "../schemas/identities";
import { CreateWebhookEndpointBody, DeliveryParams, ListDeliveriesQuery, TestEventBody, UpdateWebhookEndpointBody, WebhookDeliveryEnvelope, WebhookDeliveryList, WebhookEndpointEnvelope, WebhookEndpointList } from "../schemas/webhooks";
import { ApprovalList, DecideBody, DecideResult, ListApprovalsQuery } from "../schemas/approvals";
import { buildDocument, type Operation } from "./build";

const ok = <T extends z.ZodRawShape>(shape: T) => z.object({ status: z.literal("success"), ...shape });
const Deleted = ok({ deleted: z.literal(true), id: z.string() });

const operations: Operation[] = [
  { method: "get", path: "/v1/health", summary: "Health check", tag: "Service", auth: null,
    success: { status: 200, description: "The service is up", schema: ok({ healthy: z.boolean(), time: z.string() }) } },
  { method: "get", path: "/v1/openapi.json", summary: "OpenAPI document", tag: "Service", auth: null,
    success: { status: 200, description: "This document", schema: z.looseObject({}) } },
  { method: "get", path: "/v1/docs", summary: "API reference", tag: "Service", auth: null,
    success: { status: 200, description: "An interactive reference of this document; its script is a static asset", schema: z.string(), html: true } },
  { method: "get", path: "/v1/auth/status", summary: "Describe the calling key", tag: "Service", auth: "key",
    success: { status: 200, description: "The key's workspace and scopes", schema: AuthStatus } },

  { method: "post", path: "/v1/admin/workspaces", summary: "Create a workspace", tag: "Admin", auth: "admin",
    body: CreateWorkspaceBody, success: { status: 201, description: "Created", schema: ok({ workspace: Workspace }) } },
  { method: "post", path: "/v1/admin/workspaces/:id/api-keys", summary: "Create an API key", tag: "Admin", auth: "admin",
    params: IdParam, body: CreateApiKeyBody, bodyRequired: false,
    success: { status: 201, description: "Created; `key` is shown only here", schema: ok({ api_key: ApiKey }) } },
  { method: "delete", path: "/v1/admin/api-keys/:id", summary: "Revoke an API key", tag: "Admin", auth: "admin",
    params: IdParam, success: { status: 200, description: "Revoked; stops working within 10 seconds", schema: ok({ api_key: ApiKey }) } },

  { method: "get", path: "/v1/agents", summary: "List agents", tag: "Agents", auth: "agents:read",
    query: ListAgentsQuery, success: { status: 200, description: "Newest first", schema: AgentList } },
  { method: "post", path: "/v1/agents", summary: "Create an agent", tag: "Agents", auth: "agents:write",
    body: CreateAgentBody, success: { status: 201, description: "Created", schema: AgentEnvelope } },
  { method: "get", path: "/v1/agents/:id", summary: "Get an agent", tag: "Agents", auth: "agents:read",
    params: IdParam, success: { status: 200, description: "The agent", schema: AgentEnvelope } },
  { method: "patch", path: "/v1/agents/:id", summary: "Update an agent", tag: "Agents", auth: "agents:write",
    params: IdParam, body: UpdateAgentBody, success: { status: 200, description: "Updated", schema: AgentEnvelope } },
  { method: "delete", path: "/v1/agents/:id", summary: "Delete an agent", tag: "Agents", auth: "agents:write",
    params: IdParam, success: { status: 200, description: "Deleted with its runs", schema: Deleted } },

  { method: "get", path: "/v1/contacts", summary: "List contacts", tag: "Contacts", auth: "contacts:read",
    query: ListContactsQuery, success: { status: 200, description: "Newest first", schema: ContactList } },
  { method: "post", path: "/v1/contacts", summary: "Create a contact", tag: "Contacts", auth: "contacts:write",
    body: CreateContactBody, errors: [409], success: { status: 201, description: "Created; 409 `already_exists` if the email is taken (any case)", schema: ContactEnvelope } },
  { method: "post", path: "/v1/contacts/batch", summary: "Upsert contacts by email", tag: "Contacts", auth: "contacts:write",
    body: BatchContactsBody, success: { status: 200, description: "All stored or none; counts of created and updated", schema: BatchResult } },
  { method: "get", path: "/v1/contacts/:id", summary: "Get a contact", tag: "Contacts", auth: "contacts:read",
    params: IdParam, success: { status: 200, description: "The contact", schema: ContactEnvelope } },
  { method: "patch", path: "/v1/contacts/:id", summary: "Update a contact", tag: "Contacts", auth: "contacts:write",
    params: IdParam, body: UpdateContactBody, success: { status: 200, description: "Updated", schema: ContactEnvelope } },
  { method: "delete", path: "/v1/contacts/:id", summary: "Delete a contact", tag: "Contacts", auth: "contacts:write",
    params: IdParam, success: { status: 200, description: "Deleted with its events", schema: Deleted } },
  { method: "get", path: "/v1/contacts/:id/events", summary: "List a contact's events", tag: "Events", auth: "contacts:read",
    params: IdParam, query: ListEventsQuery, success: { status: 200, description: "Newest first by occurred_at", schema: EventList } },

  { method: "get", path: "/v1/contacts/:id/notes", summary: "List a contact's notes", tag: "Contacts", auth: "contacts:read",
    params: IdParam, query: Pagination, success: { status: 200, description: "Newest first; create_note actions write these", schema: NoteList } },

  { method: "get", path: "/v1/identities", summary: "List identities", tag: "Identities", auth: "identities:read",
    query: ListIdentitiesQuery, success: { status: 200, description: "Newest first", schema: IdentityList } },
  { method: "post", path: "/v1/identities", summary: "Create an identity", tag: "Identities", auth: "identities:write",
    body: CreateIdentityBody, success: { status: 201, description: "Created", schema: IdentityEnvelope } },
  { method: "get", path: "/v1/identities/:id", summary: "Get an identity", tag: "Identities", auth: "identities:read",
    params: IdParam, success: { status: 200, description: "The identity", schema: IdentityEnvelope } },
  { method: "patch", path: "/v1/identities/:id", summary: "Update an identity", tag: "Identities", auth: "identities:write",
    params: IdParam, body: UpdateIdentityBody, success: { status: 200, description: "Updated", schema: IdentityEnvelope } },
  { method: "delete", path: "/v1/identities/:id", summary: "Delete an identity", tag: "Identities", auth: "identities:write",
    params: IdParam, errors: [409], success: { status: 200, description: "Deleted; 409 `in_use` while an agent uses it", schema: Deleted } },

  { method: "post", path: "/v1/events", summary: "Record events", tag: "Events", auth: "events:write",
    body: CreateEventsBody, success: { status: 201, description: "Stored, all or none", schema: EventsCreated } },

  { method: "post", path: "/v1/agents/:id/trigger", summary: "Trigger an agent run", tag: "Runs", auth: "agents:trigger",
    params: IdParam, body: TriggerBody, bodyRequired: false, errors: [409],
    success: { status: 200, description: "The run is queued, with who was skipped and why; 409 agent_not_runnable, provider_not_configured, sender_required, email_transport_not_configured, no_matching_contacts or no_eligible_contacts", schema: TriggerResult } },
  { method: "get", path: "/v1/agents/:id/runs", summary: "List agent runs", tag: "Runs", auth: "agents:read",
    params: IdParam, query: ListRunsQuery, success: { status: 200, description: "Newest first", schema: RunList } },
  { method: "get", path: "/v1/agents/runs/:runId", summary: "Get a single run", tag: "Runs", auth: "agents:read",
    params: RunParams, query: RunViewQuery, success: { status: 200, description: "The run with one page of its contacts, each with its current details and actions", schema: RunDetail } },
  { method: "post", path: "/v1/agents/runs/:runId/cancel", summary: "Cancel a run", tag: "Runs", auth: "agents:trigger",
    params: RunParams, errors: [409], success: { status: 200, description: "Cancelled; 409 run_not_active when it had finished", schema: RunEnvelope } },
  { method: "post", path: "/v1/agents/runs/:runId/contacts/:contactId/actions/:actionIndex/approve", summary: "Approve a pending action",
    tag: "Runs", auth: "agents:approve", params: ActionParamsPath, body: ApproveBody, bodyRequired: false, errors: [409],
    success: { status: 200, description: "Approved and executed; 409 action_not_pending or digest_mismatch", schema: ActionEnvelope } },
  { method: "post", path: "/v1/agents/runs/:runId/contacts/:contactId/actions/:actionIndex/reject", summary: "Reject a pending action",
    tag: "Runs", auth: "agents:approve", params: ActionParamsPath, body: RejectBody, bodyRequired: false, errors: [409],
    success: { status: 200, description: "Rejected; the contact's sequence ends. 409 action_not_pending", schema: ActionEnvelope } },
  { method: "get", path: "/v1/outbox", summary: "List outbox deliveries", tag: "Runs", auth: "agents:read",
    query: ListOutboxQuery, success: { status: 200, description: "What outbound actions would have sent, newest first", schema: OutboxList } },
  { method: "get", path: "/v1/approvals", summary: "List pending approvals across runs", tag: "Approvals", auth: "agents:read",
    query: ListApprovalsQuery, success: { status: 200, description: "Every pending action of the workspace, oldest first, from D1's inbox index", schema: ApprovalList } },
  { method: "post", path: "/v1/approvals/decide", summary: "Approve or reject many actions", tag: "Approvals", auth: "agents:approve",
    body: DecideBody, success: { status: 200, description: "Per-item results, each as the single decision would answer it; dry_run decides nothing", schema: DecideResult } },

  { method: "get", path: "/v1/webhook-endpoints", summary: "List webhook endpoints", tag: "Webhooks", auth: "webhooks:read",
    query: Pagination, success: { status: 200, description: "Newest first; secrets are never listed", schema: WebhookEndpointList } },
  { method: "post", path: "/v1/webhook-endpoints", summary: "Create a webhook endpoint", tag: "Webhooks", auth: "webhooks:write",
    body: CreateWebhookEndpointBody, errors: [409],
    success: { status: 201, description: "Created; `secret` is shown only here and on rotation. 409 limit_reached (20 per workspace) or webhooks_not_configured (no ENCRYPTION_KEY)", schema: WebhookEndpointEnvelope } },
  { method: "get", path: "/v1/webhook-endpoints/:id", summary: "Get a webhook endpoint", tag: "Webhooks", auth: "webhooks:read",
    params: IdParam, success: { status: 200, description: "The endpoint, without its secret", schema: WebhookEndpointEnvelope } },
  { method: "patch", path: "/v1/webhook-endpoints/:id", summary: "Update a webhook endpoint", tag: "Webhooks", auth: "webhooks:write",
    params: IdParam, body: UpdateWebhookEndpointBody, success: { status: 200, description: "Updated; `enabled: true` clears disabled_reason and failing_since", schema: WebhookEndpointEnvelope } },
  { method: "delete", path: "/v1/webhook-endpoints/:id", summary: "Delete a webhook endpoint", tag: "Webhooks", auth: "webhooks:write",
    params: IdParam, success: { status: 200, description: "Deleted with its deliveries", schema: Deleted } },
  { method: "post", path: "/v1/webhook-endpoints/:id/rotate-secret", summary: "Rotate a webhook endpoint's secret", tag: "Webhooks", auth: "webhooks:write",
    params: IdParam, errors: [409],
    success: { status: 200, description: "The new `secret`, shown only here; the previous one also signs for 24 hours. 409 webhooks_not_configured or secret_rotating", schema: WebhookEndpointEnvelope } },
  { method: "post", path: "/v1/webhook-endpoints/:id/test", summary: "Send a test event", tag: "Webhooks", auth: "webhooks:write",
    params: IdParam, body: TestEventBody, bodyRequired: false, errors: [409],
    success: { status: 202, description: "An example event queued for this endpoint only; 409 endpoint_disabled", schema: WebhookDeliveryEnvelope } },
  { method: "get", path: "/v1/webhook-endpoints/:id/deliveries", summary: "List a webhook endpoint's deliveries", tag: "Webhooks", auth: "webhooks:read",
    params: IdParam, query: ListDeliveriesQuery, success: { status: 200, description: "Newest first, each with its event and attempts", schema: WebhookDeliveryList } },
  { method: "post", path: "/v1/webhook-endpoints/:id/deliveries/:deliveryId/redeliver", summary: "Redeliver a webhook delivery", tag: "Webhooks", auth: "webhooks:write",
    params: DeliveryParams, errors: [409],
    success: { status: 202, description: "One more attempt, queued now; 409 endpoint_disabled, or delivery_pending while it is still on its retry schedule", schema: WebhookDeliveryEnvelope } },

  { method: "post", path: "/mcp", summary: "Model Context Protocol", tag: "MCP", auth: "key", idempotent: false,
    body: z.looseObject({ jsonrpc: z.literal("2.0"), method: z.string(), id: z.union([z.string(), z.int()]).optional(), params: z.looseObject({}).optional() }),
    errors: [405, 429],
    errorDescriptions: { 405: "GET and DELETE (`method_not_allowed`): the server is stateless, with no SSE stream and no sessions", 429: "Over the key's MCP budget (`rate_limited`), with Retry-After" },
    success: { status: 200, description: "Streamable HTTP, stateless: one JSON-RPC message in, its answer out (JSON, or a one-event SSE stream for 2025-era clients). Tools: list_agents, get_agent, trigger_agent, list_runs, get_run, review_pending_actions, approve_action, reject_action, list_contacts, upsert_contacts, record_events, list_identities; each needs its REST route's scope, and a missing one is a tool error (isError) naming it", schema: z.looseObject({}) } },

  { method: "get", path: "/v1/unsubscribe/:token", summary: "Show an unsubscribe page", tag: "Unsubscribe", auth: null,
    params: z.strictObject({ token: z.string() }), success: { status: 200, description: "A small HTML page with a confirm button; 404 for a forged or altered token", schema: z.string(), html: true } },
  { method: "post", path: "/v1/unsubscribe/:token", summary: "Unsubscribe by link", tag: "Unsubscribe", auth: null,
    params: z.strictObject({ token: z.string() }),
    success: { status: 200, description: "RFC 8058 one-click: any body (List-Unsubscribe=One-Click or none) is accepted; the contact is unsubscribed and its sequences stop. HTML when the request accepts it", schema: z.object({ status: z.literal("success"), unsubscribed: z.literal(true) }) } },
  { method: "post", path: "/v1/inbound/resend", summary: "Receive a Resend delivery event", tag: "Inbound", auth: null,
    signedBody: ResendEvent, errors: [401, 404, 413],
    errorDescriptions: {
      401: "Missing or bad Standard Webhooks signature, or a timestamp over 5 minutes away (`invalid_signature`)",
      404: "RESEND_WEBHOOK_SECRET is not set (`not_found`)",
      413: "Body over 256 KiB (`payload_too_large`)",
    },
    success: { status: 200, description: "Acknowledged: delivered, hard bounces (which suppress the contact) and complaints (which unsubscribe it) are recorded once; an unknown email or type is acknowledged unrecorded", schema: InboundResult } },
];

let cached: ReturnType<typeof buildDocument> | undefined;

/** Built once per isolate from the route table above. */
export function openApiDocument() {
  cached ??= buildDocument(operations, {
    title: "Cairn API",
    version: "1.0.0",
    description: "AI outreach agents with a human in the loop. Every error uses one envelope; see the Error schema.",
  });
  return cached;
}

export const documentedOperations = operations;
