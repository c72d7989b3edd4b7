import { and, asc, count, desc, eq } from "drizzle-orm";
import { Hono } from "hono";
import { configFromRow, type AgentConfig, type AgentRow } from "../agents/agent-record";
import { contactSummaries } from "../contacts/contact-record";
import { ACTIVE_RUN_STATUSES, runContacts, runs as runsTable } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError, conflict, notFound, validationError } from "../lib/errors";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { idempotency } from "../middleware/idempotency";
import { describeRoute } from "../openapi/route-doc";
import { ActiveRunConflict, createRun } from "../runs/create-run";
import { eligibilityScope, eligibleContacts, skippedDetails } from "../runs/eligibility";
import { readiness } from "../runs/readiness";
import type { DecisionResult } from "../runs/decisions";
import { runStub } from "../runs/run-stub";
import { findRun, requireRun, toRunJson } from "../runs/run-record";
import { selectTargets } from "../runs/targeting";
import { IdParam } from "../schemas/common";
import { ActionEnvelope, ActionParamsPath, ApproveBody, ListRunsQuery, RejectBody, RunDetail, RunEnvelope, RunList, RunParams, RunViewQuery, TriggerBody, TriggerResult } from "../schemas/runs";
import type { ContactsPage, RunView } from "../runs/views";
import type { Db } from "../db/client";
import { findAgent } from "./agents";
import { dispatchNew } from "../webhooks/dispatch";


function decided(result: DecisionResult) {
  if (result.ok) return { status: "success" as const, action: result.action };
  throw new ApiError(result.status, result.code, result.message, result.details);
}

