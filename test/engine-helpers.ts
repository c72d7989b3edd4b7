import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { expect } from "vitest";
import { createDb } from "../src/db/client";
import { deliveries } from "../src/db/schema";
import type { RunObject } from "../src/runs/run-object";
import { api, makeAgent, makeIdentity, makeWorkspace, type Json } from "./helpers";
import { drive, getRun, trigger as triggerRequest } from "./run-helpers";

// Factories and probes shared by the run engine, action and stop tests.

let counter = 0;

export async function makeContact(key: string, overrides: Json = {}): Promise<Json> {
  const res = await api("/v1/contacts", { method: "POST", key, body: { email: `engine${++counter}@example.com`, ...overrides } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.contact;
}

/** An agent whose playbook is `steps` (capabilities wide enough for any of them), sending as a new identity unless `identity_id` is given. */
export async function makeStepsAgent(key: string, steps: Json[], overrides: Json = {}): Promise<Json> {
  return makeAgent(key, {
    capabilities: ["email", "linkedin", "notes", "crm_sync", "tasks"],
    playbook: { playbook_md: "# Test playbook", steps },
    ...overrides,
  });
}

/**
 * An email agent whose sender's window opens only tomorrow (UTC), so it is closed now
 * whatever the hour; `opening` is tomorrow at 09:00 UTC. `identity` is merged into the sender.
 */
export async function agentClosedUntilTomorrow(key: string, identity: Json = {}): Promise<{ agent: Json; opening: Date }> {
  const tomorrowIso = ((new Date().getUTCDay() || 7) % 7) + 1;
  const sender = await makeIdentity(key, { ...identity, send_window: { start: "09:00", end: "17:00", days: [tomorrowIso], timezone: "UTC" } });
  const agent = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: sender.id });
  const opening = new Date();
  opening.setUTCDate(opening.getUTCDate() + 1);
  opening.setUTCHours(9, 0, 0, 0);
  return { agent, opening };
}

/** One email step that needs approval, with a template that uses contact and sender fields. */
export const EMAIL_STEP = {
  id: "intro",
  action: "email_message",
  template: {
    subject: "Hello {{first_name|there}} at {{company|your company}}",
    body: "Hi {{first_name|there}},\n\nA note for {{company}}.\n\n{{sender.first_name}}",
  },
};

/** EMAIL_STEP, then a follow-up email a day later. */
export const TWO_STEPS = [EMAIL_STEP, { id: "follow_up", action: "email_message", wait: { days: 1 } }];

/** Triggers the agent for these contacts, asserting 200; the run id. */
export async function trigger(key: string, agentId: string, contactIds: string[]): Promise<string> {
  const res = await triggerRequest(key, agentId, { contact_ids: contactIds });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.run_id as string;
}

export { drive, getRun, makeIdentity };

/** The run object's own view of the run (all contacts on one page), read inside the object. */
export const viewOf = (runId: string) =>
  runInDurableObject(runStub(runId), (instance: RunObject, state) => {
    const spec = JSON.parse(state.storage.sql.exec("SELECT spec FROM run").one().spec as string);
    return instance.view(spec.workspaceId, { offset: 0, limit: 1000 });
  });

export const contactOf = (run: Json, contactId: string): Json => (run.contacts as Json[]).find((c) => c.contact_id === contactId)!;

/** Drives the run until nothing is due now (see `drive`), then asserts `check` on it. */
export async function waitForRun(key: string, runId: string, check: (run: Json) => void): Promise<Json> {
  await drive(runId);
  const run = await getRun(key, runId);
  check(run);
  return run;
}

/** Waits until the contact's action `index` exists with `status`, and returns it. */
export async function waitForAction(key: string, runId: string, contactId: string, index: number, status: string): Promise<Json> {
  const run = await waitForRun(key, runId, (r) => expect(contactOf(r, contactId)?.actions[index]?.status).toBe(status));
  return contactOf(run, contactId).actions[index];
}

