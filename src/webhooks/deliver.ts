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

type Leased = { endpoint_id: string; event_id: string; attempts: number; manual: number };
type DeliveryState = { endpoint_id: string; event_id: string; status: string; next_attempt_at: number; lease_until: number | null };
type StoredEvent = { id: string; workspace_id: string; type: string; data: string; created_at: number };
type EndpointState = { id: string; url: string; enabled: number; disabled_reason: string | null; secret: string; previous_secret: string | null; previous_secret_expires_at: number | null };
type Outcome = { endpoint_id: string; event_id: string; status: "pending" | "succeeded" | "failed"; attempted: boolean; next: number | null; error: string | null };
type Attempt = AttemptResult & { endpoint_id: string; event_id: string; number: number; at: number };

/**
 * Requests one batch keeps in flight: Workers let an invocation wait on six at once and queue
 * the rest, whose timeouts would run out in the queue. Each attempt's 10 s start when it goes.
 */
const IN_FLIGHT = 6;
/** When D1 fails the batch, its messages come back after this long, not at once. */
const D1_RETRY_S = 30;

/**
 * Consumes the webhooks queue: each message is one delivery. It takes the delivery's lease
 * (so a duplicate message never makes a second attempt at once), attempts it, and records
 * the attempt, the delivery's new state and the endpoint's health in one D1 batch before
 * acknowledging. A failed attempt is retried on the schedule through `retry({ delaySeconds })`;
 * a D1 failure retries the batch's messages later (an attempt it could not record is made again).
 */
export async function consumeWebhooks(batch: MessageBatch<WebhookMessage>, env: Env, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<void> {
  const now = Date.now();
  try {
    const { leased, states, events, endpoints, leaseUntil } = await lease(env.DB, batch.messages, now);
    const eventById = new Map(events.map((e) => [e.id, e]));
    const endpointById = new Map(endpoints.map((e) => [e.id, e]));
    const attempts: Attempt[] = [];
    const outcomes = await inTurns(leased, IN_FLIGHT, async (delivery): Promise<Outcome> => {
      const endpoint = endpointById.get(delivery.endpoint_id)!;
      if (!endpoint.enabled) return { ...key(delivery), status: "failed", attempted: false, next: null, error: `Not sent: the endpoint is disabled (${endpoint.disabled_reason ?? "by request"})` };
      const at = Date.now();
      const result = await attemptOnce(env, endpoint, eventById.get(delivery.event_id)!, at, timeoutMs);
      const number = delivery.attempts + 1;
      attempts.push({ ...result, ...key(delivery), number, at });
      return outcomeOf(delivery, number, result, at);
    });
    await record(env.DB, now, leaseUntil, attempts, outcomes, healthChanges(attempts, now));
    settle(batch.messages, outcomes, states, now);
  } catch (error) {
    console.error(JSON.stringify({ level: "error", queue: batch.queue, message: "webhook batch failed; retried later", error: messageOf(error) }));
    for (const message of batch.messages) message.retry({ delaySeconds: D1_RETRY_S });
  }
}

/** Takes the lease of every due, unheld delivery the messages name, and reads what attempting them needs: one D1 round trip. */
async function lease(d1: D1Database, messages: readonly Message<WebhookMessage>[], now: number) {
  const leaseUntil = now + LEASE_MS;
  const pairs = JSON.stringify(messages.map((m) => [m.body.endpoint_id, m.body.event_id]));
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
  return {
    leaseUntil,
    leased: rowsOf<Leased>(results[0]),
    states: rowsOf<DeliveryState>(results[1]),
    events: rowsOf<StoredEvent>(results[2]),
    endpoints: rowsOf<EndpointState>(results[3]),
  };
}

/** One attempt: the URL checked again (it may have been edited, or the rules changed), signed, sent. */
async function attemptOnce(env: Env, endpoint: EndpointState, event: StoredEvent, at: number, timeoutMs: number): Promise<AttemptResult> {
  const verdict = checkWebhookUrl(endpoint.url, { allowHttp: env.WEBHOOKS_ALLOW_HTTP === "true" });
  if (!verdict.ok) return { statusCode: null, excerpt: null, error: `Not sent: ${verdict.message}`, durationMs: 0 };
  try {
    const secrets = await signingSecrets(env, endpoint, at);
    const message = { id: event.id, workspaceId: event.workspace_id, type: event.type, data: JSON.parse(event.data), createdAt: event.created_at };
    return await attemptDelivery(endpoint.url, secrets, message, timeoutMs);
  } catch (error) {
    return { statusCode: null, excerpt: null, error: `Not sent: ${messageOf(error)}`, durationMs: 0 };
  }
}

/** `work` for each item, at most `width` at a time, answers in the items' order. */
async function inTurns<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}

/**
 * Acknowledges or retries each message: attempted here, a failure with retries left comes
 * back when its next attempt is due; not attempted here, it is done (ack), or not yet due or
 * held by another attempt (it comes back then). The same delivery twice in one batch: one
 * message carries it on.
 */
function settle(messages: readonly Message<WebhookMessage>[], outcomes: Outcome[], states: DeliveryState[], now: number): void {
  const outcomeOf = new Map(outcomes.map((o) => [`${o.endpoint_id} ${o.event_id}`, o]));
  const stateOf = new Map(states.map((s) => [`${s.endpoint_id} ${s.event_id}`, s]));
  const seen = new Set<string>();
  for (const message of messages) {
    const id = `${message.body.endpoint_id} ${message.body.event_id}`;
    if (seen.has(id)) {
      message.ack();
      continue;
    }
    seen.add(id);
    const outcome = outcomeOf.get(id);
    const state = stateOf.get(id);
    if (outcome) {
      if (outcome.status === "pending") message.retry({ delaySeconds: delaySeconds(outcome.next! - now) });
      else message.ack();
    } else if (state?.status !== "pending") message.ack();
    else message.retry({ delaySeconds: delaySeconds(Math.max(state.next_attempt_at, state.lease_until ?? 0) - now) });
  }
}

const key = (d: { endpoint_id: string; event_id: string }) => ({ endpoint_id: d.endpoint_id, event_id: d.event_id });
const delaySeconds = (ms: number) => Math.min(Math.max(Math.ceil(ms / 1000), 1), QUEUE_MAX_DELAY_S);

/** 2xx delivers; a 410 ends the delivery (and disables the endpoint); anything else retries while attempts remain. */
function outcomeOf(delivery: Leased, number: number, result: AttemptResult, at: number): Outcome {
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
async function record(d1: D1Database, now: number, leaseUntil: number, attempts: Attempt[], outcomes: Outcome[], health: EndpointChange[]) {
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
