import { createExecutionContext, createMessageBatch, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { http, HttpResponse } from "msw";
import { setupServer, type SetupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, beforeEach, expect, vi } from "vitest";
import type { Env, WebhookMessage } from "../src/env";
import worker from "../src/index";
import { consumeWebhooks } from "../src/webhooks/deliver";
import { api, type Json } from "./helpers";

export const RECEIVER = "https://hooks.test/cairn";

/** An endpoint of the key's workspace at `url`, with its secret. */
export async function makeEndpoint(key: string, body: Json = {}): Promise<Json> {
  const res = await api("/v1/webhook-endpoints", { method: "POST", key, body: { url: RECEIVER, ...body } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.webhook_endpoint;
}

/**
 * Keeps webhook messages from the queue, so a test hands them to the consumer itself, in its
 * own time, rather than the pool delivering them in the background.
 */
export function holdWebhookMessages(): { messages: WebhookMessage[]; restore: () => void } {
  const messages: WebhookMessage[] = [];
  const spy = vi.spyOn(env.WEBHOOK_QUEUE, "sendBatch").mockImplementation(async (batch) => {
    for (const m of batch) messages.push(m.body as WebhookMessage);
    return undefined as never;
  });
  return { messages, restore: () => spy.mockRestore() };
}

/** The file's stand-in for every receiver (msw): listening through its tests, an unhandled request is an error. */
export function receiverServer(): SetupServer {
  const server = setupServer();
  beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
  afterEach(() => server.resetHandlers());
  afterAll(() => server.close());
  return server;
}

/** Webhook messages held from the queue in each test of the file: `messages` is that test's. */
export function heldInEachTest(): { messages: WebhookMessage[] } {
  const held = { messages: [] as WebhookMessage[] };
  beforeEach(() => {
    const hold = holdWebhookMessages();
    held.messages = hold.messages;
    return hold.restore;
  });
  return held;
}

/** Hands messages to the webhooks consumer as one batch (through the Worker's queue handler, or directly with a short timeout). */
export async function consume(messages: WebhookMessage[], options: { timeoutMs?: number; queue?: string } = {}) {
  const batch = createMessageBatch<WebhookMessage>(options.queue ?? "cairn-webhooks", messages.map((body, i) => ({ id: `w${i}`, timestamp: new Date(), attempts: 1, body })));
  // The pool's queue result keeps which messages were retried, not their delays: those are read off the calls.
  const retries = batch.messages.map((message) => vi.spyOn(message, "retry"));
  const ctx = createExecutionContext();
  if (options.timeoutMs !== undefined) await consumeWebhooks(batch, env as Env, options.timeoutMs);
  else await (worker as ExportedHandler<Env, WebhookMessage>).queue!(batch, env as Env, ctx);
  await waitOnExecutionContext(ctx);
  const result = await getQueueResult(batch, ctx);
  const delays = retries.flatMap((spy, i) => spy.mock.calls.map(([options]) => ({ msgId: `w${i}`, delaySeconds: options?.delaySeconds })));
  return { ...result, retryMessages: delays };
}

export type Received = { headers: Record<string, string>; body: string };

/** A receiver at RECEIVER answering `answers` in turn (the last one from then on), recording every request. */
export function receiver(server: SetupServer, ...answers: (number | (() => Promise<Response>))[]): Received[] {
  const received: Received[] = [];
  server.use(
    http.post(RECEIVER, async ({ request }) => {
      received.push({ headers: Object.fromEntries(request.headers), body: await request.text() });
      const answer = answers[Math.min(received.length - 1, answers.length - 1)]!;
      return typeof answer === "number" ? new HttpResponse(`answer ${answer}`, { status: answer }) : answer();
    }),
  );
  return received;
}

export const row = (query: string, ...bindings: unknown[]) => env.DB.prepare(query).bind(...bindings).first<Json>();
export const rows = async (query: string, ...bindings: unknown[]) => (await env.DB.prepare(query).bind(...bindings).all<Json>()).results;

/** A test event for the endpoint: its one delivery, and the message that carries it. */
export async function testEvent(key: string, endpointId: string, held: { messages: WebhookMessage[] }, type = "run.completed") {
  const res = await api(`/v1/webhook-endpoints/${endpointId}/test`, { method: "POST", key, body: { type } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const message = held.messages.find((m) => m.event_id === res.body.delivery.id)!;
  expect(message).toStrictEqual({ endpoint_id: endpointId, event_id: res.body.delivery.id });
  return { delivery: res.body.delivery as Json, message };
}
