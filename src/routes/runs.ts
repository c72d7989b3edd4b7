import { and, asc, count, desc, eq } from "drizzle-orm";
import { Hono } from "hono";
import { configFromRow } from "../agents/agent-record";
import { findContactsByIds } from "../contacts/contact-record";
import { ACTIVE_RUN_STATUSES, runContacts, runs as runsTable } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError, conflict, notFound, validationError } from "../lib/errors";
import { iso } from "../lib/time";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { createRun } from "../runs/create-run";
import { generatorFor } from "../runs/generators";
import type { DecisionResult } from "../runs/run-object";
import { runStub } from "../runs/run-stub";
import { findRun, requireRun, toRunJson } from "../runs/run-record";
import { effectiveSteps } from "../runs/spec";
import { selectTargets } from "../runs/targeting";
import { IdParam } from "../schemas/common";
import { ActionParamsPath, ApproveBody, ListRunsQuery, RejectBody, RunParams, TriggerBody } from "../schemas/runs";
import { findAgent } from "./agents";


function decided(result: DecisionResult) {
  if (result.ok) return { status: "success" as const, action: result.action };
  throw new ApiError(result.status, result.code, result.message, result.details);
}

/** Runs of agents: trigger, read, cancel, and the human decisions on proposed actions. */
export const runs = new Hono<AppEnv>()
  .post("/:id/trigger", requireScope("agents:trigger"), validate("param", IdParam), validate("json", TriggerBody), async (c) => {
    const { db } = c.var;
    const { workspaceId } = c.var.auth;
    const agent = await findAgent(db, workspaceId, c.req.valid("param").id);
    if (!agent) throw notFound("agent");
    const config = configFromRow(agent);
    const steps = effectiveSteps(config);
    if (!steps) throw conflict("agent_not_runnable", "The agent has neither playbook steps nor capabilities");
    if (!generatorFor(config.llm_config.provider)) {
      throw conflict("provider_not_configured", `LLM provider ${config.llm_config.provider} is not configured in this deployment; use builtin`);
    }

    let contactIds = c.req.valid("json").contact_ids;
    if (contactIds) {
      const found = new Set((await findContactsByIds(db, workspaceId, contactIds)).map((row) => row.id));
      const missing = contactIds.flatMap((id, i) => (found.has(id) ? [] : [{ path: `contact_ids.${i}`, message: `No such contact ${id}` }]));
      if (missing.length) throw validationError("Some contact_ids name no contact of this workspace", missing);
    } else {
      contactIds = await selectTargets(db, workspaceId, config.monitoring);
      if (contactIds.length === 0) throw conflict("no_matching_contacts", "No contact matches the agent's monitoring filter");
    }

    const { runId, jobId } = await createRun(db, c.env, { workspaceId, agentId: agent.id, config, steps, contactIds, trigger: "manual" });
    return c.json({ status: "success", job_id: jobId, run_id: runId });
  })

  .get("/:id/runs", requireScope("agents:read"), validate("param", IdParam), validate("query", ListRunsQuery), async (c) => {
    const { limit, offset, status } = c.req.valid("query");
    const { workspaceId } = c.var.auth;
    const agent = await findAgent(c.var.db, workspaceId, c.req.valid("param").id);
    if (!agent) throw notFound("agent");
    const where = and(eq(runsTable.workspaceId, workspaceId), eq(runsTable.agentId, agent.id), status ? eq(runsTable.status, status) : undefined);
    const [rows, [totals]] = await c.var.db.batch([
      c.var.db.select().from(runsTable).where(where).orderBy(desc(runsTable.id)).limit(limit).offset(offset),
      c.var.db.select({ total: count() }).from(runsTable).where(where),
    ]);
    return c.json({ status: "success", runs: rows.map(toRunJson), total: totals!.total, limit, offset });
  })

  .get("/runs/:runId", requireScope("agents:read"), validate("param", RunParams), async (c) => {
    const { db } = c.var;
    const run = await requireRun(db, c.var.auth.workspaceId, c.req.valid("param").runId);
    const view = await runStub(c.env, run.id).view();
    // Before its Durable Object starts, a run's contacts are the trigger's list, all pending.
    const progress =
      view?.contacts ??
      (await db.select().from(runContacts).where(eq(runContacts.runId, run.id)).orderBy(asc(runContacts.position))).map((t) => ({
        contact_id: t.contactId,
        status: "pending" as const,
        current_step: 0,
        current_step_id: null,
        next_step_at: null,
        stop_reason: null,
        actions: [],
      }));
    const details = new Map((await findContactsByIds(db, run.workspaceId, progress.map((p) => p.contact_id))).map((row) => [row.id, row]));
    const contacts = progress.map((p) => {
      const d = details.get(p.contact_id);
      const contact = d
        ? { email: d.email, first_name: d.firstName, last_name: d.lastName, company: d.company, job_title: d.jobTitle, lifecycle_stage: d.lifecycleStage }
        : null;
      const { contact_id, ...rest } = p;
      return { contact_id, contact, ...rest };
    });
    // The object is the source of truth and its D1 row a mirror that can trail it by a write:
    // take the summary from the object too, so it agrees with the contacts beside it.
    const live = view && { status: view.status, counts: view.counts, started_at: iso(view.started_at), completed_at: iso(view.completed_at), error: view.error };
    return c.json({ status: "success", run: { ...toRunJson(run), ...live, contacts } });
  })

  .post("/runs/:runId/cancel", requireScope("agents:trigger"), validate("param", RunParams), async (c) => {
    const { db } = c.var;
    const run = await requireRun(db, c.var.auth.workspaceId, c.req.valid("param").runId);
    if (!ACTIVE_RUN_STATUSES.includes(run.status)) throw conflict("run_not_active", `The run is ${run.status}`);
    const { cancelled } = await runStub(c.env, run.id).cancel();
    if (!cancelled) {
      // Not started yet: the queue consumer skips a cancelled run.
      await db
        .update(runsTable)
        .set({ status: "cancelled", completedAt: new Date() })
        .where(and(eq(runsTable.id, run.id), eq(runsTable.status, "queued")));
    }
    const updated = await findRun(db, run.workspaceId, run.id);
    if (updated?.status !== "cancelled") throw conflict("run_not_active", `The run is ${updated?.status ?? "gone"}`);
    return c.json({ status: "success", run: toRunJson(updated) });
  })

  .post(
    "/runs/:runId/contacts/:contactId/actions/:actionIndex/approve",
    requireScope("agents:approve"),
    validate("param", ActionParamsPath),
    validate("json", ApproveBody),
    async (c) => {
      const { runId, contactId, actionIndex } = c.req.valid("param");
      const run = await requireRun(c.var.db, c.var.auth.workspaceId, runId);
      const input = { ...c.req.valid("json"), keyId: c.var.auth.keyId };
      return c.json(decided(await runStub(c.env, run.id).approve(contactId, actionIndex, input)));
    },
  )

  .post(
    "/runs/:runId/contacts/:contactId/actions/:actionIndex/reject",
    requireScope("agents:approve"),
    validate("param", ActionParamsPath),
    validate("json", RejectBody),
    async (c) => {
      const { runId, contactId, actionIndex } = c.req.valid("param");
      const run = await requireRun(c.var.db, c.var.auth.workspaceId, runId);
      const input = { ...c.req.valid("json"), keyId: c.var.auth.keyId };
      return c.json(decided(await runStub(c.env, run.id).reject(contactId, actionIndex, input)));
    },
  );
