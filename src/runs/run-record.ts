import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { runs } from "../db/schema";
import { notFound } from "../lib/errors";
import { iso } from "../lib/time";

export type RunRow = typeof runs.$inferSelect;

/**
 * A run row D1 ended while `queued` (a cancel, or a start message that failed every retry),
 * before any mirror of its object wrote it: D1 alone tells of that run. Its object's
 * events and inbox entries are not copied, and its summary never lands on the row.
 */
export const UNSTARTED_END = sql`${runs.status} IN ('cancelled', 'failed') AND ${runs.mirrorSeq} = 0`;
/** The part of UNSTARTED_END no summary may overwrite (a cancelled row still takes a cancelled one). */
export const FAILED_UNSTARTED = sql`${runs.status} = 'failed' AND ${runs.mirrorSeq} = 0`;

export const toRunJson = (row: RunRow) => ({
  id: row.id,
  job_id: row.jobId,
  agent_id: row.agentId,
  status: row.status,
  trigger: row.trigger,
  contact_count: row.contactCount,
  counts: row.counts,
  usage: row.usage ?? { proposals: 0, input_tokens: 0, output_tokens: 0 },
  created_at: iso(row.createdAt)!,
  started_at: iso(row.startedAt),
  completed_at: iso(row.completedAt),
  error: row.error,
});

export async function findRun(db: Db, workspaceId: string, runId: string) {
  return db.query.runs.findFirst({ where: and(eq(runs.workspaceId, workspaceId), eq(runs.id, runId)) });
}

/** The workspace's run, or the API's 404: another workspace's run is simply not found. */
export async function requireRun(db: Db, workspaceId: string, runId: string) {
  const run = await findRun(db, workspaceId, runId);
  if (!run) throw notFound("run");
  return run;
}
