/** Every webhook event type (CONTRACT.md section 12): the API's enum and the catalogue in the README. */
export const EVENT_TYPES = [
  "run.started",
  "run.awaiting_approval",
  "run.completed",
  "run.failed",
  "run.cancelled",
  "action.proposed",
  "action.approved",
  "action.rejected",
  "action.executed",
  "action.failed",
  "action.invalidated",
  "contact.stopped",
  "contact.unsubscribed",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** An event as stored, whichever writer made it. */
export type WebhookEvent = { id: string; workspaceId: string; type: string; data: Record<string, unknown>; createdAt: number };

/** The body every endpoint receives for `event`, byte for byte the same on every attempt. */
export function eventBody(event: WebhookEvent): string {
  return JSON.stringify(eventEnvelope(event));
}

/** The event as receivers get it (CONTRACT.md section 12), which deliveries also show. */
export function eventEnvelope(event: WebhookEvent) {
  return { id: event.id, type: event.type, created_at: new Date(event.createdAt).toISOString(), workspace_id: event.workspaceId, data: event.data };
}
