import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";
import type { RunObject } from "../src/runs/run-object";
import { insertEvents } from "../src/webhooks/dispatch";
import { api, makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, approve, cancel, drive, makeContact, makeStepsAgent, reject, runSql, runStub, startRun, trigger } from "./engine-helpers";
import { deliverStart, seedQueuedRun } from "./run-helpers";
import { consume, heldInEachTest, makeEndpoint, receiverServer, rows } from "./webhook-helpers";

const server = receiverServer();
const held = heldInEachTest();

/** The workspace's webhook events in the order they were written. */
const eventsOf = async (workspaceId: string) =>
  (await rows("SELECT id, type, data FROM webhook_events WHERE workspace_id = ? ORDER BY id", workspaceId)).map((e): Json => ({ ...e, data: JSON.parse(e.data) }));
const typesOf = async (workspaceId: string) => (await eventsOf(workspaceId)).map((e) => e.type);

/** A workspace with an endpoint taking every event, an email agent and a contact. */
async function workspace(steps: Json[] = [EMAIL_STEP], agentOverrides: Json = {}) {
  const { key, workspaceId } = await makeWorkspace();
  const endpoint = await makeEndpoint(key, { events: ["*"] });
  const agent = await makeStepsAgent(key, steps, agentOverrides);
  const contact = await makeContact(key, { first_name: "Ada" });
  return { key, workspaceId, endpoint, agent, contact };
}

describe("a run's transitions", () => {
  it("emit each event once, in order, each delivered once to the endpoint", async () => {
    const { key, workspaceId, endpoint, agent, contact } = await workspace();
    const runId = await startRun(key, agent.id, [contact.id]);
    await drive(runId);
    expect(await typesOf(workspaceId)).toStrictEqual(["run.started", "action.proposed", "run.awaiting_approval"]);

    expect((await approve(key, runId, contact.id, 0)).status).toBe(200);
    await drive(runId);
    const events = await eventsOf(workspaceId);
    expect(events.map((e) => e.type)).toStrictEqual(["run.started", "action.proposed", "run.awaiting_approval", "action.approved", "action.executed", "run.completed"]);

    const proposed = events.find((e) => e.type === "action.proposed")!.data;
    expect(proposed).toMatchObject({ run_id: runId, agent_id: agent.id, contact_id: contact.id, index: 0, status: "pending_approval", type: "email_message" });
    expect(proposed).not.toHaveProperty("estimated_send_at");
    expect(events.at(-1)!.data).toMatchObject({ id: runId, run_id: runId, agent_id: agent.id, status: "completed", counts: { completed: 1 } });

    // One delivery per event, each handed to the queue once.
    const deliveries = await rows("SELECT event_id FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY event_id", endpoint.id);
    expect(deliveries.map((d) => d.event_id)).toStrictEqual(events.map((e) => e.id));
    expect(held.messages.map((m) => m.event_id).sort()).toStrictEqual(events.map((e) => e.id));
  });

  it("emit nothing more when the start message comes again and the alarm runs twice", async () => {
    const { key, workspaceId, agent, contact } = await workspace();
    const runId = await startRun(key, agent.id, [contact.id]);
    await drive(runId);
    const before = await typesOf(workspaceId);

    await deliverStart(runId, 2);
    await runInDurableObject(runStub(runId), async (instance: RunObject) => {
      await instance.alarm();
      await instance.alarm();
    });
    await drive(runId);
    // The same approval twice (a client's retry) answers the same, and moves nothing the second time.
    expect((await approve(key, runId, contact.id, 0)).status).toBe(200);
    expect((await approve(key, runId, contact.id, 0)).status).toBe(200);
    await drive(runId);
    expect(await typesOf(workspaceId)).toStrictEqual([...before, "action.approved", "action.executed", "run.completed"]);
  });

  it("a rejection: action.rejected and contact.stopped, then run.completed", async () => {
    const { key, workspaceId, agent, contact } = await workspace();
    const runId = await startRun(key, agent.id, [contact.id]);
    expect((await reject(key, runId, contact.id, 0, { reason: "Not now" })).status).toBe(200);
    await drive(runId);
    const events = await eventsOf(workspaceId);
    expect(events.map((e) => e.type).slice(3)).toStrictEqual(["action.rejected", "contact.stopped", "run.completed"]);
    expect(events.find((e) => e.type === "contact.stopped")!.data).toStrictEqual({ run_id: runId, agent_id: agent.id, contact_id: contact.id, status: "stopped", stop_reason: "rejected" });
  });

  it("a cancel: run.cancelled once, and contact.stopped for each unfinished contact", async () => {
    const { key, workspaceId, agent, contact } = await workspace();
    const other = await makeContact(key, { first_name: "Bo" });
    const runId = await startRun(key, agent.id, [contact.id, other.id]);
    expect((await cancel(key, runId)).status).toBe(200);
    expect((await cancel(key, runId)).status).toBe(409);
    await drive(runId);
    const types = await typesOf(workspaceId);
    expect(types.filter((t) => t === "run.cancelled")).toHaveLength(1);
    expect(types.filter((t) => t === "contact.stopped")).toHaveLength(2);
    expect(types).not.toContain("run.completed");
  });

  it("an email change: action.invalidated, and the step proposed again", async () => {
    const { key, workspaceId, agent, contact } = await workspace();
    const runId = await startRun(key, agent.id, [contact.id]);
    expect((await api(`/v1/contacts/${contact.id}`, { method: "PATCH", key, body: { email: "ada.new@example.com" } })).status).toBe(200);
    await drive(runId);
    const events = await eventsOf(workspaceId);
    expect(events.map((e) => e.type).filter((t) => t.startsWith("action."))).toStrictEqual(["action.proposed", "action.invalidated", "action.proposed"]);
    expect(events.filter((e) => e.type === "action.proposed").map((e) => e.data.params.to)).toStrictEqual([contact.email, "ada.new@example.com"]);
  });

  it("a proposal the model cannot make: action.failed, then run.failed", async () => {
    server.use(http.post("https://openai.test/v1/chat/completions", () => HttpResponse.json({ error: { message: "Incorrect API key" } }, { status: 401 })));
    const { key, workspaceId, agent, contact } = await workspace([EMAIL_STEP], { llm_config: { provider: "openai", model: "gpt-4.1-mini" } });
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);
    const events = await eventsOf(workspaceId);
    expect(events.map((e) => e.type)).toStrictEqual(["run.started", "action.failed", "run.failed"]);
    expect(events[1]!.data).toMatchObject({ status: "failed", error: expect.stringContaining("Incorrect API key") });
  });
});

