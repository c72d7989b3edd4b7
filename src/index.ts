import { app } from "./app";
import { createDb } from "./db/client";
import type { Env } from "./env";
import { purgeExpiredKeys } from "./lib/idempotency";

export default {
  fetch: app.fetch,

  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(purgeExpiredKeys(createDb(env.DB)));
  },
} satisfies ExportedHandler<Env>;
