import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { eq } from "drizzle-orm";
import { contacts, events } from "../src/db/schema";
import { newId } from "../src/lib/ids";
import { api, expectError, makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, agentClosedUntilTomorrow, approve, contactOf, deliveryRows, drive, getRun, makeContact, makeStepsAgent, outbox, pendingEmail, reject, startRun, trigger } from "./engine-helpers";
import { deliverStart, runRow, seedQueuedRun } from "./run-helpers";

const STEPS = [EMAIL_STEP, { id: "later", action: "email_message", wait: { days: 2 } }];
const ADA = { first_name: "Ada" };

const patchContact = (key: string, id: string, body: Json) => api(`/v1/contacts/${id}`, { method: "PATCH", key, body });

describe("a contact deleted while its run is under way", () => {
  it("invalidates its pending action at once, drops it from the counts and answers a later approve with 409", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, ADA);

    expect((await api(`/v1/contacts/${contact.id}`, { method: "DELETE", key })).status).toBe(200);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "contact_deleted", contact: null, actions: [{ status: "invalidated" }] });
    expect(run.counts).toMatchObject({ pending_approval: 0, invalidated: 1 });
    expect(run.status).toBe("completed");
    const body = expectError(await approve(key, runId, contact.id, 0), 409, "action_not_pending");
    expect(body.details).toStrictEqual([{ path: "status", message: "invalidated" }]);
    expect((await outbox(key)).total).toBe(0);
  });

  it("never proposes to a contact deleted between the trigger and the start", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const [gone, kept] = [await makeContact(key), await makeContact(key)];
    const runId = await trigger(key, agent.id, [gone.id, kept.id]);
    // Straight from D1, so only the start itself can notice.
    await createDb(env.DB).delete(contacts).where(eq(contacts.id, gone.id));

    await drive(runId);

    const run = await getRun(key, runId);
    expect(run.contact_count).toBe(2);
    expect(contactOf(run, gone.id)).toMatchObject({ status: "stopped", stop_reason: "contact_deleted", actions: [] });
    expect(contactOf(run, kept.id).actions[0].status).toBe("pending_approval");
  });
});

describe("a reply between the trigger and the start", () => {
  it("leaves no pending proposal when the reply was recorded before the object started", async () => {
    const { workspaceId, key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key);
    const runId = await trigger(key, agent.id, [contact.id]);
    const at = new Date((await runRow(runId)).createdAt.getTime() + 1);
    await createDb(env.DB).insert(events).values({ id: newId("evt"), workspaceId, contactId: contact.id, type: "email.replied", url: null, properties: {}, occurredAt: at, createdAt: at });

    await drive(runId);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply", actions: [] });
    expect(run.counts.pending_approval).toBe(0);
  });

  it("applies a stop signal that reached the object before it started", async () => {
    // A run written as the trigger writes it, whose queue message is not sent: it stays queued.
    const { key, runId, contactIds } = await seedQueuedRun();
    const res = await api("/v1/events", { method: "POST", key, body: { events: [{ contact_id: contactIds[0], type: "email.bounced" }] } });
    expect(res.status).toBe(201);

    await deliverStart(runId);
    await drive(runId);

    const run = await getRun(key, runId);
    expect(contactOf(run, contactIds[0]!)).toMatchObject({ status: "stopped", stop_reason: "bounce", actions: [] });
    expect(contactOf(run, contactIds[1]!).actions[0].status).toBe("pending_approval");
  });
});