describe("a crash between a transition and D1", () => {
  it("delays the events, never loses or doubles them: the outbox keeps them until D1 holds them", async () => {
    const { key, workspaceId, endpoint, agent, contact } = await workspace();
    await env.DB.prepare("CREATE TRIGGER test_events_down BEFORE INSERT ON webhook_events BEGIN SELECT RAISE(ABORT, 'D1 is down'); END").run();
    let runId: string;
    try {
      runId = await startRun(key, agent.id, [contact.id]);
      await drive(runId);
    } finally {
      await env.DB.prepare("DROP TRIGGER test_events_down").run();
    }
    expect(await typesOf(workspaceId)).toStrictEqual([]);
    const waiting = await runSql(runId, "SELECT id, type, data, created_at FROM outbox WHERE kind = 'event' ORDER BY seq");
    expect(waiting.map((e) => e.type)).toStrictEqual(["run.started", "action.proposed", "run.awaiting_approval"]);

    // The first copy reached D1, but the object died before it forgot them: the next copy is the same events.
    await insertEvents(env.DB, workspaceId, [{ id: waiting[0]!.id as string, workspaceId, type: waiting[0]!.type as string, data: JSON.parse(waiting[0]!.data as string), createdAt: Number(waiting[0]!.created_at) }]).run();
    await runSql(runId, "UPDATE run SET mirror_retry_at = NULL");
    await runInDurableObject(runStub(runId), (_instance, state) => state.storage.setAlarm(Date.now()));
    await drive(runId);

    const events = await eventsOf(workspaceId);
    expect(events.map((e) => e.id)).toStrictEqual(waiting.map((e) => e.id));
    expect(await runSql(runId, "SELECT * FROM outbox")).toStrictEqual([]);
    const deliveries = await rows("SELECT event_id FROM webhook_deliveries WHERE endpoint_id = ?", endpoint.id);
    expect(deliveries).toHaveLength(3);
  });
});

