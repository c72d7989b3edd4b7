import { eq } from "drizzle-orm";
import { createDb } from "../db/client";
import { runs } from "../db/schema";
import type { RunStore } from "./run-store";

/** Copies the run's summary into its D1 row, which run lists read. */
export async function mirrorRun(d1: D1Database, store: RunStore): Promise<void> {
  const run = store.run();
  if (!run) return;
  await createDb(d1)
    .update(runs)
    .set({
      status: run.status,
      counts: store.counts(),
      startedAt: run.startedAt === null ? null : new Date(run.startedAt),
      completedAt: run.completedAt === null ? null : new Date(run.completedAt),
      error: run.error,
    })
    .where(eq(runs.id, run.spec.runId));
}
