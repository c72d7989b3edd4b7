import { sql } from "drizzle-orm";
import { webhookDeliveries, webhookEvents, workspaces } from "../db/schema";
import type { Env, WebhookMessage } from "../env";
import { chunk, prepare, rowsOf } from "../lib/d1";
import type { WebhookEvent } from "./events";

/** Deliveries one claim hands to the queue; the rest wait for the next claim or the sweep. */
const CLAIM_LIMIT = 1000;
/** A delivery due this long ago that nobody holds lost its queue message: the sweep sends it again. */
export const STALE_AFTER_MS = 2 * 60 * 1000;
/** `sendBatch` takes at most 100 messages. */
const SEND_BATCH = 100;

/**
 * Writes events (one statement, whatever their number): an id already stored is skipped, so
 * copying an outbox twice delivers once, and nothing is written for a deleted workspace. Each
 * new row fans out to its deliveries (the `webhook_events_fan_out` trigger).
 */
export function insertEvents(d1: D1Database, workspaceId: string, events: WebhookEvent[]): D1PreparedStatement {
  const rows = JSON.stringify(events.map((e) => ({ id: e.id, type: e.type, data: JSON.stringify(e.data), created_at: e.createdAt })));
  return prepare(d1, sql`
    INSERT INTO ${webhookEvents} (id, workspace_id, type, data, created_at)
    SELECT json_extract(value, '$.id'), ${workspaceId}, json_extract(value, '$.type'), json_extract(value, '$.data'), json_extract(value, '$.created_at')
    FROM json_each(${rows}) WHERE EXISTS (SELECT 1 FROM ${workspaces} WHERE id = ${workspaceId})
    ON CONFLICT (id) DO NOTHING`);
}

/**
 * Claims the workspace's deliveries whose first message was never sent (all workspaces' when
 * null): the caller sends them. Claimed once, so two writers never send the same one twice;
 * a caller that dies before sending leaves them to the sweep.
 */
export function claimUnsent(d1: D1Database, workspaceId: string | null): D1PreparedStatement {
  const scope = workspaceId === null ? sql`` : sql`AND workspace_id = ${workspaceId}`;
  return prepare(d1, sql`
    UPDATE ${webhookDeliveries} SET enqueued = 1
    WHERE rowid IN (SELECT rowid FROM ${webhookDeliveries} WHERE enqueued = 0 ${scope} LIMIT ${CLAIM_LIMIT})
    RETURNING endpoint_id, event_id`);
}

export type DeliveryKey = { endpoint_id: string; event_id: string };

/** Hands deliveries to the webhooks queue, 100 messages a call. */
export async function sendDeliveries(env: Env, deliveries: DeliveryKey[]): Promise<void> {
  for (const part of chunk(deliveries, SEND_BATCH)) {
    await env.WEBHOOK_QUEUE.sendBatch(part.map((d): { body: WebhookMessage } => ({ body: { endpoint_id: d.endpoint_id, event_id: d.event_id } })));
  }
}

/**
 * Sends what a write just created: called after a D1 write that may have emitted events. A
 * failure is logged, not thrown: the write stands, and the sweep sends within minutes.
 */
export async function dispatchNew(env: Env, workspaceId: string): Promise<void> {
  await trySend(env, async () => (await claimUnsent(env.DB, workspaceId).all<DeliveryKey>()).results, { workspace_id: workspaceId });
}

/**
 * Sends the deliveries `claim` names, logging a failure rather than throwing it: the write
 * that made them stands, and the cron's sweep sends what was claimed but never sent.
 */
export async function trySend(env: Env, claim: () => Promise<DeliveryKey[]>, context: Record<string, string>): Promise<void> {
  try {
    await sendDeliveries(env, await claim());
  } catch (error) {
    console.error(JSON.stringify({ level: "warn", message: "webhook dispatch failed; the sweep will send", ...context, error: String(error) }));
  }
}

/**
 * The cron's sweep: sends deliveries never sent, and again those due for over two minutes that
 * no attempt holds (their message was lost). Re-sent ones are due again from now, so the next
 * sweep leaves them to their message. A duplicate message is harmless: an attempt takes the
 * delivery's lease first.
 */
export async function sweepWebhooks(env: Env, now = Date.now()): Promise<number> {
  const [unsent, stale] = await env.DB.batch([
    claimUnsent(env.DB, null),
    prepare(env.DB, sql`
      UPDATE ${webhookDeliveries} SET next_attempt_at = ${now}, updated_at = ${now}
      WHERE rowid IN (SELECT rowid FROM ${webhookDeliveries} WHERE status = 'pending' AND next_attempt_at <= ${now - STALE_AFTER_MS}
        AND enqueued = 1 AND coalesce(lease_until, 0) <= ${now} LIMIT ${CLAIM_LIMIT})
      RETURNING endpoint_id, event_id`),
  ]);
  const due = [...rowsOf<DeliveryKey>(unsent), ...rowsOf<DeliveryKey>(stale)];
  await sendDeliveries(env, due);
  return due.length;
}
