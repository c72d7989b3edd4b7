import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { createDb } from "../src/db/client";
import { events, runContacts, runs } from "../src/db/schema";
import { newId } from "../src/lib/ids";
import { buildSpec } from "../src/runs/build-spec";
import type { RunObject } from "../src/runs/run-object";
import { api, expectError, makeWorkspace, type Json } from "./helpers";
import {
  EMAIL_STEP,
  agentClosedUntilTomorrow,
  ISO_MS,
  advance,
  approve,
  cancel,
  contactOf,
  deliveryRows,
  drive,
  getRun,
  makeContact,
  makeStepsAgent,
  outbox,
  reject,
  runSql,
  runStub,
  startRun,
} from "./engine-helpers";

const TWO_STEPS = [EMAIL_STEP, { id: "follow_up", action: "email_message", wait: { days: 2 } }];

async function pendingRun(steps: Json[] = TWO_STEPS, agentOverrides: Json = {}, contactCount = 1) {
  const { workspaceId, key } = await makeWorkspace();
  const agent = await makeStepsAgent(key, steps, agentOverrides);
  const contacts: Json[] = [];
  for (let i = 0; i < contactCount; i++) contacts.push(await makeContact(key, { first_name: `C${i}` }));
  const runId = await startRun(key, agent.id, contacts.map((c) => c.id));
  return { workspaceId, key, agent, contacts, contact: contacts[0]!, runId };
}

