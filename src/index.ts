import { app } from "./app";
import { createDb } from "./db/client";
import { receiveEmail } from "./delivery/inbound-email";
import type { Env } from "./env";
import { startEventRuns } from "./events/start-event-runs";
import { purgeExpiredKeys } from "./lib/idempotency";
import { consumeDeadRuns, consumeRuns } from "./queues/run-queue";
import { consumeDeadWebhooks, consumeWebhookQueue } from "./queues/webhook-queue";
import { reconcileQueuedRuns } from "./runs/reconcile";
import { runSchedules } from "./runs/schedule";
import { sweepWebhooks } from "./webhooks/dispatch";

export { RunObject } from "./runs/run-object";

// The main module may export only handlers and classes: workerd rejects anything else.
const CONSUMERS: Record<string, (batch: MessageBatch<never>, env: Env) => Promise<void>> = {
  "cairn-runs": consumeRuns,
  "cairn-runs-dlq": consumeDeadRuns,
  "cairn-webhooks": consumeWebhookQueue,
  "cairn-webhooks-dlq": consumeDeadWebhooks,
};

export default {
  fetch: app.fetch,

  async queue(batch, env) {
    const consume = CONSUMERS[batch.queue];
    if (!consume) throw new Error(`No consumer for queue ${batch.queue}`);
    await consume(batch as MessageBatch<never>, env);
  },

  async scheduled(controller, env, ctx) {
    const db = createDb(env.DB);
    // Settled, not all: one task's failure must not cut the others short.
    ctx.waitUntil(Promise.allSettled([runSchedules(db, env, controller.scheduledTime), startEventRuns(db, env, controller.scheduledTime), reconcileQueuedRuns(db, env), purgeExpiredKeys(db), sweepWebhooks(env)]));
  },

  email: receiveEmail,
} satisfies ExportedHandler<Env, unknown>;