/** Runs of agents: trigger, read, cancel, and the human decisions on proposed actions. */
export const runs = new Hono<AppEnv>()
  .post("/:id/trigger", describeRoute({
    summary: "Trigger an agent run",
    description: "Starts a run of the agent over the named contacts, or over those its monitoring selects. Contacts that are not eligible (opted out, bounced, replied, in another active run, in cooldown) are skipped and listed with the reason.",
    tag: "Runs",
    success: { status: 200, description: "The run is queued, with who was skipped and why", schema: TriggerResult },
    errors: { 409: "The agent cannot run now: `agent_not_runnable`, `provider_not_configured`, `sender_required`, `email_transport_not_configured`, `no_matching_contacts` or `no_eligible_contacts` (with each skipped contact and why in `details`)" },
  }), requireScope("agents:trigger"), idempotency, validate("param", IdParam), validate("json", TriggerBody), async (c) => {
    const { db } = c.var;
    const { workspaceId } = c.var.auth;
    const agent = await findAgent(db, workspaceId, c.req.valid("param").id);
    if (!agent) throw notFound("agent");
    const config = configFromRow(agent);
    const ready = readiness(config, c.env);
    if (!ready.ok) throw conflict(ready.code, ready.message);

    // Explicit contacts and default targeting pass the same eligibility (CONTRACT.md section 8).
    // A trigger racing another for the same contacts loses in D1's write and chooses again.
    const requested = c.req.valid("json").contact_ids;
    for (let attempt = 1; ; attempt++) {
      const { eligible, pathOf } = await chooseContacts(db, agent, config, requested);
      if (eligible.contactIds.length === 0) {
        throw conflict("no_eligible_contacts", "No contact is eligible for this run; details say why each was skipped", skippedDetails(eligible.skipped, pathOf));
      }
      try {
        const { runId, jobId, contactCount } = await createRun(db, c.env, { workspaceId, agentId: agent.id, config, steps: ready.steps, contactIds: eligible.contactIds, trigger: "manual" });
        return c.json({ status: "success", job_id: jobId, run_id: runId, contact_count: contactCount, skipped: eligible.skipped });
      } catch (error) {
        if (!(error instanceof ActiveRunConflict)) throw error;
        if (attempt === 2) throw conflict("concurrent_update", "Other triggers of this agent are taking these contacts right now; retry");
      }
    }
  })

  .get("/:id/runs", describeRoute({
    summary: "List agent runs",
    description: "Lists the agent's runs, newest first, optionally by status.",
    tag: "Runs",
    success: { status: 200, description: "Newest first", schema: RunList },
  }), requireScope("agents:read"), validate("param", IdParam), validate("query", ListRunsQuery), async (c) => {
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

  .get("/runs/:runId", describeRoute({
    summary: "Get a single run",
    description: "Gets a run with its counts and one page of its contacts, each with its current details and its actions.",
    tag: "Runs",
    success: { status: 200, description: "The run with one page of its contacts, each with its current details and actions", schema: RunDetail },
  }), requireScope("agents:read"), validate("param", RunParams), validate("query", RunViewQuery), async (c) => {
    const { db } = c.var;
    const { workspaceId } = c.var.auth;
    const { runId } = c.req.valid("param");
    const { contacts_limit: limit, contacts_offset: offset, contact_status: status } = c.req.valid("query");
    // The run object answers for its own workspace; before it starts, D1 holds the run.
    let run = (await runStub(c.env, runId).view(workspaceId, { offset, limit, status })) ?? (await queuedView(db, workspaceId, runId, { offset, limit, status }));
    // Runs started before the object kept its job id and trigger: those come from D1.
    if (!run.job_id) {
      const { job_id, trigger } = toRunJson((await findRun(db, workspaceId, runId))!);
      run = { ...run, job_id, trigger };
    }
    // A started, unfinished run's object is told of every change to its contacts' details;
    // for a queued or finished run the current details come from D1.
    let { contacts } = run;
    if (run.status !== "running" && run.status !== "awaiting_approval") {
      const details = new Map((await contactSummaries(db, workspaceId, contacts.map((p) => p.contact_id))).map(({ id, ...d }) => [id, d]));
      contacts = contacts.map((p) => ({ ...p, contact: details.get(p.contact_id) ?? null }));
    }
    return c.json({ status: "success", run: { ...run, contacts_limit: limit, contacts_offset: offset, contacts } });
  })

  .post("/runs/:runId/cancel", describeRoute({
    summary: "Cancel a run",
    description: "Cancels a queued or running run: nothing it proposed is carried out afterwards.",
    tag: "Runs",
    success: { status: 200, description: "Cancelled", schema: RunEnvelope },
    errors: { 409: "The run had already finished (`run_not_active`)" },
  }), requireScope("agents:trigger"), idempotency, validate("param", RunParams), async (c) => {
    const { db } = c.var;
    const run = await requireRun(db, c.var.auth.workspaceId, c.req.valid("param").runId);
    if (!ACTIVE_RUN_STATUSES.includes(run.status)) throw conflict("run_not_active", `The run is ${run.status}`);
    // Started: the run object cancels it and answers for it, whether or not D1 took the news yet.
    const cancelled = await runStub(c.env, run.id).cancel(run.workspaceId);
    if (cancelled) return c.json({ status: "success", run: cancelled });
    // Not started yet: the queue consumer skips a cancelled run.
    await db
      .update(runsTable)
      .set({ status: "cancelled", completedAt: new Date() })
      .where(and(eq(runsTable.id, run.id), eq(runsTable.status, "queued")));
    const updated = await findRun(db, run.workspaceId, run.id);
    // The move out of `queued` wrote run.cancelled with it (a D1 trigger): sent now rather than at the sweep.
    if (updated?.status === "cancelled") c.executionCtx.waitUntil(dispatchNew(c.env, run.workspaceId));
    if (updated?.status !== "cancelled") throw conflict("run_not_active", `The run is ${updated?.status ?? "gone"}`);
    return c.json({ status: "success", run: toRunJson(updated) });
  })

  .post(
    "/runs/:runId/contacts/:contactId/actions/:actionIndex/approve",
    describeRoute({
      summary: "Approve a pending action",
      description: "Approves a pending action, optionally with edited `params`, and carries it out. Send the `digest` you reviewed to refuse an approval of anything else.",
      tag: "Runs",
      success: { status: 200, description: "Approved and executed", schema: ActionEnvelope },
      errors: { 409: "The action is no longer pending (`action_not_pending`), or it changed since the `digest` you sent (`digest_mismatch`)" },
    }),
    requireScope("agents:approve"),
    idempotency,
    validate("param", ActionParamsPath),
    validate("json", ApproveBody),
    async (c) => {
      const { runId, contactId, actionIndex } = c.req.valid("param");
      const input = { ...c.req.valid("json"), keyId: c.var.auth.keyId };
      // The run object checks the workspace itself: a decision makes no D1 read on its way.
      return c.json(decided(await runStub(c.env, runId).approve(c.var.auth.workspaceId, contactId, actionIndex, input)));
    },
  )

  .post(
    "/runs/:runId/contacts/:contactId/actions/:actionIndex/reject",
    describeRoute({
      summary: "Reject a pending action",
      description: "Rejects a pending action, with an optional reason; the contact's sequence ends there.",
      tag: "Runs",
      success: { status: 200, description: "Rejected; the contact's sequence ends", schema: ActionEnvelope },
      errors: { 409: "The action is no longer pending (`action_not_pending`)" },
    }),
    requireScope("agents:approve"),
    idempotency,
    validate("param", ActionParamsPath),
    validate("json", RejectBody),
    async (c) => {
      const { runId, contactId, actionIndex } = c.req.valid("param");
      const input = { ...c.req.valid("json"), keyId: c.var.auth.keyId };
      return c.json(decided(await runStub(c.env, runId).reject(c.var.auth.workspaceId, contactId, actionIndex, input)));
    },
  );

/** A run whose object has not started (still queued, or cancelled before it started): its D1 row and trigger list. */
async function queuedView(db: Db, workspaceId: string, runId: string, page: ContactsPage): Promise<RunView> {
  const where = eq(runContacts.runId, runId);
  // Every contact of a run that has not started is pending: any other status matches none.
  const none = page.status !== undefined && page.status !== "pending";
  const [[row], targets, [totals]] = await db.batch([
    db.select().from(runsTable).where(and(eq(runsTable.workspaceId, workspaceId), eq(runsTable.id, runId))),
    db.select().from(runContacts).where(where).orderBy(asc(runContacts.position)).limit(none ? 0 : page.limit).offset(page.offset),
    db.select({ total: count() }).from(runContacts).where(where),
  ]);
  if (!row) throw notFound("run");
  const total = none ? 0 : totals!.total;
  const contacts = targets.map((t) => ({ contact_id: t.contactId, contact: null, status: "pending" as const, current_step: 0, current_step_id: null, next_step_at: null, stop_reason: null, actions: [] }));
  const next = page.offset + contacts.length;
  return { ...toRunJson(row), contacts_total: total, contacts_next_offset: next < total ? next : null, contacts };
}

/** Who a manual trigger would reach: its contact_ids, or the agent's filter, minus the ineligible. */
async function chooseContacts(db: Db, agent: AgentRow, config: AgentConfig, requested: string[] | undefined) {
  if (requested) {
    const position = new Map(requested.map((id, i) => [id, i]));
    const pathOf = (id: string) => `contact_ids.${position.get(id)}`;
    const { unknown, ...eligible } = await eligibleContacts(db, eligibilityScope(agent, config.monitoring, "explicit"), requested);
    if (unknown.length) {
      throw validationError("Some contact_ids name no contact of this workspace", unknown.map((id) => ({ path: pathOf(id), message: `No such contact ${id}` })));
    }
    return { eligible, pathOf };
  }
  const { filter = {}, max_contacts_per_run } = config.monitoring;
  const eligible = await selectTargets(db, eligibilityScope(agent, config.monitoring, "default"), filter, max_contacts_per_run);
  if (eligible.contactIds.length === 0 && eligible.skipped.length === 0) throw conflict("no_matching_contacts", "No contact matches the agent's monitoring filter");
  return { eligible, pathOf: () => "monitoring.filter" };
}