async function sendEvent(key: string, contactId: string, type: string) {
  const res = await api("/v1/events", { method: "POST", key, body: { events: [{ contact_id: contactId, type }] } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

describe("stop conditions", () => {
  it.each([
    ["email.replied", "reply"],
    ["email.bounced", "bounce"],
    ["contact.unsubscribed", "unsubscribe"],
  ])("invalidates the pending action on %s and stops the contact with stop_reason %s", async (type, reason) => {
    const { key, runId, contact } = await pendingRun();
    await sendEvent(key, contact.id, type);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: reason, next_step_at: null });
    expect(contactOf(run, contact.id).actions[0]).toMatchObject({ status: "invalidated", decision: null });
    expect(run.counts.pending_approval).toBe(0);
    expect(run.status).toBe("completed");

    expectError(await approve(key, runId, contact.id, 0), 409, "action_not_pending");
    expectError(await reject(key, runId, contact.id, 0), 409, "action_not_pending");
    await advance(runId);
    expect(contactOf(await getRun(key, runId), contact.id).actions).toHaveLength(1);
    expect((await outbox(key)).total).toBe(0);
  });

  it("stops only the contact the event is about", async () => {
    const { key, runId, contacts } = await pendingRun(TWO_STEPS, {}, 2);
    const [replied, other] = contacts as [Json, Json];
    await sendEvent(key, replied.id, "email.replied");
    const run = await getRun(key, runId);
    expect(contactOf(run, replied.id).status).toBe("stopped");
    expect(contactOf(run, other.id)).toMatchObject({ status: "awaiting_approval", stop_reason: null, actions: [{ status: "pending_approval" }] });
    expect(run.status).toBe("awaiting_approval");
    expect((await approve(key, runId, other.id, 0)).body.action.status).toBe("completed");
  });

  it("stops a contact waiting between steps, so its next step is never proposed", async () => {
    const { key, runId, contact } = await pendingRun();
    await approve(key, runId, contact.id, 0);
    expect(contactOf(await getRun(key, runId), contact.id).status).toBe("waiting");

    await sendEvent(key, contact.id, "email.replied");
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply", next_step_at: null });
    await advance(runId);
    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id).actions.map((a: Json) => a.status)).toStrictEqual(["completed"]);
    expect(run.status).toBe("completed");
    expect((await outbox(key)).total).toBe(1);
  });

  it("stops the contact on a reply even when the playbook's stop_on leaves reply out: nobody who replied is reached again", async () => {
    const { key, runId, contact } = await pendingRun(TWO_STEPS, { playbook: { playbook_md: "# Bounces only", steps: TWO_STEPS, stop_on: ["bounce"] } });
    await sendEvent(key, contact.id, "email.replied");

    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply", actions: [{ status: "invalidated" }] });
    expectError(await approve(key, runId, contact.id, 0), 409, "action_not_pending");
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(0);
  });

  it("does not send an approved email when the contact replied and the run was never told (the executor's re-check)", async () => {
    const { workspaceId, key, runId, contact } = await pendingRun();
    // The reply is on record in D1, but no stop signal reached the run.
    const now = new Date();
    await createDb(env.DB).insert(events).values({ id: newId("evt"), workspaceId, contactId: contact.id, type: "email.replied", url: null, properties: {}, occurredAt: now, createdAt: now });

    const res = await approve(key, runId, contact.id, 0);
    expect(expectError(res, 409, "action_not_pending").details).toStrictEqual([{ path: "status", message: "invalidated" }]);
    const progress = contactOf(await getRun(key, runId), contact.id);
    expect(progress).toMatchObject({ status: "stopped", stop_reason: "reply" });
    expect(progress.actions[0]).toMatchObject({ status: "invalidated", executed_at: null, result: null, error: expect.stringContaining("reply") });
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(0);
  });

  it("still sends when the contact's reply came before the run started", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key);
    await sendEvent(key, contact.id, "email.replied");
    const runId = await startRun(key, agent.id, [contact.id]);

    const res = await approve(key, runId, contact.id, 0);
    expect(res.body.action).toMatchObject({ status: "completed", result: { channel: "email" } });
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(1);
  });

  it("does not send an approved email to a contact unsubscribed since the proposal", async () => {
    const { key, runId, contact } = await pendingRun();
    // Straight into D1, as if the flag changed without the run hearing of it.
    await env.DB.prepare("UPDATE contacts SET unsubscribed = 1 WHERE id = ?").bind(contact.id).run();

    expectError(await approve(key, runId, contact.id, 0), 409, "action_not_pending");
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "unsubscribe", actions: [{ status: "invalidated", result: null }] });
    expect((await outbox(key)).total).toBe(0);
  });

  it("invalidates an approved email waiting for the send window when the contact replies, and sends nothing at the opening", async () => {
    const { key } = await makeWorkspace();
    const { agent, opening } = await agentClosedUntilTomorrow(key);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id]);
    const scheduled = await approve(key, runId, contact.id, 0);
    expect(scheduled.body.action.status).toBe("scheduled");

    await sendEvent(key, contact.id, "email.replied");
    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply" });
    expect(contactOf(run, contact.id).actions[0]).toMatchObject({ status: "invalidated" });

    expect(scheduled.body.action.scheduled_for).toBe(opening.toISOString());
    vi.setSystemTime(opening);
    try {
      await runInDurableObject(runStub(runId), (_instance, state) => state.storage.setAlarm(Date.now()));
      await runDurableObjectAlarm(runStub(runId));
    } finally {
      vi.useRealTimers();
    }
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("invalidated");
    expect((await outbox(key)).total).toBe(0);
  });
});

