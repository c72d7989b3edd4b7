import { and, eq, lt, ne } from "drizzle-orm";
import { createDb } from "../db/client";
import { runs } from "../db/schema";
import type { RunStore } from "./run-store";

/** What the D1 row said back: written, or found cancelled or gone (its agent deleted). */
export type MirrorOutcome = "written" | "cancelled" | "deleted";

/**
 * Copies the run's summary into its D1 row, which run lists read. Each write carries the
 * object's version and lands only over an older one, so two writes in flight
 * cannot leave the older summary behind. A row already `cancelled` (a cancel that reached
 * D1 before the run started) is not overwritten.
 */
export async function mirrorRun(d1: D1Database, store: RunStore, seq: number): Promise<MirrorOutcome> {
  const run = store.run();
  if (!run) return "written";
  const db = createDb(d1);
  const written = await db
    .update(runs)
    .set({
      status: run.status,
      counts: store.counts(),
      usage: store.usage(),
      startedAt: run.startedAt === null ? null : new Date(run.startedAt),
      completedAt: run.completedAt === null ? null : new Date(run.completedAt),
      error: run.error,
      mirrorSeq: seq,
    })
    .where(and(eq(runs.id, run.spec.runId), lt(runs.mirrorSeq, seq), run.status === "cancelled" ? undefined : ne(runs.status, "cancelled")))
    .returning({ id: runs.id });
  if (written.length > 0) return "written";
  const [row] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, run.spec.runId));
  if (!row) return "deleted";
  return row.status === "cancelled" && run.status !== "cancelled" ? "cancelled" : "written";
}