/** Triggers `agent` for the contacts and waits for each contact's first action to be proposed. */
export async function startRun(key: string, agentId: string, contactIds: string[], firstStatus = "pending_approval"): Promise<string> {
  const runId = await trigger(key, agentId, contactIds);
  for (const id of contactIds) await waitForAction(key, runId, id, 0, firstStatus);
  return runId;
}

/** A new workspace's run whose one contact (Dana at Globex unless `contact` is given) has its first email pending approval; `steps` default to that email alone. */
export async function pendingEmail(steps: Json[] = [EMAIL_STEP], contact: Json = { first_name: "Dana", company: "Globex" }) {
  const { workspaceId, key } = await makeWorkspace();
  const agent = await makeStepsAgent(key, steps);
  const made = await makeContact(key, contact);
  const runId = await startRun(key, agent.id, [made.id]);
  return { workspaceId, key, agent, contact: made, runId, actionKey: `${runId}/${made.id}/0` };
}

/** Approves the contact's first action (asserted 200), runs what is due, and answers the contact's progress. */
export async function approveAndDrive(key: string, runId: string, contactId: string) {
  expect((await approve(key, runId, contactId, 0)).status).toBe(200);
  await drive(runId);
  return contactOf(await getRun(key, runId), contactId);
}

const actionPath = (runId: string, contactId: string, index: number) => `/v1/agents/runs/${runId}/contacts/${contactId}/actions/${index}`;

export const approve = (key: string, runId: string, contactId: string, index: number, body?: Json) =>
  api(`${actionPath(runId, contactId, index)}/approve`, { method: "POST", key, body: body ?? {} });

export const reject = (key: string, runId: string, contactId: string, index: number, body?: Json) =>
  api(`${actionPath(runId, contactId, index)}/reject`, { method: "POST", key, body: body ?? {} });

export const cancel = (key: string, runId: string) => api(`/v1/agents/runs/${runId}/cancel`, { method: "POST", key });

export async function outbox(key: string, query = ""): Promise<Json> {
  const res = await api(`/v1/outbox${query}`, { key });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** The contact's events of one type, newest first. */
export async function eventsOf(key: string, contactId: string, type: string): Promise<Json[]> {
  const res = await api(`/v1/contacts/${contactId}/events?type=${type}`, { key });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.events;
}

/** Delivery rows in D1 for one action, whatever the API shows. */
export async function deliveryRows(runId: string, contactId: string, index: number) {
  return createDb(env.DB).select().from(deliveries).where(eq(deliveries.actionKey, `${runId}/${contactId}/${index}`));
}

export const runStub = (runId: string) => env.RUNS.getByName(runId);

/** Runs SQL inside the run's Durable Object storage. */
export const runSql = (runId: string, query: string, ...bindings: SqlStorageValue[]) =>
  runInDurableObject(runStub(runId), (_instance, state) => state.storage.sql.exec(query, ...bindings).toArray());

/**
 * Moves every waiting step and scheduled action of the run into the past, then runs its
 * alarm now: days of waiting without sleeping. Returns whether an alarm ran.
 */
export async function advance(runId: string): Promise<boolean> {
  await runInDurableObject(runStub(runId), async (_instance, state) => {
    const past = Date.now() - 1;
    state.storage.sql.exec("UPDATE contacts SET next_step_at = ? WHERE status IN ('pending', 'waiting')", past);
    state.storage.sql.exec("UPDATE actions SET scheduled_for = ? WHERE status = 'scheduled'", past);
    // runDurableObjectAlarm runs a scheduled alarm whatever its time; a far one never fires by itself.
    if ((await state.storage.getAlarm()) === null) await state.storage.setAlarm(Date.now() + 3_600_000);
  });
  return runDurableObjectAlarm(runStub(runId));
}

/** `sha256:` + hex of the params as JSON with sorted keys (flat params, as email's are). */
export async function digestOf(params: Json): Promise<string> {
  const canonical = JSON.stringify(Object.fromEntries(Object.entries(params).sort(([a], [b]) => (a < b ? -1 : 1))));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical)));
  return `sha256:${[...hash].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
export const DAY = 86_400_000;