describe("POST /v1/agents/runs/:runId/cancel", () => {
  it("cancels the run: pending actions cancelled, unfinished contacts stopped, finished ones left as they are", async () => {
    const { key, runId, contacts } = await pendingRun(TWO_STEPS, {}, 3);
    const [pending, waiting, done] = contacts as [Json, Json, Json];
    await approve(key, runId, waiting.id, 0);
    await reject(key, runId, done.id, 0);

    const res = await cancel(key, runId);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ status: "success", run: { id: runId, status: "cancelled", completed_at: expect.stringMatching(ISO_MS) } });
    expect(res.body.run).not.toHaveProperty("contacts");

    const run = await getRun(key, runId);
    expect(run.status).toBe("cancelled");
    expect(contactOf(run, pending.id)).toMatchObject({ status: "stopped", stop_reason: "cancelled", actions: [{ status: "cancelled" }] });
    expect(contactOf(run, waiting.id)).toMatchObject({ status: "stopped", stop_reason: "cancelled", next_step_at: null, actions: [{ status: "completed" }] });
    expect(contactOf(run, done.id)).toMatchObject({ status: "stopped", stop_reason: "rejected", actions: [{ status: "rejected" }] });
    expect(run.counts).toStrictEqual({ pending_approval: 0, approved: 0, rejected: 1, completed: 1, failed: 0, invalidated: 0, cancelled: 1 });
    expect(await runInDurableObject(runStub(runId), (_instance, state) => state.storage.getAlarm())).toBeNull();
  });

  it("answers 409 run_not_active to a second cancel", async () => {
    const { key, runId } = await pendingRun();
    expect((await cancel(key, runId)).status).toBe(200);
    expectError(await cancel(key, runId), 409, "run_not_active");
  });

  it("answers 409 action_not_pending to a decision on a cancelled action, and sends nothing", async () => {
    const { key, runId, contact } = await pendingRun();
    await cancel(key, runId);
    expectError(await approve(key, runId, contact.id, 0), 409, "action_not_pending");
    expectError(await reject(key, runId, contact.id, 0), 409, "action_not_pending");
    expect((await outbox(key)).total).toBe(0);
  });

  it("answers 409 run_not_active for a run that already completed", async () => {
    const { key, runId, contact } = await pendingRun([EMAIL_STEP]);
    await approve(key, runId, contact.id, 0);
    expect((await getRun(key, runId)).status).toBe("completed");
    expectError(await cancel(key, runId), 409, "run_not_active");
  });

  it("answers 404 for an unknown run", async () => {
    const { key } = await makeWorkspace();
    expectError(await cancel(key, "run_00000000000000000000000000"), 404, "not_found");
  });
});

describe("DELETE /v1/agents/:id", () => {
  it("removes the agent's runs from D1 and from their Durable Objects, pending actions with them", async () => {
    const { key, agent, contacts, runId } = await pendingRun(TWO_STEPS, {}, 2);
    const [pending, waiting] = contacts as [Json, Json];
    await approve(key, runId, waiting.id, 0);
    // The agent's second run needs a contact of its own: one active run per agent per contact.
    const second = await startRun(key, agent.id, [(await makeContact(key)).id]);
    const other = await makeStepsAgent(key, [EMAIL_STEP]);
    const kept = await startRun(key, other.id, [pending.id]);

    const res = await api(`/v1/agents/${agent.id}`, { method: "DELETE", key });
    expect(res.status, JSON.stringify(res.body)).toBe(200);

    const db = createDb(env.DB);
    expect(await db.select().from(runs).where(eq(runs.agentId, agent.id))).toStrictEqual([]);
    for (const id of [runId, second]) {
      expect(await db.select().from(runContacts).where(eq(runContacts.runId, id))).toStrictEqual([]);
      expectError(await api(`/v1/agents/runs/${id}`, { key }), 404, "not_found");
      expectError(await approve(key, id, pending.id, 0), 404, "not_found");
      const storage = await runInDurableObject(runStub(id), async (instance: RunObject, state) => ({
        view: await instance.view("any", { offset: 0, limit: 10 }),
        tables: state.storage.sql.exec("SELECT count(*) AS n FROM sqlite_master WHERE name IN ('run', 'contacts', 'actions')").one().n,
        alarm: await state.storage.getAlarm(),
      }));
      expect(storage).toStrictEqual({ view: null, tables: 0, alarm: null });
    }

    // Another agent's run is untouched.
    expect(contactOf(await getRun(key, kept), pending.id).actions[0].status).toBe("pending_approval");
    expect((await runSql(kept, "SELECT status FROM actions")).map((r) => r.status)).toStrictEqual(["pending_approval"]);
  });
});

describe("a cancel that reaches D1 while the run is starting", () => {
  it("cancels the run's object too, instead of reviving the run", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key);
    const runId = (await api(`/v1/agents/${agent.id}/trigger`, { method: "POST", key, body: { contact_ids: [contact.id] } })).body.run_id;
    // The consumer read the run as queued; the cancel lands in D1 before the object starts.
    const [row] = await createDb(env.DB).select().from(runs).where(eq(runs.id, runId));
    await createDb(env.DB).update(runs).set({ status: "cancelled" }).where(eq(runs.id, runId));
    await runStub(runId).start(await buildSpec(createDb(env.DB), row!));
    await drive(runId);

    const run = await getRun(key, runId);
    expect(run.status).toBe("cancelled");
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "cancelled" });
    expect((await outbox(key)).total).toBe(0);
  });
});
