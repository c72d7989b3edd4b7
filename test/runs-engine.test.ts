import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { api, makeWorkspace, type Json } from "./helpers";
import {
  DAY,
  EMAIL_STEP,
  ISO_MS,
  advance,
  agentClosedUntilTomorrow,
  approve,
  contactOf,
  deliveryRows,
  digestOf,
  drive,
  getRun,
  makeContact,
  makeIdentity,
  makeStepsAgent,
  outbox,
  runSql,
  runStub,
  startRun,
  trigger,
  viewOf,
  waitForAction,
  waitForRun,
} from "./engine-helpers";

const DELIVERY_ID = /^dlv_/;
const counts = (c: Partial<Record<string, number>> = {}) => ({ pending_approval: 0, approved: 0, rejected: 0, completed: 0, failed: 0, invalidated: 0, cancelled: 0, ...c });


describe("a run from trigger to delivery", () => {
  it("proposes the step's email rendered for the contact and the sender, with its reasoning and digest", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key, { first_name: "Sam" });
    const agent = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: identity.id });
    const ada = await makeContact(key, { first_name: "Ada", last_name: "Lovelace", company: "Acme" });
    const bare = await makeContact(key);
    const runId = await startRun(key, agent.id, [ada.id, bare.id]);

    const run = await getRun(key, runId);
    expect(run.status).toBe("awaiting_approval");
    expect(run.counts).toStrictEqual(counts({ pending_approval: 2 }));
    expect(run.contacts.map((c: Json) => c.contact_id)).toStrictEqual([ada.id, bare.id]);

    const progress = contactOf(run, ada.id);
    expect(progress).toMatchObject({
      status: "awaiting_approval",
      current_step: 0,
      current_step_id: "intro",
      next_step_at: null,
      stop_reason: null,
      contact: { email: ada.email, first_name: "Ada", last_name: "Lovelace", company: "Acme" },
    });
    const params = { to: ada.email, subject: "Hello Ada at Acme", body: "Hi Ada,\n\nA note for Acme.\n\nSam" };
    expect(progress.actions).toStrictEqual([
      {
        index: 0,
        step_id: "intro",
        type: "email_message",
        status: "pending_approval",
        identity_id: identity.id,
        params,
        reasoning: expect.any(String),
        digest: await digestOf(params),
        proposed_at: expect.stringMatching(ISO_MS),
        decided_at: null,
        decision: null,
        scheduled_for: null,
        attempts: 0,
        executed_at: null,
        result: null,
        error: null,
        generation: null,
        // No window and nothing sent today: it would go the moment it is approved.
        estimated_send_at: expect.stringMatching(ISO_MS),
      },
    ]);
    const reasoning = progress.actions[0].reasoning as string;
    for (const why of ["intro", "email_message", "template", "first_name", "company", "sender.first_name"]) expect(reasoning).toContain(why);

    // No first name and no company: the fallbacks, or nothing where the template has none.
    const fallback = contactOf(run, bare.id).actions[0];
    expect(fallback.params).toStrictEqual({ to: bare.email, subject: "Hello there at your company", body: "Hi there,\n\nA note for .\n\nSam" });
    expect(fallback.reasoning).toMatch(/No value for first_name, company/);
    expect(fallback.digest).toBe(await digestOf(fallback.params));
  });

  it("delivers an approved email to the outbox once, and the run, its counts and the D1 mirror agree", async () => {
    const { key, keyId } = await makeWorkspace();
    const identity = await makeIdentity(key, { first_name: "Sam", last_name: "Sender", email_address: "sam@cairn.example" });
    const agent = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: identity.id });
    const ada = await makeContact(key, { first_name: "Ada", last_name: "Lovelace", company: "Acme" });
    const runId = await startRun(key, agent.id, [ada.id]);
    const proposed = contactOf(await getRun(key, runId), ada.id).actions[0];

    const res = await approve(key, runId, ada.id, 0);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toStrictEqual({
      status: "success",
      action: {
        ...proposed,
        status: "completed",
        estimated_send_at: null,
        attempts: 1,
        decided_at: expect.stringMatching(ISO_MS),
        decision: { type: "approve", by_key_id: keyId, reason: null, edited: false },
        executed_at: expect.stringMatching(ISO_MS),
        result: { delivery_id: expect.stringMatching(DELIVERY_ID), channel: "email" },
      },
    });

    const box = await outbox(key);
    expect(box.total).toBe(1);
    expect(box.deliveries).toStrictEqual([
      {
        id: res.body.action.result.delivery_id,
        channel: "email",
        action: { run_id: runId, agent_id: agent.id, contact_id: ada.id, index: 0, type: "email_message" },
        contact: { id: ada.id, email: ada.email, first_name: "Ada", last_name: "Lovelace" },
        identity: { id: identity.id, first_name: "Sam", last_name: "Sender", email_address: "sam@cairn.example" },
        params: proposed.params,
        transport: "outbox",
        status: "sent",
        message_id: `<${res.body.action.result.delivery_id}@cairn.example>`,
        provider_message_id: null,
        send_day: new Date().toISOString().slice(0, 10),
        error: null,
        created_at: expect.stringMatching(ISO_MS),
        updated_at: expect.stringMatching(ISO_MS),
      },
    ]);

    const run = await getRun(key, runId);
    expect(run).toMatchObject({ status: "completed", counts: counts({ completed: 1 }), completed_at: expect.stringMatching(ISO_MS), error: null });
    expect(contactOf(run, ada.id)).toMatchObject({ status: "completed", current_step: null, next_step_at: null, actions: [res.body.action] });

    const view = await viewOf(runId);
    expect(view?.counts).toStrictEqual(run.counts);
    expect(view?.status).toBe("completed");
    // Run lists read the D1 mirror, which the run's alarm writes.
    await drive(runId);
    const listed = await api(`/v1/agents/${agent.id}/runs`, { key });
    const { contacts: _c, contacts_total: _t, contacts_limit: _l, contacts_offset: _o, contacts_next_offset: _n, ...summary } = run;
    expect(listed.body.runs).toStrictEqual([summary]);
  });
});

