import { and, count, desc, eq, inArray, type SQL } from "drizzle-orm";
import type { Db } from "../db/client";
import { webhookAttempts, webhookDeliveries, webhookEndpoints, webhookEvents } from "../db/schema";
import { iso } from "../lib/time";
import { eventEnvelope } from "./events";
import { ROTATION_OVERLAP_MS } from "./secrets";

export type EndpointRow = typeof webhookEndpoints.$inferSelect;
type DeliveryRow = typeof webhookDeliveries.$inferSelect;
type EventRow = typeof webhookEvents.$inferSelect;
type AttemptRow = typeof webhookAttempts.$inferSelect;

export const ownedEndpoint = (workspaceId: string, id: string) => and(eq(webhookEndpoints.workspaceId, workspaceId), eq(webhookEndpoints.id, id));

export async function findEndpoint(db: Db, workspaceId: string, id: string): Promise<EndpointRow | undefined> {
  return db.query.webhookEndpoints.findFirst({ where: ownedEndpoint(workspaceId, id) });
}

/** The endpoint as the API shows it; the secret only when just made (create, rotate). */
export function toEndpointJson(row: EndpointRow, secret?: string) {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    enabled: row.enabled,
    description: row.description,
    disabled_reason: row.disabledReason,
    failing_since: iso(row.failingSince),
    secret_rotated_at: row.previousSecretExpiresAt ? iso(row.previousSecretExpiresAt.getTime() - ROTATION_OVERLAP_MS) : null,
    created_at: iso(row.createdAt)!,
    updated_at: iso(row.updatedAt)!,
    ...(secret ? { secret } : {}),
  };
}

export function toDeliveryJson(delivery: DeliveryRow, event: EventRow, attempts: AttemptRow[]) {
  return {
    id: delivery.eventId,
    endpoint_id: delivery.endpointId,
    event_type: delivery.eventType,
    status: delivery.status,
    attempt_count: delivery.attempts,
    next_attempt_at: delivery.status === "pending" ? iso(delivery.nextAttemptAt) : null,
    last_error: delivery.lastError,
    created_at: iso(delivery.createdAt)!,
    updated_at: iso(delivery.updatedAt)!,
    event: eventEnvelope({ ...event, createdAt: event.createdAt.getTime() }),
    attempts: attempts
      .sort((a, b) => a.number - b.number)
      .map((a) => ({
        number: a.number,
        attempted_at: iso(a.attemptedAt)!,
        duration_ms: a.durationMs,
        status_code: a.statusCode,
        response_excerpt: a.responseExcerpt,
        error: a.error,
      })),
  };
}

type DeliveryFilter = { status?: DeliveryRow["status"]; event_type?: string };

/**
 * One page of an endpoint's deliveries, newest first, with their events and attempts: one D1
 * round trip. (Read side by side, not joined: drizzle's D1 batch mixes up joined columns of the same name.)
 */
export async function readDeliveries(db: Db, endpointId: string, filter: DeliveryFilter & { limit: number; offset: number }) {
  const where: SQL[] = [eq(webhookDeliveries.endpointId, endpointId)];
  if (filter.status) where.push(eq(webhookDeliveries.status, filter.status));
  if (filter.event_type) where.push(eq(webhookDeliveries.eventType, filter.event_type));
  // The page's event ids, as the subquery that picks its events and attempts in the same batch.
  const page = db
    .select({ eventId: webhookDeliveries.eventId })
    .from(webhookDeliveries)
    .where(and(...where))
    .orderBy(desc(webhookDeliveries.eventId))
    .limit(filter.limit)
    .offset(filter.offset);
  const [rows, [totals], events, attempts] = await db.batch([
    db.select().from(webhookDeliveries).where(and(...where)).orderBy(desc(webhookDeliveries.eventId)).limit(filter.limit).offset(filter.offset),
    db.select({ total: count() }).from(webhookDeliveries).where(and(...where)),
    db.select().from(webhookEvents).where(inArray(webhookEvents.id, page)),
    db.select().from(webhookAttempts).where(and(eq(webhookAttempts.endpointId, endpointId), inArray(webhookAttempts.eventId, page))),
  ]);
  const eventOf = new Map(events.map((e) => [e.id, e]));
  const attemptsOf = Map.groupBy(attempts, (a) => a.eventId);
  return { deliveries: rows.map((d) => toDeliveryJson(d, eventOf.get(d.eventId)!, attemptsOf.get(d.eventId) ?? [])), total: totals!.total };
}

/** One delivery with its event and attempts, or null. */
export async function readDelivery(db: Db, endpointId: string, eventId: string) {
  const [[delivery], [event], attempts] = await db.batch([
    db.select().from(webhookDeliveries).where(and(eq(webhookDeliveries.endpointId, endpointId), eq(webhookDeliveries.eventId, eventId))),
    db.select().from(webhookEvents).where(eq(webhookEvents.id, eventId)),
    db.select().from(webhookAttempts).where(and(eq(webhookAttempts.endpointId, endpointId), eq(webhookAttempts.eventId, eventId))),
  ]);
  return delivery && event ? toDeliveryJson(delivery, event, attempts) : null;
}
