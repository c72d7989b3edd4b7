import { sql } from "drizzle-orm";
import { webhookAttempts, webhookDeliveries, webhookEndpoints, webhookEvents } from "../db/schema";
import type { Env, WebhookMessage } from "../env";
import { prepare, rowsOf } from "../lib/d1";
import { messageOf } from "../lib/errors";
import { attemptDelivery, ATTEMPT_TIMEOUT_MS, type AttemptResult } from "./attempt";
import { endpointFailed, endpointSucceeded, type EndpointChange } from "./endpoint-health";
import { signingSecrets } from "./secrets";
import { checkWebhookUrl } from "./url-policy";

/** Seconds between attempts (CONTRACT.md section 12): ten attempts over about three and a half days. */
export const RETRY_SCHEDULE_S = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];
export const MAX_ATTEMPTS = RETRY_SCHEDULE_S.length + 1;
/** An attempt holds its delivery this long: past the 10 s timeout and the write of its outcome. */
const LEASE_MS = 30_000;
/** Queues delay a message by at most 12 hours; longer waits take more than one hop. */
const QUEUE_MAX_DELAY_S = 43_200;
/** A message arriving this early is close enough to its time. */
const EARLY_MS = 1_000;

/** The wait before the retry after `failed` failed attempts, within ±10 %, so retries after an outage spread out. */
export function retryDelayMs(failed: number, random = Math.random()): number {
  return Math.round(RETRY_SCHEDULE_S[failed - 1]! * 1000 * (0.9 + 0.2 * random));
}

type Claimed = { endpoint_id: string; event_id: string; attempts: number; manual: number };
type DeliveryState = { endpoint_id: string; event_id: string; status: string; next_attempt_at: number; lease_until: number | null };
type EventRow = { id: string; workspace_id: string; type: string; data: string; created_at: number };
type EndpointRow = { id: string; url: string; enabled: number; disabled_reason: string | null; secret: string; previous_secret: string | null; previous_secret_expires_at: number | null };
type Outcome = { endpoint_id: string; event_id: string; status: "pending" | "succeeded" | "failed"; attempted: boolean; next: number | null; error: string | null };

/**
 * Consumes the webhooks queue: each message is one delivery. It takes the delivery's lease
 * (so a duplicate message never makes a second attempt at once), attempts it, and records
 * the attempt, the delivery's new state and the endpoint's health in one D1 batch before
 * acknowledging. A failed attempt is retried on the schedule through `retry({ delaySeconds })`.
 */
