import { app } from "./app";
import { createDb } from "./db/client";
import { receiveEmail } from "./delivery/inbound-email";
import type { Env, RunMessage } from "./env";
import { purgeExpiredKeys } from "./lib/idempotency";
import { consumeDeadRuns, consumeRuns } from "./queues/run-queue";
import { reconcileQueuedRuns } from "./runs/reconcile";
import { runSchedules } from "./runs/schedule";

export { RunObject } from "./runs/run-object";

// The main module may export only handlers and classes: workerd rejects anything else.
const DEAD_LETTER_QUEUE = "cairn-runs-dlq";

export default {
  fetch: app.fetch,

  async queue(batch, env) {
    if (batch.queue === DEAD_LETTER_QUEUE) await consumeDeadRuns(batch, env);
    else await consumeRuns(batch, env);
  },

  async scheduled(controller, env, ctx) {
    const db = createDb(env.DB);
    ctx.waitUntil(Promise.all([runSchedules(db, env, controller.scheduledTime), reconcileQueuedRuns(db, env), purgeExpiredKeys(db)]));
  },

  email: receiveEmail,
} satisfies ExportedHandler<Env, RunMessage>;
