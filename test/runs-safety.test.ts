import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { events, runs } from "../src/db/schema";
import { newId } from "../src/lib/ids";
import { expectError, makeWorkspace } from "./helpers";
import { EMAIL_STEP, approve, contactOf, deliveryRows, getRun, makeContact, makeStepsAgent, outbox, runSql, runStub, startRun } from "./engine-helpers";

async function pendingEmail() {
  const { workspaceId, key } = await makeWorkspace();
  const agent = await makeStepsAgent(key, [EMAIL_STEP]);
  const contact = await makeContact(key, { first_name: "Ada" });
  const runId = await startRun(key, agent.id, [contact.id]);
  return { workspaceId, key, contact, runId };
}

describe("what a run will not send", () => {
  it("does not send to a contact who replied after the trigger but before the run started", async () => {
    const { workspaceId, key, contact, runId } = await pendingEmail();
    const [run] = await createDb(env.DB).select().from(runs).where(eq(runs.id, runId));
    // Recorded a moment after the trigger, before the run's object started.
    const between = new Date(run!.createdAt.getTime() + 1);
    await createDb(env.DB)
      .insert(events)
      .values({ id: newId("evt"), workspaceId, contactId: contact.id, type: "email.replied", url: null, properties: {}, occurredAt: between, createdAt: between });

    const res = await approve(key, runId, contact.id, 0);

    // Nothing was done, so the approval is not a success: the action says why.
    expect(expectError(res, 409, "action_not_pending").details).toStrictEqual([{ path: "status", message: "invalidated" }]);
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply" });
    expect((await outbox(key)).total).toBe(0);
  });

  it("refuses edits that change who the action reaches", async () => {
    const { key, contact, runId } = await pendingEmail();

    const body = expectError(await approve(key, runId, contact.id, 0, { params: { to: "someone-else@example.com" } }), 400, "validation_error");

    expect(body.details).toEqual([expect.objectContaining({ path: "params.to" })]);
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("pending_approval");
  });

  it("fails an automatic action whose proposal is invalid instead of sending it", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "auto", action: "email_message", require_approval: false, template: { subject: "Hi", body: "{{company}}" } }]);
    const contact = await makeContact(key, { company: null });
    const runId = await startRun(key, agent.id, [contact.id], "failed");

    const entry = contactOf(await getRun(key, runId), contact.id);
    expect(entry.status).toBe("failed");
    expect(entry.actions[0].error).toContain("params.body");
    expect((await outbox(key)).total).toBe(0);
  });

  it("keeps a delivered action delivered when its retry meets a reply that came afterwards", async () => {
    const { workspaceId, key, contact, runId } = await pendingEmail();
    expect((await approve(key, runId, contact.id, 0)).body.action.status).toBe("completed");
    // As if the object died after delivering but before recording it.
    await runSql(runId, "UPDATE actions SET status = 'running', lease_until = ?", Date.now() - 1);
    await runSql(runId, "UPDATE contacts SET status = 'processing', current_step = 0");
    await runSql(runId, "UPDATE run SET status = 'running', completed_at = NULL");
    const now = new Date();
    await createDb(env.DB)
      .insert(events)
      .values({ id: newId("evt"), workspaceId, contactId: contact.id, type: "email.replied", url: null, properties: {}, occurredAt: now, createdAt: now });
    await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(runStub(runId));

    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("completed");
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(1);
  });

  it("leaves an action another execution holds the lease on, and picks it up once the lease lapses", async () => {
    const { key, contact, runId } = await pendingEmail();
    await runSql(runId, "UPDATE actions SET status = 'approved'");
    await runSql(runId, "UPDATE actions SET status = 'running', lease_until = ?", Date.now() + 60_000);
    await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(runStub(runId));
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(0);

    await runSql(runId, "UPDATE actions SET lease_until = ?", Date.now() - 1);
    await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(runStub(runId));

    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(1);
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("completed");
  });
});
