import { and, eq, isNotNull, sql } from "drizzle-orm";
import { configFromRow } from "../agents/agent-record";
import type { Db } from "../db/client";
import { agents } from "../db/schema";
import type { Env } from "../env";
import { cronMatches, parseCron } from "../lib/cron";
import { isUniqueViolation } from "../lib/d1";
import { wallClock } from "../lib/timezone";
import { createRun } from "./create-run";
import { eligibilityScope } from "./eligibility";
import { readiness } from "./readiness";
import { selectTargets } from "./targeting";

/**
 * Starts a `schedule` run for every enabled agent whose `monitoring.schedule_cron` names
 * this minute in the agent's time zone, for its eligible contacts. Each run claims its
 * (agent, minute) slot in D1, so a cron event delivered twice, even concurrently, starts
 * one run.
 */
export async function runSchedules(db: Db, env: Env, now = Date.now()): Promise<string[]> {
  const minute = Math.floor(now / 60_000) * 60_000;
  const due = await db
    .select()
    .from(agents)
    .where(and(eq(agents.enabled, true), isNotNull(sql`json_extract(${agents.monitoring}, '$.schedule_cron')`)));

  const started: string[] = [];
  for (const agent of due) {
    // One agent's failure must not keep the agents after it from their schedules.
    try {
      const runId = await startIfDue(db, env, agent, minute);
      if (runId) started.push(runId);
    } catch (error) {
      console.error(JSON.stringify({ level: "error", message: "scheduled run failed", agent_id: agent.id, error: String(error) }));
    }
  }
  return started;
}

async function startIfDue(db: Db, env: Env, agent: typeof agents.$inferSelect, minute: number): Promise<string | null> {
  const config = configFromRow(agent);
  const { schedule_cron, timezone, filter, max_contacts_per_run } = config.monitoring;
  if (!schedule_cron || !cronMatches(parseCron(schedule_cron), wallClock(new Date(minute), timezone))) return null;
  const ready = readiness(config, env);
  if (!ready.ok) {
    console.warn(JSON.stringify({ level: "warn", message: "scheduled run skipped", agent_id: agent.id, code: ready.code, reason: ready.message }));
    return null;
  }

  const scope = eligibilityScope(agent, config.monitoring, "default", minute);
  const { contactIds } = await selectTargets(db, scope, filter ?? {}, max_contacts_per_run);
  if (contactIds.length === 0) return null;
  try {
    const { runId } = await createRun(db, env, {
      workspaceId: agent.workspaceId,
      agentId: agent.id,
      config,
      steps: ready.steps,
      contactIds,
      trigger: "schedule",
      scheduleSlot: new Date(minute),
    });
    return runId;
  } catch (error) {
    // Another delivery of this minute's cron event started the run first.
    if (isUniqueViolation(error)) return null;
    throw error;
  }
}
