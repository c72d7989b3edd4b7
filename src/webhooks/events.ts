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

let lastTime = 0;
let lastRandom = new Uint8Array(10);

/**
 * A `msg_` id: the time in hex milliseconds then 80 random bits, so ids sort by creation;
 * within one millisecond the random part counts up, so one writer's events keep their order.
 * D1's triggers make the same shape in SQL (migrations/0010), which is why it is hex and
 * not the base32 of the other ids.
 */
export function newMessageId(now = Date.now()): string {
  if (now <= lastTime) {
    now = lastTime;
    for (let i = lastRandom.length - 1; i >= 0 && ++lastRandom[i]! === 256; i--) lastRandom[i] = 0;
  } else {
    lastTime = now;
    lastRandom = crypto.getRandomValues(new Uint8Array(10));
  }
  const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, "0");
  return `msg_${hex(now, 12)}${[...lastRandom].map((b) => hex(b, 2)).join("")}`;
}

/** The body every endpoint receives for `event`, byte for byte the same on every attempt. */
export function eventBody(event: WebhookEvent): string {
  return JSON.stringify({
    id: event.id,
    type: event.type,
    created_at: new Date(event.createdAt).toISOString(),
    workspace_id: event.workspaceId,
    data: event.data,
  });
}
