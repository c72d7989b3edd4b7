import { and, eq, ne } from "drizzle-orm";
import { createDb } from "../db/client";
import { runs } from "../db/schema";
import type { RunStore } from "./run-store";

/**
 * Copies the run's summary into its D1 row, which run lists read. A row already
 * `cancelled` (a cancel that reached D1 before the run started) is not overwritten:
 * answers false so the run can cancel itself.
 */
export async function mirrorRun(d1: D1Database, store: RunStore): Promise<boolean> {
  const run = store.run();
  if (!run) return true;
  const db = createDb(d1);
  const written = await db
    .update(runs)
    .set({
      status: run.status,
      counts: store.counts(),
      startedAt: run.startedAt === null ? null : new Date(run.startedAt),
      completedAt: run.completedAt === null ? null : new Date(run.completedAt),
      error: run.error,
    })
    .where(and(eq(runs.id, run.spec.runId), run.status === "cancelled" ? undefined : ne(runs.status, "cancelled")))
    .returning({ id: runs.id });
  if (written.length > 0) return true;
  const [row] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, run.spec.runId));
  return row?.status !== "cancelled";
}