describe("the cold_outreach template", () => {
  it("walks email, LinkedIn and follow-up email with their waits, then completes", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key, { first_name: "Sam" });
    // Straight through the API: makeAgent's default capabilities would replace the template's.
    const created = await api("/v1/agents", { method: "POST", key, body: { name: "Cold", playbook_template: "cold_outreach", identity_id: identity.id } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const agent = created.body.agent;
    const ada = await makeContact(key, { first_name: "Ada", company: "Acme", linkedin_url: "https://www.linkedin.com/in/ada" });
    const runId = await startRun(key, agent.id, [ada.id]);

    const intro = contactOf(await getRun(key, runId), ada.id).actions[0];
    expect(intro).toMatchObject({ step_id: "intro_email", type: "email_message", params: { to: ada.email, subject: "Quick question, Ada" } });
    expect(intro.params.body).toContain("teams like Acme");

    let before = Date.now();
    expect((await approve(key, runId, ada.id, 0)).body.action.status).toBe("completed");
    let after = Date.now();
    let progress = contactOf(await getRun(key, runId), ada.id);
    expect(progress).toMatchObject({ status: "waiting", current_step: 1, current_step_id: "linkedin_connect" });
    expect(Date.parse(progress.next_step_at)).toBeGreaterThanOrEqual(before + 2 * DAY);
    expect(Date.parse(progress.next_step_at)).toBeLessThanOrEqual(after + 2 * DAY);

    expect(await advance(runId)).toBe(true);
    progress = contactOf(await getRun(key, runId), ada.id);
    expect(progress.status).toBe("awaiting_approval");
    expect(progress.actions[1]).toMatchObject({
      index: 1,
      step_id: "linkedin_connect",
      type: "linkedin_connection",
      status: "pending_approval",
      params: { profile_url: "https://www.linkedin.com/in/ada", message: "Hi Ada, I sent you a note about outreach at Acme. Happy to connect here." },
    });

    before = Date.now();
    const connected = await approve(key, runId, ada.id, 1);
    after = Date.now();
    expect(connected.body.action).toMatchObject({ status: "completed", result: { channel: "linkedin" } });
    progress = contactOf(await getRun(key, runId), ada.id);
    expect(progress).toMatchObject({ status: "waiting", current_step: 2, current_step_id: "follow_up_email" });
    expect(Date.parse(progress.next_step_at)).toBeGreaterThanOrEqual(before + 3 * DAY);
    expect(Date.parse(progress.next_step_at)).toBeLessThanOrEqual(after + 3 * DAY);

    expect(await advance(runId)).toBe(true);
    const followUp = contactOf(await getRun(key, runId), ada.id).actions[2];
    expect(followUp).toMatchObject({ step_id: "follow_up_email", type: "email_message", status: "pending_approval", params: { subject: "Re: Quick question, Ada" } });
    expect((await approve(key, runId, ada.id, 2)).body.action.status).toBe("completed");

    const run = await getRun(key, runId);
    expect(run).toMatchObject({ status: "completed", completed_at: expect.stringMatching(ISO_MS), counts: counts({ completed: 3 }) });
    expect(contactOf(run, ada.id)).toMatchObject({ status: "completed", current_step: null, next_step_at: null });
    const box = await outbox(key, `?run_id=${runId}`);
    expect(box.deliveries.map((d: Json) => [d.action.index, d.action.type, d.channel])).toStrictEqual([
      [2, "email_message", "email"],
      [1, "linkedin_connection", "linkedin"],
      [0, "email_message", "email"],
    ]);
  });
});