export async function consumeWebhooks(batch: MessageBatch<WebhookMessage>, env: Env, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<void> {
  const d1 = env.DB;
  const now = Date.now();
  const leaseUntil = now + LEASE_MS;
  const pairs = JSON.stringify(batch.messages.map((m) => [m.body.endpoint_id, m.body.event_id]));
  const named = sql`(endpoint_id, event_id) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(${pairs}))`;
  const results = await d1.batch([
    prepare(d1, sql`
      UPDATE ${webhookDeliveries} SET lease_until = ${leaseUntil}, updated_at = ${now}
      WHERE ${named} AND status = 'pending' AND next_attempt_at <= ${now + EARLY_MS} AND coalesce(lease_until, 0) <= ${now}
      RETURNING endpoint_id, event_id, attempts, manual`),
    prepare(d1, sql`SELECT endpoint_id, event_id, status, next_attempt_at, lease_until FROM ${webhookDeliveries} WHERE ${named}`),
    prepare(d1, sql`SELECT id, workspace_id, type, data, created_at FROM ${webhookEvents} WHERE id IN (SELECT json_extract(value, '$[1]') FROM json_each(${pairs}))`),
    prepare(d1, sql`
      SELECT id, url, enabled, disabled_reason, secret, previous_secret, previous_secret_expires_at FROM ${webhookEndpoints}
      WHERE id IN (SELECT json_extract(value, '$[0]') FROM json_each(${pairs}))`),
  ]);
  const [claimed, states] = [rowsOf<Claimed>(results[0]), rowsOf<DeliveryState>(results[1])];
  const events = rowsOf<EventRow>(results[2]);
  const endpoints = rowsOf<EndpointRow>(results[3]);
  const eventById = new Map(events.map((e) => [e.id, e]));
  const endpointById = new Map(endpoints.map((e) => [e.id, e]));
  const allowHttp = env.WEBHOOKS_ALLOW_HTTP === "true";

  const attempts: (AttemptResult & { endpoint_id: string; event_id: string; number: number; at: number })[] = [];
  const outcomes = await Promise.all(
    claimed.map(async (delivery): Promise<Outcome> => {
      const endpoint = endpointById.get(delivery.endpoint_id)!;
      const event = eventById.get(delivery.event_id)!;
      if (!endpoint.enabled) return { ...key(delivery), status: "failed", attempted: false, next: null, error: `Not sent: the endpoint is disabled (${endpoint.disabled_reason ?? "by request"})` };
      const at = Date.now();
      const verdict = checkWebhookUrl(endpoint.url, { allowHttp });
      let result: AttemptResult;
      if (!verdict.ok) result = { statusCode: null, excerpt: null, error: `Not sent: ${verdict.message}`, durationMs: 0 };
      else {
        try {
          const secrets = await signingSecrets(env, endpoint, at);
          const message = { id: event.id, workspaceId: event.workspace_id, type: event.type, data: JSON.parse(event.data), createdAt: event.created_at };
          result = await attemptDelivery(endpoint.url, secrets, message, timeoutMs);
        } catch (error) {
          result = { statusCode: null, excerpt: null, error: `Not sent: ${messageOf(error)}`, durationMs: 0 };
        }
      }
      const number = delivery.attempts + 1;
      attempts.push({ ...result, ...key(delivery), number, at });
      return outcomeOf(delivery, number, result, at);
    }),
  );
  await record(d1, now, leaseUntil, attempts, outcomes, healthChanges(attempts, now));

  const outcomeOfMessage = new Map(outcomes.map((o) => [`${o.endpoint_id} ${o.event_id}`, o]));
  const stateOfMessage = new Map(states.map((s) => [`${s.endpoint_id} ${s.event_id}`, s]));
  const seen = new Set<string>();
  for (const message of batch.messages) {
    const id = `${message.body.endpoint_id} ${message.body.event_id}`;
    // The same delivery twice in one batch: one message carries it on.
    if (seen.has(id)) {
      message.ack();
      continue;
    }
    seen.add(id);
    const outcome = outcomeOfMessage.get(id);
    // Attempted here: a failure with retries left comes back when its next attempt is due.
    if (outcome) {
      if (outcome.status === "pending") message.retry({ delaySeconds: delaySeconds(outcome.next! - now) });
      else message.ack();
      continue;
    }
    // Not attempted here: done (ack), or not yet due or held by another attempt (come back then).
    const state = stateOfMessage.get(id);
    if (state?.status !== "pending") message.ack();
    else message.retry({ delaySeconds: delaySeconds(Math.max(state.next_attempt_at, state.lease_until ?? 0) - now) });
  }
}

const key = (d: { endpoint_id: string; event_id: string }) => ({ endpoint_id: d.endpoint_id, event_id: d.event_id });
const delaySeconds = (ms: number) => Math.min(Math.max(Math.ceil(ms / 1000), 1), QUEUE_MAX_DELAY_S);

/** 2xx delivers; a 410 ends the delivery (and disables the endpoint); anything else retries while attempts remain. */
function outcomeOf(delivery: Claimed, number: number, result: AttemptResult, at: number): Outcome {
  const { statusCode } = result;
  if (statusCode !== null && statusCode >= 200 && statusCode < 300) return { ...key(delivery), status: "succeeded", attempted: true, next: null, error: null };
  const error = result.error ?? `The endpoint answered ${statusCode}`;
  if (statusCode === 410 || delivery.manual || number >= MAX_ATTEMPTS) return { ...key(delivery), status: "failed", attempted: true, next: null, error };
  return { ...key(delivery), status: "pending", attempted: true, next: at + retryDelayMs(number), error };
}

/** Each endpoint's health after this batch: any success clears its failing streak; a 410 disables it. */
function healthChanges(attempts: (AttemptResult & { endpoint_id: string; at: number })[], now: number): EndpointChange[] {
  const byEndpoint = Map.groupBy(attempts, (a) => a.endpoint_id);
  return [...byEndpoint].map(([endpointId, tries]) => {
    if (tries.some((t) => t.statusCode !== null && t.statusCode >= 200 && t.statusCode < 300)) return endpointSucceeded(endpointId);
    return endpointFailed(endpointId, Math.min(...tries.map((t) => t.at)), tries.some((t) => t.statusCode === 410), now);
  });
}

/** The batch's attempts, deliveries and endpoint health in one D1 batch; a delivery whose lease lapsed meanwhile is not overwritten. */
async function record(d1: D1Database, now: number, leaseUntil: number, attempts: (AttemptResult & { endpoint_id: string; event_id: string; number: number; at: number })[], outcomes: Outcome[], health: EndpointChange[]) {
  if (outcomes.length === 0) return;
  const attemptRows = JSON.stringify(attempts.map((a) => [a.endpoint_id, a.event_id, a.number, a.at, a.durationMs, a.statusCode, a.excerpt, a.error]));
  const outcomeRows = JSON.stringify(outcomes);
  await d1.batch([
    prepare(d1, sql`
      INSERT INTO ${webhookAttempts} (endpoint_id, event_id, number, attempted_at, duration_ms, status_code, response_excerpt, error)
      SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7 FROM json_each(${attemptRows})
      WHERE true ON CONFLICT DO NOTHING`),
    prepare(d1, sql`
      UPDATE ${webhookDeliveries} SET status = o.value ->> 'status', attempts = attempts + (o.value ->> 'attempted'),
        next_attempt_at = coalesce(o.value ->> 'next', next_attempt_at), last_error = o.value ->> 'error',
        lease_until = NULL, manual = 0, updated_at = ${now}
      FROM json_each(${outcomeRows}) AS o
      WHERE ${webhookDeliveries.endpointId} = o.value ->> 'endpoint_id' AND ${webhookDeliveries.eventId} = o.value ->> 'event_id'
        AND ${webhookDeliveries.leaseUntil} = ${leaseUntil}`),
    ...health.map((change) => prepare(d1, change)),
  ]);
}
