import { sql } from "drizzle-orm";
import { runs, webhookDeliveries, webhookEndpoints, webhookEvents } from "../db/schema";
import type { Env, WebhookMessage } from "../env";
import { chunk, prepare, rowsOf } from "../lib/d1";
import { sendOrLeaveToSweep } from "../lib/queue";
import { UNSTARTED_END } from "../runs/run-record";
import type { WebhookEvent } from "./events";

/** Deliveries one claim hands to the queue; the rest wait for the next claim or the sweep. */
const CLAIM_LIMIT = 1000;
/** Claims one dispatch or sweep makes at most; what is left waits for the next minute's sweep. */
const CLAIM_ROUNDS = 20;
/** A delivery due this long ago that nobody holds lost its queue message: the sweep sends it again. */
const STALE_AFTER_MS = 2 * 60 * 1000;
/** `sendBatch` takes at most 100 messages. */
const SEND_BATCH = 100;

/**
 * Writes events (one statement, whatever their number): an id already stored is skipped, so
 * copying an outbox twice delivers once. Nothing is written while the workspace has no
 * enabled endpoint (nobody would receive them; a deleted workspace has none). Each new row
 * fans out to its deliveries (the `webhook_events_fan_out` trigger).
 */
export function insertEvents(d1: D1Database, workspaceId: string, events: WebhookEvent[], runId?: string): D1PreparedStatement {
  const rows = JSON.stringify(events.map((e) => ({ id: e.id, type: e.type, data: JSON.stringify(e.data), created_at: e.createdAt })));
  // A run object's events are not copied once D1 ended the run before ever hearing from it
  // (cancelled or failed while `queued`, announced by the runs_unstarted_event trigger).
  const told = runId === undefined ? sql`` : sql`AND NOT EXISTS (SELECT 1 FROM ${runs} WHERE id = ${runId} AND ${UNSTARTED_END})`;
  return prepare(d1, sql`
    INSERT INTO ${webhookEvents} (id, workspace_id, type, data, created_at)
    SELECT json_extract(value, '$.id'), ${workspaceId}, json_extract(value, '$.type'), json_extract(value, '$.data'), json_extract(value, '$.created_at')
    FROM json_each(${rows}) WHERE EXISTS (SELECT 1 FROM ${webhookEndpoints} WHERE workspace_id = ${workspaceId} AND enabled = 1) ${told}
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
  // A thousand opt-outs with twenty endpoints make 20,000 deliveries: claimed a thousand at a time.
  for (let round = 0; round < CLAIM_ROUNDS; round++) {
    let claimed = 0;
    await trySend(env, async () => {
      const { results } = await claimUnsent(env.DB, workspaceId).all<DeliveryKey>();
      claimed = results.length;
      return results;
    }, { workspace_id: workspaceId });
    if (claimed < CLAIM_LIMIT) return;
  }
}

/** Sends the deliveries `claim` names; a failure is left to the sweep (src/lib/queue.ts). */
export async function trySend(env: Env, claim: () => Promise<DeliveryKey[]>, context: Record<string, string>): Promise<void> {
  await sendOrLeaveToSweep("webhook deliveries", context, async () => sendDeliveries(env, await claim()));
}

/**
 * The cron's sweep: sends deliveries never sent, and again those due for over two minutes that
 * no attempt holds (their message was lost). Re-sent ones are due again from now, so the next
 * sweep leaves them to their message. A duplicate message is harmless: an attempt takes the
 * delivery's lease first.
 */
export async function sweepWebhooks(env: Env, now = Date.now()): Promise<number> {
  let sent = 0;
  for (let round = 0; round < CLAIM_ROUNDS; round++) {
    // Stale first: a row the unsent claim marks in this batch must not be sent twice by it.
    const [stale, unsent] = await env.DB.batch([
      prepare(env.DB, sql`
        UPDATE ${webhookDeliveries} SET next_attempt_at = ${now}, updated_at = ${now}
        WHERE rowid IN (SELECT rowid FROM ${webhookDeliveries} WHERE status = 'pending' AND next_attempt_at <= ${now - STALE_AFTER_MS}
          AND enqueued = 1 AND coalesce(lease_until, 0) <= ${now} LIMIT ${CLAIM_LIMIT})
        RETURNING endpoint_id, event_id`),
      claimUnsent(env.DB, null),
    ]);
    const due = [...rowsOf<DeliveryKey>(unsent), ...rowsOf<DeliveryKey>(stale)];
    await sendDeliveries(env, due);
    sent += due.length;
    if (due.length < CLAIM_LIMIT) break;
  }
  return sent;
}
