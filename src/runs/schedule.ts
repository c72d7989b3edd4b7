import { and, eq, gte, isNotNull, sql } from "drizzle-orm";
import { configFromRow } from "../agents/agent-record";
import type { Db } from "../db/client";
import { agents, runs } from "../db/schema";
import type { Env } from "../env";
import { cronMatches, parseCron } from "../lib/cron";
import { wallClock } from "../lib/timezone";
import { createRun } from "./create-run";
import { generatorFor } from "./generators";
import { effectiveSteps } from "./spec";
import { selectTargets } from "./targeting";

/**
 * Starts a `schedule` run for every enabled agent whose `monitoring.schedule_cron` names
 * this minute in the agent's time zone. A minute that already has such a run is skipped,
 * so a cron event delivered twice starts nothing twice.
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
  const { schedule_cron, timezone } = config.monitoring;
  if (!schedule_cron || !cronMatches(parseCron(schedule_cron), wallClock(new Date(minute), timezone))) return null;
  const steps = effectiveSteps(config);
  if (!steps || !generatorFor(config.llm_config.provider)) return null;

  const [already] = await db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.agentId, agent.id), eq(runs.trigger, "schedule"), gte(runs.createdAt, new Date(minute))))
    .limit(1);
  if (already) return null;
  const contactIds = await selectTargets(db, agent.workspaceId, config.monitoring);
  if (contactIds.length === 0) return null;
  const { runId } = await createRun(db, env, { workspaceId: agent.workspaceId, agentId: agent.id, config, steps, contactIds, trigger: "schedule" });
  return runId;
}
