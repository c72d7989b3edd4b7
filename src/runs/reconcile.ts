import { and, eq, lt, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { runs } from "../db/schema";
import type { Env } from "../env";

/** A queued run whose message has not started it within this long is sent again. */
export const RESEND_AFTER_MS = 2 * 60 * 1000;
export const MAX_ENQUEUES = 5;

/**
 * Re-sends the queue message of runs still `queued` long after their last send (a message
 * lost between D1 and the Queue); after MAX_ENQUEUES sends the run is marked failed.
 */
export async function reconcileQueuedRuns(db: Db, env: Env, now = Date.now()): Promise<{ resent: number; failed: number }> {
  const stuck = await db
    .select({ id: runs.id, attempts: runs.enqueueAttempts })
    .from(runs)
    .where(and(eq(runs.status, "queued"), lt(runs.enqueuedAt, new Date(now - RESEND_AFTER_MS))))
    .limit(100);
  let resent = 0;
  let failed = 0;
  for (const run of stuck) {
    if (run.attempts >= MAX_ENQUEUES) {
      await db
        .update(runs)
        .set({ status: "failed", error: "The run never started; its queue message was sent five times", completedAt: new Date(now) })
        .where(and(eq(runs.id, run.id), eq(runs.status, "queued")));
      failed++;
      continue;
    }
    await env.RUN_QUEUE.send({ run_id: run.id });
    await db
      .update(runs)
      .set({ enqueuedAt: new Date(now), enqueueAttempts: sql`${runs.enqueueAttempts} + 1` })
      .where(eq(runs.id, run.id));
    resent++;
  }
  return { resent, failed };
}
