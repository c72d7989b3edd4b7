import { and, eq } from "drizzle-orm";
import { z } from "zod";
import { createDb } from "../db/client";
import { ACTIVE_RUN_STATUSES, runs } from "../db/schema";
import type { Env, RunMessage } from "../env";
import { matchEvents } from "../events/event-runs";
import { buildSpec } from "../runs/build-spec";
import { STOP_REASONS } from "../runs/machine";
import { runStub } from "../runs/run-stub";
import type { ContactSnapshot } from "../runs/spec";
import { deliverSignal } from "../runs/stop-signals";

const Start = z.object({ run_id: z.string().startsWith("run_") });
const Signal = z.object({
  kind: z.literal("signal"),
  run_id: z.string().startsWith("run_"),
  stops: z.array(z.object({ contactId: z.string(), reason: z.enum(STOP_REASONS) })),
  changes: z.array(z.object({ contactId: z.string(), snapshot: z.custom<ContactSnapshot>((v) => typeof v === "object" && v !== null) })),
});
const Match = z.object({ kind: z.literal("match"), request_id: z.int().positive() });

/** Retry delays grow 5 s, 10 s, 20 s ... up to five minutes. */
export const backoffSeconds = (attempts: number) => Math.min(5 * 2 ** Math.max(attempts - 1, 0), 300);

/**
 * Starts the run each message names, delivers signals, and matches ingested events
 * (src/events/event-runs.ts). Each is idempotent, so a redelivery does nothing new.
 */
export async function consumeRuns(batch: MessageBatch<RunMessage>, env: Env): Promise<void> {
  const db = createDb(env.DB);
  for (const message of batch.messages) {
    const signal = Signal.safeParse(message.body);
    const match = Match.safeParse(message.body);
    const parsed = Start.safeParse(message.body);
    if (!signal.success && !match.success && !parsed.success) {
      console.error(JSON.stringify({ level: "error", queue: batch.queue, message: "unreadable run message", body: message.body }));
      message.ack();
      continue;
    }
    try {
      if (signal.success) {
        // Signals are idempotent: a stop or a change applied twice changes nothing more.
        await deliverSignal(env, signal.data);
        message.ack();
        continue;
      }
      if (match.success) {
        // Matched in the minute the events were sent; a consumed request is gone, so a redelivery matches nothing.
        await matchEvents(db, match.data.request_id, message.timestamp.getTime());
        message.ack();
        continue;
      }
      const run = await db.query.runs.findFirst({ where: eq(runs.id, parsed.data!.run_id) }); // neither a signal nor a match, so a start
      // Deleted with its agent, cancelled, or failed by the reconciler: nothing to start.
      if (run && ACTIVE_RUN_STATUSES.includes(run.status)) await runStub(env, run.id).start(await buildSpec(db, run));
      message.ack();
    } catch (error) {
      console.error(JSON.stringify({ level: "warn", queue: batch.queue, run_id: (message.body as { run_id?: string }).run_id, request_id: match.data?.request_id, attempts: message.attempts, error: String(error) }));
      message.retry({ delaySeconds: backoffSeconds(message.attempts) });
    }
  }
}

/** Messages that failed every retry: their runs are marked failed rather than left queued. */
export async function consumeDeadRuns(batch: MessageBatch<RunMessage>, env: Env): Promise<void> {
  const db = createDb(env.DB);
  for (const message of batch.messages) {
    const parsed = Start.safeParse(message.body);
    if (parsed.success && !(message.body as { kind?: string }).kind) {
      await db
        .update(runs)
        .set({ status: "failed", error: "The run could not be started; its queue message failed every retry", completedAt: new Date() })
        .where(and(eq(runs.id, parsed.data.run_id), eq(runs.status, "queued")));
    }
    console.error(JSON.stringify({ level: "error", queue: batch.queue, message: "dead-lettered run message", body: message.body }));
    message.ack();
  }
}