describe("transitions D1 makes itself", () => {
  it("nothing kept for a workspace without an enabled endpoint, by D1's triggers or by a run", async () => {
    const { key, workspaceId } = await makeWorkspace();
    await makeEndpoint(key, { enabled: false });
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const ada = await makeContact(key, { first_name: "Ada" });
    const runId = await startRun(key, agent.id, [ada.id]);
    await drive(runId);
    expect((await api(`/v1/contacts/${ada.id}`, { method: "PATCH", key, body: { unsubscribed: true } })).status).toBe(200);
    await drive(runId);
    expect(await typesOf(workspaceId)).toStrictEqual([]);
  });

  it("contact.unsubscribed once per opt-out, whichever way it comes", async () => {
    const { key, workspaceId } = await makeWorkspace();
    await makeEndpoint(key, { events: ["contact.unsubscribed"] });
    const ada = await makeContact(key, { first_name: "Ada" });
    const bo = await makeContact(key, { first_name: "Bo" });
    for (let i = 0; i < 2; i++) expect((await api(`/v1/contacts/${ada.id}`, { method: "PATCH", key, body: { unsubscribed: true } })).status).toBe(200);
    expect((await api("/v1/events", { method: "POST", key, body: { events: [{ contact_id: bo.id, type: "contact.unsubscribed" }, { contact_id: bo.id, type: "contact.unsubscribed" }] } })).status).toBe(201);

    const events = await eventsOf(workspaceId);
    expect(events.map((e) => e.type)).toStrictEqual(["contact.unsubscribed", "contact.unsubscribed"]);
    expect(events.map((e) => e.data.contact_id)).toStrictEqual([ada.id, bo.id]);
    expect(events[0]!.data).toStrictEqual({ contact_id: ada.id, email: ada.email, unsubscribed: true, unsubscribed_at: expect.stringMatching(/Z$/) });
    expect(events[0]!.id).toMatch(/^msg_[0-9A-F]{32}$/);
  });

  it("run.cancelled for a run cancelled before it started, once, and nothing when its start message comes after", async () => {
    const { key, runId } = await seedQueuedRun();
    const workspaceId = (await rows("SELECT workspace_id FROM runs WHERE id = ?", runId))[0]!.workspace_id as string;
    await makeEndpoint(key);
    expect((await cancel(key, runId)).status).toBe(200);
    await deliverStart(runId);
    const events = await eventsOf(workspaceId);
    expect(events.map((e) => e.type)).toStrictEqual(["run.cancelled"]);
    expect(events[0]!.data).toMatchObject({ id: runId, run_id: runId, status: "cancelled", started_at: null, usage: { proposals: 0, input_tokens: 0, output_tokens: 0 } });
  });

  it("run.failed for a run whose start message was dead-lettered", async () => {
    const { key, runId } = await seedQueuedRun();
    const workspaceId = (await rows("SELECT workspace_id FROM runs WHERE id = ?", runId))[0]!.workspace_id as string;
    await makeEndpoint(key);
    await consume([{ run_id: runId } as never], { queue: "cairn-runs-dlq" });
    expect(await typesOf(workspaceId)).toStrictEqual(["run.failed"]);
  });
});

describe("endpoints and event types", () => {
  it("an endpoint gets only the types it asked for; a disabled one gets nothing", async () => {
    const { key, workspaceId, agent, contact } = await workspace();
    const narrow = await makeEndpoint(key, { events: ["action.proposed"] });
    const off = await makeEndpoint(key, { enabled: false });
    const runId = await startRun(key, agent.id, [contact.id]);
    await drive(runId);
    expect(await typesOf(workspaceId)).toHaveLength(3);
    expect(await rows("SELECT event_type FROM webhook_deliveries WHERE endpoint_id = ?", narrow.id)).toStrictEqual([{ event_type: "action.proposed" }]);
    expect(await rows("SELECT * FROM webhook_deliveries WHERE endpoint_id = ?", off.id)).toStrictEqual([]);
  });
});
