import { sql } from "drizzle-orm";
import { z } from "zod";
import { createDb } from "../db/client";
import { webhookDeliveries } from "../db/schema";
import type { Env, WebhookMessage } from "../env";
import { consumeWebhooks } from "../webhooks/deliver";

const Delivery = z.object({ endpoint_id: z.string().startsWith("we_"), event_id: z.string().startsWith("msg_") });
const readable = (body: unknown): body is WebhookMessage => Delivery.safeParse(body).success;

/** The webhooks queue: unreadable messages are logged and dropped, the rest attempted (src/webhooks/deliver.ts). */
export async function consumeWebhookQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const messages = batch.messages.filter((message) => {
    if (readable(message.body)) return true;
    console.error(JSON.stringify({ level: "error", queue: batch.queue, message: "unreadable webhook message", body: message.body }));
    message.ack();
    return false;
  }) as Message<WebhookMessage>[];
  if (messages.length > 0) await consumeWebhooks({ ...batch, messages } as MessageBatch<WebhookMessage>, env);
}

const GAVE_UP = "Gave up: the delivery's queue message failed every retry";

/**
 * Messages that failed every retry (the consumer kept failing): their deliveries end
 * `failed`, visible in the endpoint's deliveries and open to redelivery. One still held by
 * an attempt, or due later, has another message on its way and is left alone.
 */
export async function consumeDeadWebhooks(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const named = JSON.stringify(batch.messages.flatMap((m) => (readable(m.body) ? [[m.body.endpoint_id, m.body.event_id]] : [])));
  const now = Date.now();
  await createDb(env.DB).run(sql`
    UPDATE ${webhookDeliveries} SET status = 'failed', last_error = ${GAVE_UP}, updated_at = ${now}
    WHERE (endpoint_id, event_id) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(${named}))
      AND status = 'pending' AND next_attempt_at <= ${now} AND coalesce(lease_until, 0) <= ${now}`);
  console.error(JSON.stringify({ level: "error", queue: batch.queue, message: "dead-lettered webhook messages", count: batch.messages.length }));
  batch.ackAll();
}