describe("steps that need no approval", () => {
  it("auto-approves and executes a create_note step, writing the note, then proposes the next step", async () => {
    const { key } = await makeWorkspace();
    const note = { id: "log", action: "create_note", require_approval: false, template: { note: "Reached out to {{first_name}} at {{company}}" } };
    const agent = await makeStepsAgent(key, [note, EMAIL_STEP]);
    const ada = await makeContact(key, { first_name: "Ada", company: "Acme" });
    const runId = await trigger(key, agent.id, [ada.id]);
    await waitForAction(key, runId, ada.id, 1, "pending_approval");

    const run = await getRun(key, runId);
    const [logged] = contactOf(run, ada.id).actions;
    expect(logged).toMatchObject({ step_id: "log", type: "create_note", status: "completed", decision: null, decided_at: null, params: { note: "Reached out to Ada at Acme" } });
    expect(logged.executed_at).toMatch(ISO_MS);
    expect(run.counts).toStrictEqual(counts({ completed: 1, pending_approval: 1 }));

    const notes = await api(`/v1/contacts/${ada.id}/notes`, { key });
    expect(notes.body.notes).toStrictEqual([{ id: logged.result.note_id, contact_id: ada.id, body: "Reached out to Ada at Acme", run_id: runId, created_at: expect.stringMatching(ISO_MS) }]);
    expect((await outbox(key)).total).toBe(0);
  });

  it("auto-approves an outbound step and delivers it without a decision", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "task", action: "create_task", require_approval: false }]);
    const ada = await makeContact(key, { first_name: "Ada", last_name: "Lovelace", company: "Acme" });
    const runId = await trigger(key, agent.id, [ada.id]);
    const run = await waitForRun(key, runId, (r) => expect(r.status).toBe("completed"));

    const [task] = contactOf(run, ada.id).actions;
    expect(task).toMatchObject({ type: "create_task", status: "completed", decision: null, result: { channel: "tasks" } });
    const box = await outbox(key);
    expect(box.deliveries).toHaveLength(1);
    expect(box.deliveries[0]).toMatchObject({ id: task.result.delivery_id, channel: "tasks", params: { title: "Follow up with Ada Lovelace", message: "Follow up with Ada at Acme." } });
  });
});

describe("a step the contact cannot take", () => {
  it("fails a LinkedIn action for a contact without linkedin_url, and only that contact", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "connect", action: "linkedin_connection" }]);
    const without = await makeContact(key, { first_name: "Nolan" });
    const withUrl = await makeContact(key, { first_name: "Ada", linkedin_url: "https://www.linkedin.com/in/ada" });
    const runId = await trigger(key, agent.id, [without.id, withUrl.id]);
    await waitForAction(key, runId, without.id, 0, "failed");
    await waitForAction(key, runId, withUrl.id, 0, "pending_approval");

    const run = await getRun(key, runId);
    expect(contactOf(run, without.id)).toMatchObject({ status: "failed", stop_reason: "error" });
    expect(contactOf(run, without.id).actions[0]).toMatchObject({ type: "linkedin_connection", status: "failed", error: expect.stringContaining("linkedin_url") });
    expect(run.counts).toStrictEqual(counts({ failed: 1, pending_approval: 1 }));
    expect(run.status).toBe("awaiting_approval");
  });

  it("fails the run when every contact failed", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "connect", action: "linkedin_connection" }]);
    const contact = await makeContact(key);
    const runId = await trigger(key, agent.id, [contact.id]);
    const run = await waitForRun(key, runId, (r) => expect(r.status).toBe("failed"));
    expect(run).toMatchObject({ error: expect.any(String), completed_at: expect.stringMatching(ISO_MS), counts: counts({ failed: 1 }) });
    expect((await outbox(key)).total).toBe(0);
  });
});

