import { and, eq, lt, ne, sql } from "drizzle-orm";
import { createDb } from "../db/client";
import { runs } from "../db/schema";
import { prepare, rowsOf } from "../lib/d1";
import { inboxWrites } from "../approvals/inbox-index";
import { claimUnsent, insertEvents, type DeliveryKey } from "../webhooks/dispatch";
import type { WebhookEvent } from "../webhooks/events";
import type { InboxChanges } from "./run-events";
import { FAILED_UNSTARTED } from "./run-record";
import type { RunStore } from "./run-store";

/**
 * What the D1 row said back: written, or found cancelled, gone (its agent deleted), or
 * abandoned (failed by D1 while `queued`: its start message failed every retry).
 */
export type MirrorOutcome = "written" | "cancelled" | "deleted" | "abandoned";

/** Deliveries the mirror's write created and claimed: the caller hands them to the queue. */
export type Claimed = DeliveryKey[];

/**
 * Copies the run's summary into its D1 row, which run lists read, and the object's outbox
 * (webhook events, approvals inbox changes) into D1, in one batch. Each summary carries the object's version (`seq`,
 * null when only events are behind) and lands only over an older one, so two writes in
 * flight cannot leave the older summary behind. A row already `cancelled` (a cancel that
 * reached D1 before the run started) is not overwritten.
 */
export async function mirrorRun(
  d1: D1Database,
  store: RunStore,
  seq: number | null,
  outbox: { events: WebhookEvent[]; inbox: InboxChanges },
): Promise<{ outcome: MirrorOutcome; claimed: Claimed }> {
  const run = store.run();
  if (!run) return { outcome: "written", claimed: [] };
  const db = createDb(d1);
  const { runId, workspaceId, agentId } = run.spec;
  const summary = db
    .update(runs)
    .set({
      status: run.status,
      counts: store.counts(),
      usage: store.usage(),
      startedAt: run.startedAt === null ? null : new Date(run.startedAt),
      completedAt: run.completedAt === null ? null : new Date(run.completedAt),
      error: run.error,
      mirrorSeq: seq ?? 0,
    })
    // A row D1 cancelled takes only a cancelled summary; one D1 failed before hearing from the run, none.
    .where(and(eq(runs.id, runId), lt(runs.mirrorSeq, seq ?? 0), run.status === "cancelled" ? undefined : ne(runs.status, "cancelled"), sql`NOT (${FAILED_UNSTARTED})`))
    .returning({ id: runs.id });
  const copyOutbox = [...inboxWrites(d1, { runId, workspaceId, agentId }, outbox.inbox), insertEvents(d1, workspaceId, outbox.events, runId), claimUnsent(d1, workspaceId)];
  const results = await d1.batch(seq === null ? copyOutbox : [prepare(d1, summary.getSQL()), ...copyOutbox]);
  const claimed = rowsOf<DeliveryKey>(results.at(-1));
  if (seq === null || results[0]!.results.length > 0) return { outcome: "written", claimed };
  const [row] = await db.select({ status: runs.status, mirrorSeq: runs.mirrorSeq }).from(runs).where(eq(runs.id, runId));
  if (!row) return { outcome: "deleted", claimed };
  if (row.status === "failed" && row.mirrorSeq === 0) return { outcome: "abandoned", claimed };
  return { outcome: row.status === "cancelled" && run.status !== "cancelled" ? "cancelled" : "written", claimed };
}