describe("a contact whose email changes", () => {
  it("invalidates the pending email (contact_changed) and proposes the step again to the new address", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, ADA);
    expect((await patchContact(key, contact.id, { email: "ada.new@example.com" })).status).toBe(200);
    await drive(runId);

    const progress = contactOf(await getRun(key, runId), contact.id);
    expect(progress.status).toBe("awaiting_approval");
    expect(progress.actions).toMatchObject([
      { index: 0, step_id: "intro", status: "invalidated", params: { to: contact.email }, error: expect.stringContaining("contact_changed") },
      { index: 1, step_id: "intro", status: "pending_approval", params: { to: "ada.new@example.com" } },
    ]);
    expectError(await approve(key, runId, contact.id, 0), 409, "action_not_pending");
    expect((await approve(key, runId, contact.id, 1)).body.action.status).toBe("completed");
    expect((await outbox(key)).deliveries.map((d: Json) => d.params.to)).toStrictEqual(["ada.new@example.com"]);
  });

  it("takes back an approved email waiting for the send window and writes it again for the new address", async () => {
    const { key } = await makeWorkspace();
    const { agent } = await agentClosedUntilTomorrow(key);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id]);
    expect((await approve(key, runId, contact.id, 0)).body.action.status).toBe("scheduled");

    await patchContact(key, contact.id, { email: "moved@example.com" });
    await drive(runId);

    const actions = contactOf(await getRun(key, runId), contact.id).actions;
    expect(actions.map((a: Json) => [a.status, a.params.to])).toStrictEqual([
      ["invalidated", contact.email],
      ["pending_approval", "moved@example.com"],
    ]);
  });

  it("never sends to the old address, even when the run was not told of the change", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, ADA);
    // Straight into D1: the change reaches only the send itself.
    await env.DB.prepare("UPDATE contacts SET email = 'silent@example.com', email_key = 'silent@example.com' WHERE id = ?").bind(contact.id).run();

    expectError(await approve(key, runId, contact.id, 0), 409, "action_not_pending");
    await drive(runId);

    const actions = contactOf(await getRun(key, runId), contact.id).actions;
    expect(actions.map((a: Json) => [a.status, a.params.to])).toStrictEqual([
      ["invalidated", contact.email],
      ["pending_approval", "silent@example.com"],
    ]);
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(0);
  });

  it("leaves actions alone when only the name changes", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, ADA);
    await patchContact(key, contact.id, { first_name: "Augusta" });
    await drive(runId);
    expect(contactOf(await getRun(key, runId), contact.id).actions.map((a: Json) => a.status)).toStrictEqual(["pending_approval"]);
  });
});

describe("the details a run shows of its contacts", () => {
  it("follow a PATCH and a batch upsert while the run is active, and come from D1 once it has finished", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, { ...ADA, company: "Acme" });
    await patchContact(key, contact.id, { first_name: "Augusta", job_title: "Countess" });
    await api("/v1/contacts/batch", { method: "POST", key, body: { contacts: [{ email: contact.email, company: "Analytical Engines" }] } });

    const shown = contactOf(await getRun(key, runId), contact.id).contact;
    expect(shown).toStrictEqual({ email: contact.email, first_name: "Augusta", last_name: null, company: "Analytical Engines", job_title: "Countess", lifecycle_stage: null });

    expect((await reject(key, runId, contact.id, 0)).status).toBe(200);
    // Finished runs are no longer told: they read D1.
    await env.DB.prepare("UPDATE contacts SET first_name = 'Ada' WHERE id = ?").bind(contact.id).run();
    expect(contactOf(await getRun(key, runId), contact.id).contact.first_name).toBe("Ada");
  });
});

describe("a digest sent with a decision", () => {
  it("is checked even after someone else decided: an edit-approval makes the old digest a 409", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, ADA);
    const seen = contactOf(await getRun(key, runId), contact.id).actions[0];
    expect((await approve(key, runId, contact.id, 0, { params: { subject: "Edited" } })).status).toBe(200);

    const late = await approve(key, runId, contact.id, 0, { digest: seen.digest });
    expectError(late, 409, "digest_mismatch");
    expectError(await reject(key, runId, contact.id, 0, { digest: seen.digest }), 409, "digest_mismatch");
  });

  it("answers a repeat approval with the digest the approver saw with 200 when nothing changed", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, ADA);
    const seen = contactOf(await getRun(key, runId), contact.id).actions[0];
    expect((await approve(key, runId, contact.id, 0, { digest: seen.digest })).status).toBe(200);
    const again = await approve(key, runId, contact.id, 0, { digest: seen.digest });
    expect(again.status).toBe(200);
    expect(again.body.action.status).toBe("completed");
  });

  it("refuses a rejection whose digest differs from the pending action's", async () => {
    const { key, contact, runId } = await pendingEmail(STEPS, ADA);
    expectError(await reject(key, runId, contact.id, 0, { digest: "sha256:0000" }), 409, "digest_mismatch");
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("pending_approval");
  });
});
