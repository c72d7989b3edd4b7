import { eq } from "drizzle-orm";
import type { AgentConfig } from "../agents/agent-record";
import type { Db } from "../db/client";
import { agents, runContacts, runs } from "../db/schema";
import type { Env } from "../env";
import { chunk, rowsPerStatement, d1ErrorSays } from "../lib/d1";
import { newId } from "../lib/ids";
import { emptyCounts } from "./machine";
import type { RunStep } from "./spec";

/** The part of an agent a run keeps: later edits to the agent do not change a run under way. */
export type AgentSnapshot = {
  playbook_md: string;
  steps: RunStep[];
  stop_on: string[];
  llm_config: AgentConfig["llm_config"];
  identity_id: string | null;
  /** Told to a model, so it knows what else the sequence can do. Absent in runs started before it was kept. */
  capabilities?: AgentConfig["capabilities"];
};

export type NewRun = {
  workspaceId: string;
  agentId: string;
  config: AgentConfig;
  steps: RunStep[];
  contactIds: string[];
  trigger: "manual" | "schedule" | "event";
  /** A schedule run's cron minute: a second run for the same agent and minute fails on the unique index. */
  scheduleSlot?: Date;
};


/** A contact of the new run is in another active run of the agent: a concurrent trigger took it first. */
export class ActiveRunConflict extends Error {}

/** The run's D1 batch; D1's `run_contacts_one_active_run` trigger refuses it whole on a race. */
async function writeRun(db: Db, statements: Parameters<Db["batch"]>[0]): Promise<void> {
  try {
    await db.batch(statements);
  } catch (error) {
    if (d1ErrorSays(error, "in_active_run")) throw new ActiveRunConflict();
    throw error;
  }
}

/**
 * Writes the run (`queued`) with its contacts in one D1 batch, then sends its queue
 * message. If the message cannot be sent the run is removed again, so a client's retry
 * starts clean rather than leaving a second run behind. A taken `scheduleSlot` fails the
 * batch with a UNIQUE violation and writes nothing; a contact another trigger put in an active
 * run of the agent meanwhile fails it with ActiveRunConflict.
 */
export async function createRun(db: Db, env: Env, input: NewRun): Promise<{ runId: string; jobId: string; contactCount: number }> {
  const runId = newId("run");
  const jobId = newId("job");
  const now = new Date();
  const snapshot: AgentSnapshot = {
    playbook_md: input.config.playbook?.playbook_md ?? "",
    steps: input.steps,
    stop_on: input.config.playbook?.stop_on ?? ["reply", "unsubscribe", "bounce"],
    llm_config: input.config.llm_config,
    identity_id: input.config.identity_id,
    capabilities: input.config.capabilities,
  };
  const targets = input.contactIds.map((contactId, position) => ({ runId, position, contactId }));
  await writeRun(db, [
    db.insert(runs).values({
      id: runId,
      jobId,
      workspaceId: input.workspaceId,
      agentId: input.agentId,
      status: "queued",
      trigger: input.trigger,
      contactCount: input.contactIds.length,
      counts: emptyCounts(),
      agentSnapshot: snapshot,
      createdAt: now,
      enqueuedAt: now,
      enqueueAttempts: 1,
      scheduleSlot: input.scheduleSlot ?? null,
    }),
    ...chunk(targets, rowsPerStatement(3)).map((part) => db.insert(runContacts).values(part)),
    db.update(agents).set({ lastRunAt: now }).where(eq(agents.id, input.agentId)),
  ]);

  try {
    await env.RUN_QUEUE.send({ run_id: runId });
  } catch (error) {
    await db.delete(runs).where(eq(runs.id, runId));
    throw error;
  }
  return { runId, jobId, contactCount: input.contactIds.length };
}
