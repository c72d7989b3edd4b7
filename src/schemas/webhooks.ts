import { z } from "zod";
import { EVENT_TYPES } from "../webhooks/events";
import { ListMeta, optionalText, Pagination, Timestamp } from "./common";

const EventSelection = z
  .array(z.union([z.enum(EVENT_TYPES), z.literal("*")]))
  .min(1)
  .max(EVENT_TYPES.length)
  .refine((types) => new Set(types).size === types.length, "Event types must not repeat")
  .refine((types) => !types.includes("*") || types.length === 1, 'Use ["*"] alone for every event type')
  .meta({ description: 'Event types to receive, or ["*"] for all of them', example: ["action.proposed", "run.completed"] });

/** Checked against the deployment's rules (https only, no private addresses) by the route. */
const Url = z.string().trim().min(1).max(2048).meta({ description: "https URL; http://localhost only where WEBHOOKS_ALLOW_HTTP=true", example: "https://example.com/hooks/cairn" });

export const CreateWebhookEndpointBody = z
  .strictObject({
    url: Url,
    events: EventSelection.default(["*"]),
    description: optionalText(500),
    enabled: z.boolean().default(true),
  })
  .meta({ id: "CreateWebhookEndpoint" });

export const UpdateWebhookEndpointBody = z
  .strictObject({ url: Url.optional(), events: EventSelection.optional(), description: optionalText(500), enabled: z.boolean().optional() })
  .refine((body) => Object.keys(body).length > 0, "Send at least one field to update")
  .meta({ id: "UpdateWebhookEndpoint" });

export const TestEventBody = z
  .strictObject({ type: z.enum(EVENT_TYPES).optional().meta({ description: "Default: the endpoint's first event type, or run.completed" }) })
  .meta({ id: "TestWebhookEvent" });

export const WebhookEndpoint = z
  .object({
    id: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    enabled: z.boolean(),
    description: z.string().nullable(),
    disabled_reason: z.string().nullable().meta({ description: "Why deliveries stopped: a 410, or five days of failures" }),
    failing_since: Timestamp.nullable(),
    secret_rotated_at: Timestamp.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
    secret: z.string().optional().meta({ description: "whsec_...; only in the answers to create and rotate-secret" }),
  })
  .meta({ id: "WebhookEndpoint" });

export const WebhookEndpointEnvelope = z.object({ status: z.literal("success"), webhook_endpoint: WebhookEndpoint });
export const WebhookEndpointList = z.object({ status: z.literal("success"), webhook_endpoints: z.array(WebhookEndpoint), ...ListMeta });

export const DeliveryParams = z.strictObject({ id: z.string().max(64), deliveryId: z.string().max(64) });

export const ListDeliveriesQuery = Pagination.extend({
  status: z.enum(["pending", "succeeded", "failed"]).optional(),
  event_type: z.enum(EVENT_TYPES).optional(),
});

export const WebhookAttempt = z
  .object({
    number: z.int(),
    attempted_at: Timestamp,
    duration_ms: z.int(),
    status_code: z.int().nullable(),
    response_excerpt: z.string().nullable().meta({ description: "The first kilobyte of the answer" }),
    error: z.string().nullable(),
  })
  .meta({ id: "WebhookAttempt" });

export const WebhookDelivery = z
  .object({
    id: z.string().meta({ description: "The event's id (msg_...): a delivery is one event to one endpoint" }),
    endpoint_id: z.string(),
    event_type: z.string(),
    status: z.enum(["pending", "succeeded", "failed"]),
    attempt_count: z.int(),
    next_attempt_at: Timestamp.nullable(),
    last_error: z.string().nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
    event: z.looseObject({ id: z.string(), type: z.string(), created_at: Timestamp, workspace_id: z.string(), data: z.looseObject({}) }),
    attempts: z.array(WebhookAttempt),
  })
  .meta({ id: "WebhookDelivery" });

export const WebhookDeliveryEnvelope = z.object({ status: z.literal("success"), delivery: WebhookDelivery });
export const WebhookDeliveryList = z.object({ status: z.literal("success"), deliveries: z.array(WebhookDelivery), ...ListMeta });
