import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { configFromRow } from "../src/agents/agent-record";
import { createDb } from "../src/db/client";
import { ActiveRunConflict, createRun } from "../src/runs/create-run";
import { findAgent } from "../src/routes/agents";
import { builtinGenerator } from "../src/runs/generators/builtin";
import { MAX_ATTEMPTS } from "../src/runs/run-engine";
import { MIGRATIONS } from "../src/runs/run-rows";
import { api, expectError, makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, cancel, contactOf, deliveryRows, drive, getRun, makeContact, makeStepsAgent, pendingEmail, runSql, runStub, startRun } from "./engine-helpers";
import { runRow } from "./run-helpers";

afterEach(() => vi.restoreAllMocks());

const STEPS = [EMAIL_STEP, { id: "later", action: "email_message", wait: { days: 1 } }];

/** As if an execution of action 0 got through to D1 but its process died before recording it. */
async function deliveredButUnrecorded(runId: string, contactId: string, status: "scheduled" | "running") {
  await env.DB.prepare(
    `INSERT INTO deliveries (id, workspace_id, action_key, run_id, agent_id, contact_id, action_index, action_type, identity_id, channel, params, created_at)
     SELECT 'dlv_EARLIER_' || ?1, r.workspace_id, ?1 || '/' || ?2 || '/0', ?1, r.agent_id, ?2, 0, 'email_message', NULL, 'email', '{}', ?3 FROM runs r WHERE r.id = ?1`,
  )
    .bind(runId, contactId, Date.now())
    .run();
  await runSql(runId, "UPDATE actions SET status = ?, attempts = 1, scheduled_for = ?, lease_until = ?", status, Date.now() - 1, Date.now() - 1);
  await runSql(runId, "UPDATE contacts SET status = 'processing'");
  await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
}

describe("an action an earlier attempt may have sent", () => {
  it("is recorded completed, not sent again, when the run is cancelled before its retry", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, {});
    await deliveredButUnrecorded(runId, contact.id, "scheduled");

    expect((await cancel(key, runId)).status).toBe(200);
    await drive(runId);

    const run = await getRun(key, runId);
    expect(run.status).toBe("cancelled");
    expect(contactOf(run, contact.id).actions[0]).toMatchObject({ status: "completed", result: { delivery_id: `dlv_EARLIER_${runId}` } });
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(1);
    expect(await runInDurableObject(runStub(runId), (_i, state) => state.storage.getAlarm())).toBeNull();
  });

  it("is ended, not left open, when nothing went out and the contact stopped meanwhile", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, {});
    await runSql(runId, "UPDATE actions SET status = 'scheduled', attempts = 1, scheduled_for = ?", Date.now() - 1);
    await runSql(runId, "UPDATE contacts SET status = 'processing'");
    await api("/v1/events", { method: "POST", key, body: { events: [{ contact_id: contact.id, type: "email.replied" }] } });
    await drive(runId);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply", actions: [{ status: "invalidated" }] });
    expect(run.status).toBe("completed");
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(0);
  });

  it("is not taken back when the contact's email changes: the earlier send stands and no new round is written", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, {});
    await deliveredButUnrecorded(runId, contact.id, "scheduled");

    await api(`/v1/contacts/${contact.id}`, { method: "PATCH", key, body: { email: "moved@example.com" } });
    await drive(runId);

    const actions = contactOf(await getRun(key, runId), contact.id).actions;
    expect(actions.map((a: Json) => [a.step_id, a.status])).toStrictEqual([["intro", "completed"]]);
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(1);
  });

  it("is settled, not tried again, once a crash has used up its attempts", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, {});
    await runSql(runId, "UPDATE actions SET status = 'running', attempts = ?, lease_until = ?", MAX_ATTEMPTS, Date.now() - 1);
    await runSql(runId, "UPDATE contacts SET status = 'processing'");
    await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
    await drive(runId);

    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "failed", actions: [{ status: "failed", scheduled_for: null }] });
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(0);
  });
});