describe("executing and alarming again", () => {
  it("delivers once when an action is executed again after a crash between the outbox write and the bookkeeping", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP, { id: "again", action: "email_message", wait: { days: 1 } }]);
    const ada = await makeContact(key, { first_name: "Ada" });
    const runId = await startRun(key, agent.id, [ada.id]);
    const first = await approve(key, runId, ada.id, 0);
    const deliveryId = first.body.action.result.delivery_id;
    expect(await deliveryRows(runId, ada.id, 0)).toHaveLength(1);

    // What the object holds if it died after the delivery was written but before it said so.
    await runSql(runId, "UPDATE actions SET status = 'running', lease_until = ?, executed_at = NULL, result = NULL WHERE contact_id = ? AND idx = 0", Date.now() - 1, ada.id);
    await runSql(runId, "UPDATE contacts SET status = 'processing', current_step = 0, next_step_at = NULL WHERE contact_id = ?", ada.id);
    expect(await advance(runId)).toBe(true);

    const progress = contactOf(await getRun(key, runId), ada.id);
    expect(progress.actions).toHaveLength(1);
    expect(progress.actions[0]).toMatchObject({ status: "completed", result: { delivery_id: deliveryId, channel: "email" } });
    // Moved on by one step, not two.
    expect(progress).toMatchObject({ status: "waiting", current_step: 1, current_step_id: "again" });
    expect(await deliveryRows(runId, ada.id, 0)).toHaveLength(1);
    expect((await outbox(key)).total).toBe(1);
  });

  it("changes nothing when the alarm runs twice in a row", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP, { id: "again", action: "email_message", wait: { days: 1 } }]);
    const ada = await makeContact(key, { first_name: "Ada" });
    const runId = await startRun(key, agent.id, [ada.id]);
    await approve(key, runId, ada.id, 0);
    expect(await advance(runId)).toBe(true);
    const once = await viewOf(runId);
    expect(once?.contacts[0]?.actions).toHaveLength(2);

    await runInDurableObject(runStub(runId), (_instance, state) => state.storage.setAlarm(Date.now() + DAY));
    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    expect(await advance(runId)).toBe(true);
    // The same, but for the moment the pending follow-up would go out, which is now whenever it is asked.
    const at = (view: typeof once) => view?.contacts[0]?.actions[1]?.estimated_send_at;
    expect(await viewOf(runId)).toStrictEqual({ ...once, contacts: [{ ...once!.contacts[0]!, actions: [once!.contacts[0]!.actions[0]!, { ...once!.contacts[0]!.actions[1]!, estimated_send_at: expect.stringMatching(ISO_MS) }] }] });
    expect(at(once)).toMatch(ISO_MS);
    expect((await getRun(key, runId)).counts).toStrictEqual(counts({ completed: 1, pending_approval: 1 }));
    expect((await outbox(key)).total).toBe(1);
  });
});

describe("the sender's send window", () => {
  it("schedules an approved email for the window's next opening and delivers it there, not before", async () => {
    const { key } = await makeWorkspace();
    // Open only tomorrow (UTC), so it is closed now whatever the hour.
    const { agent, opening } = await agentClosedUntilTomorrow(key);
    const ada = await makeContact(key, { first_name: "Ada" });
    const runId = await startRun(key, agent.id, [ada.id]);

    const res = await approve(key, runId, ada.id, 0);
    expect(res.status).toBe(200);
    expect(res.body.action).toMatchObject({ status: "scheduled", scheduled_for: opening.toISOString(), executed_at: null, result: null });
    let run = await getRun(key, runId);
    expect(run.counts).toStrictEqual(counts({ approved: 1 }));
    expect(contactOf(run, ada.id)).toMatchObject({ status: "processing", next_step_at: opening.toISOString() });
    expect((await outbox(key)).total).toBe(0);

    // Woken early, while the window is still closed: it waits for the opening again.
    expect(await advance(runId)).toBe(true);
    expect(contactOf(await getRun(key, runId), ada.id).actions[0]).toMatchObject({ status: "scheduled", scheduled_for: opening.toISOString() });
    expect((await outbox(key)).total).toBe(0);

    // At the opening the alarm sends it.
    vi.setSystemTime(opening);
    try {
      expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    } finally {
      vi.useRealTimers();
    }
    run = await getRun(key, runId);
    expect(contactOf(run, ada.id).actions[0]).toMatchObject({ status: "completed", executed_at: opening.toISOString(), result: { channel: "email" } });
    expect(run.status).toBe("completed");
    const box = await outbox(key);
    expect(box.deliveries).toHaveLength(1);
    expect(box.deliveries[0].created_at).toBe(opening.toISOString());
  });
});