describe("a proposal that keeps dying with its process", () => {
  it("fails the contact after MAX_ATTEMPTS takes instead of trying forever", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id]);
    // Rewind to "being proposed", as if every earlier take was killed mid-generation.
    await runSql(runId, "DELETE FROM actions");
    await runSql(runId, "UPDATE contacts SET status = 'processing', lease_until = ?, attempts = ?", Date.now() - 1, MAX_ATTEMPTS);
    const propose = vi.spyOn(builtinGenerator, "propose");
    await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
    await drive(runId);

    expect(propose).not.toHaveBeenCalled();
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "failed", stop_reason: "error" });
  });
});

describe("two triggers racing for one contact", () => {
  it("let D1 refuse the second run's write, so the contact is in one active run of the agent", async () => {
    const { key, workspaceId, agent, contact } = await pendingEmail(STEPS, {});
    const db = createDb(env.DB);
    const config = configFromRow((await findAgent(db, workspaceId, agent.id))!);
    // Both passed the eligibility read before either wrote: the write decides.
    await expect(createRun(db, env, { workspaceId, agentId: agent.id, config, steps: config.playbook!.steps as never, contactIds: [contact.id], trigger: "manual" })).rejects.toBeInstanceOf(
      ActiveRunConflict,
    );
    const runs = await api(`/v1/agents/${agent.id}/runs`, { key });
    expect(runs.body.total).toBe(1);
  });

  it("answer one 200 and one 409 through the API", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key);
    const body = { contact_ids: [contact.id] };
    const answers = await Promise.all([0, 1].map(() => api(`/v1/agents/${agent.id}/trigger`, { method: "POST", key, body })));

    expect(answers.map((a) => a.status).sort()).toStrictEqual([200, 409]);
    expectError(answers.find((a) => a.status === 409)!, 409, "no_eligible_contacts");
  });
});

describe("a run object created by the previous storage schema", () => {
  it("is migrated in place: a contact left mid-proposal is proposed, and the run answers with its D1 job id", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key);
    const runId = (await api(`/v1/agents/${agent.id}/trigger`, { method: "POST", key, body: { contact_ids: [contact.id] } })).body.run_id as string;
    const row = await runRow(runId);
    const plan = { runId, workspaceId, triggeredAt: row.createdAt.getTime(), agentId: agent.id, playbookMd: "x", steps: [{ ...EMAIL_STEP, require_approval: true }], stopOn: ["reply"], llm: { provider: "builtin" }, sender: null };
    // Version 2 of the object's schema, as the old code left it: the contact stuck in `processing`.
    await runInDurableObject(runStub(runId), (_i, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE IF EXISTS _schema; DROP TABLE IF EXISTS run; DROP TABLE IF EXISTS contacts; DROP TABLE IF EXISTS actions; DROP TABLE IF EXISTS early_stops");
      sql.exec("CREATE TABLE _schema (version INTEGER NOT NULL)");
      sql.exec(MIGRATIONS[0]!);
      sql.exec(MIGRATIONS[1]!);
      sql.exec("INSERT INTO _schema (version) VALUES (1), (2)");
      sql.exec("INSERT INTO run (id, spec, status, created_at, started_at, mirror_seq) VALUES (1, ?, 'running', ?, ?, 7)", JSON.stringify(plan), Date.now(), Date.now());
      const snapshot = { id: contact.id, email: contact.email, first_name: null, last_name: null, company: null, job_title: null, lifecycle_stage: null, linkedin_url: null, unsubscribed: false };
      sql.exec("INSERT INTO contacts (position, contact_id, snapshot, status, current_step) VALUES (0, ?, ?, 'processing', 0)", contact.id, JSON.stringify(snapshot));
    });
    await runInDurableObject(runStub(runId), (_i, state) => state.abort("restart")).catch(() => {});
    await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
    await drive(runId);

    const run = await getRun(key, runId);
    expect(run).toMatchObject({ job_id: row.jobId, trigger: "manual" });
    expect(contactOf(run, contact.id).actions.map((a: Json) => a.status)).toStrictEqual(["pending_approval"]);
    expect((await runSql(runId, "SELECT max(version) AS v FROM _schema"))[0]!.v).toBe(MIGRATIONS.length);
  });
});
