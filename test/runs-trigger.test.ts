import { env } from "cloudflare:workers";
import { and, asc, eq } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { createDb } from "../src/db/client";
import { contacts, runContacts, runs } from "../src/db/schema";
import { filterConditions } from "../src/runs/targeting";
import { api, expectError, makeAgent, makeWorkspace, type Json } from "./helpers";
import { getRun, makeContacts, proposed, trigger, triggerAndWait, waitForMirror, waitForRun } from "./run-helpers";

// Runs start through the real Queue (a batch waits up to a second) and alarms.
vi.setConfig({ testTimeout: 30_000 });

const db = () => createDb(env.DB);
const DAY = 24 * 60 * 60 * 1000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY).toISOString();
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);
const runCount = async (key: string, agentId: string) => (await api(`/v1/agents/${agentId}/runs`, { key })).body.total as number;
const runContactIds = async (key: string, runId: string) => ((await getRun(key, runId)).contacts as Json[]).map((c) => c.contact_id);

/** A fresh workspace with a notes agent targeting by `filter` (and any other monitoring fields). */
async function targetingAgent(filter: Json, monitoring: Json = {}) {
  const { key } = await makeWorkspace();
  const agent = await makeAgent(key, { capabilities: ["notes"], monitoring: { filter, ...monitoring } });
  return { key, agent };
}

async function sendEvents(key: string, events: Json[]) {
  const res = await api("/v1/events", { method: "POST", key, body: { events } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

/** `count` events of `type` at `url` for the contact, each `age` days old. */
const eventsFor = (contactId: string, count: number, type: string, url: string, age: number) =>
  Array.from({ length: count }, () => ({ contact_id: contactId, type, url, occurred_at: daysAgo(age) }));

describe("POST /v1/agents/:id/trigger", () => {
  it("answers 200 with job_id and run_id, and the run row is in D1 before the answer", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const agent = await makeAgent(key);
    const [a, b] = await makeContacts(key, 2);

    const res = await trigger(key, agent.id, { contact_ids: [b!.id, a!.id] });
    const row = await db().query.runs.findFirst({ where: eq(runs.id, res.body.run_id ?? "") });

    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toStrictEqual({
      status: "success",
      job_id: expect.stringMatching(/^job_[0-9A-Z]{26}$/),
      run_id: expect.stringMatching(/^run_[0-9A-Z]{26}$/),
    });
    // The queue consumer may already have started it; what matters is that it was written first.
    expect(row).toMatchObject({ jobId: res.body.job_id, workspaceId, agentId: agent.id, trigger: "manual", contactCount: 2 });
    expect(["queued", "running", "awaiting_approval"]).toContain(row!.status);
    const targets = await db().select().from(runContacts).where(eq(runContacts.runId, res.body.run_id)).orderBy(asc(runContacts.position));
    expect(targets.map((t) => t.contactId)).toEqual([b!.id, a!.id]);

    const run = await waitForRun(key, res.body.run_id, proposed);
    expect(run).toMatchObject({ id: res.body.run_id, job_id: res.body.job_id, agent_id: agent.id, trigger: "manual", contact_count: 2 });
    expect((run.contacts as Json[]).map((c) => c.contact_id)).toEqual([b!.id, a!.id]);
  });

  it("rejects an empty contact_ids list", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const body = expectError(await trigger(key, agent.id, { contact_ids: [] }), 400, "validation_error");
    expect(paths(body)).toEqual(["contact_ids"]);
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("rejects 1001 contact_ids", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const ids = Array.from({ length: 1001 }, (_, i) => `ct_${String(i).padStart(26, "0")}`);
    const body = expectError(await trigger(key, agent.id, { contact_ids: ids }), 400, "validation_error");
    expect(paths(body)).toEqual(["contact_ids"]);
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("rejects a contact id given twice", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const [a, b] = await makeContacts(key, 2);
    const body = expectError(await trigger(key, agent.id, { contact_ids: [a!.id, b!.id, a!.id] }), 400, "validation_error");
    expect(paths(body)).toEqual(["contact_ids"]);
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("rejects unknown contact ids with a 400 naming each one", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const [a, b] = await makeContacts(key, 2);
    const res = await trigger(key, agent.id, { contact_ids: [a!.id, "ct_00000000000000000000000000", b!.id, "nonsense"] });
    const body = expectError(res, 400, "validation_error");
    expect(body.details).toEqual([
      { path: "contact_ids.1", message: expect.stringContaining("ct_00000000000000000000000000") },
      { path: "contact_ids.3", message: expect.stringContaining("nonsense") },
    ]);
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("treats another workspace's contact ids as unknown", async () => {
    const { key } = await makeWorkspace();
    const other = await makeWorkspace();
    const agent = await makeAgent(key);
    const [mine] = await makeContacts(key, 1);
    const [theirs1, theirs2] = await makeContacts(other.key, 2);
    const body = expectError(await trigger(key, agent.id, { contact_ids: [theirs1!.id, mine!.id, theirs2!.id] }), 400, "validation_error");
    expect(paths(body)).toEqual(["contact_ids.0", "contact_ids.2"]);
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("refuses an agent with neither playbook steps nor capabilities: 409 agent_not_runnable", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: [] });
    const [a] = await makeContacts(key, 1);
    expectError(await trigger(key, agent.id, { contact_ids: [a!.id] }), 409, "agent_not_runnable");
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("refuses an agent whose LLM provider is not configured: 409 provider_not_configured", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { llm_config: { provider: "openai", model: "gpt-4o" } });
    const [a] = await makeContacts(key, 1);
    expectError(await trigger(key, agent.id, { contact_ids: [a!.id] }), 409, "provider_not_configured");
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("replays the same run for a repeated Idempotency-Key and creates one run only", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const [a] = await makeContacts(key, 1);
    const headers = { "Idempotency-Key": `trigger-${crypto.randomUUID()}` };

    const first = await trigger(key, agent.id, { contact_ids: [a!.id] }, headers);
    const second = await trigger(key, agent.id, { contact_ids: [a!.id] }, headers);

    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body).toStrictEqual(first.body);
    expect(await runCount(key, agent.id)).toBe(1);
    const rows = await db().select({ id: runs.id }).from(runs).where(eq(runs.agentId, agent.id));
    expect(rows).toEqual([{ id: first.body.run_id }]);
  });

  it("runs one step of the agent's first capability when the playbook has no steps", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes", "email"] });
    const [a] = await makeContacts(key, 1);
    const { run } = await triggerAndWait(key, agent.id, { contact_ids: [a!.id] }, proposed);
    const [contact] = run.contacts as Json[];
    expect(contact!.actions).toHaveLength(1);
    expect(contact!.actions[0]).toMatchObject({ index: 0, type: "create_note", status: "pending_approval", params: { note: expect.any(String) } });
    expect(run.counts).toMatchObject({ pending_approval: 1 });
  });
});

describe("default targeting (no contact_ids)", () => {
  it("selects contacts by lifecycle_stage", async () => {
    const { key, agent } = await targetingAgent({ lifecycle_stage: ["lead", "mql"] });
    const made = await makeContacts(key, 4, (i) => [{ lifecycle_stage: "lead" }, { lifecycle_stage: "mql" }, { lifecycle_stage: "customer" }, {}][i]!);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([made[0]!.id, made[1]!.id]));
  });

  it("selects contacts by string, number and boolean properties, matching JSON types exactly", async () => {
    const { key, agent } = await targetingAgent({ properties: { plan: "pro", seats: 5, beta: true } });
    const made = await makeContacts(key, 7, (i) => ({
      properties: [
        { plan: "pro", seats: 5, beta: true }, // matches
        { plan: "pro", seats: 5, beta: true, extra: "x" }, // matches
        { plan: "basic", seats: 5, beta: true },
        { plan: "pro", seats: "5", beta: true },
        { plan: "pro", seats: 5, beta: false },
        { plan: "pro", seats: 5, beta: "true" },
        { plan: "pro", seats: 5 },
      ][i],
    }));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([made[0]!.id, made[1]!.id]));
  });

  it("does not take the number 1 for the boolean true, nor 0 for false", async () => {
    const { key, agent } = await targetingAgent({ properties: { beta: true, legacy: false } });
    const made = await makeContacts(key, 3, (i) => ({ properties: [{ beta: true, legacy: false }, { beta: 1, legacy: false }, { beta: true, legacy: 0 }][i] }));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await runContactIds(key, res.body.run_id)).toEqual([made[0]!.id]);
  });

  it("does not take the boolean true for the number 1", async () => {
    const { key, agent } = await targetingAgent({ properties: { tier: 1 } });
    const made = await makeContacts(key, 3, (i) => ({ properties: [{ tier: 1 }, { tier: true }, { tier: 1.0 }][i] }));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([made[0]!.id, made[2]!.id]));
  });

  it("refuses, when the agent is created, a filter property name that no contact property can have", async () => {
    const { key } = await makeWorkspace();
    const res = await api("/v1/agents", { method: "POST", key, body: { name: "Quotes", capabilities: ["notes"], monitoring: { filter: { properties: { 'a"b': "x" } } } } });
    const body = expectError(res, 400, "validation_error");
    expect(paths(body)).toEqual(['monitoring.filter.properties.a"b']);
  });

  it("selects contacts with at least min_count matching events within within_days", async () => {
    const { key, agent } = await targetingAgent({ event: { type: "page_view", url_contains: "/pricing", min_count: 2, within_days: 7 } });
    const [twice, once, old, mixed, otherPage, otherType] = await makeContacts(key, 6);
    await sendEvents(key, [
      ...eventsFor(twice!.id, 2, "page_view", "https://acme.example/pricing", 1),
      ...eventsFor(once!.id, 1, "page_view", "https://acme.example/pricing", 1),
      ...eventsFor(old!.id, 3, "page_view", "https://acme.example/pricing", 10),
      ...eventsFor(mixed!.id, 1, "page_view", "https://acme.example/pricing?plan=pro", 2),
      ...eventsFor(mixed!.id, 1, "page_view", "https://acme.example/pricing", 8),
      ...eventsFor(otherPage!.id, 2, "page_view", "https://acme.example/blog", 1),
      ...eventsFor(otherType!.id, 2, "click", "https://acme.example/pricing", 1),
    ]);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await runContactIds(key, res.body.run_id)).toEqual([twice!.id]);
  });

  it("matches url_contains literally: % and _ are not wildcards", async () => {
    const { key, agent } = await targetingAgent({ event: { type: "page_view", url_contains: "/a_b%" } });
    const [literal, wild] = await makeContacts(key, 2);
    await sendEvents(key, [
      ...eventsFor(literal!.id, 1, "page_view", "https://acme.example/a_b%25", 1),
      ...eventsFor(wild!.id, 1, "page_view", "https://acme.example/axbyz", 1),
    ]);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await runContactIds(key, res.body.run_id)).toEqual([literal!.id]);
  });

  it("leaves out contacts contacted within not_contacted_within_days", async () => {
    const { key, agent } = await targetingAgent({ not_contacted_within_days: 3 });
    const [never, recent, longAgo] = await makeContacts(key, 3);
    await db().update(contacts).set({ lastContactedAt: new Date(Date.now() - 1 * DAY) }).where(eq(contacts.id, recent!.id));
    await db().update(contacts).set({ lastContactedAt: new Date(Date.now() - 10 * DAY) }).where(eq(contacts.id, longAgo!.id));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([never!.id, longAgo!.id]));
  });

  it("never selects unsubscribed or bounced contacts, even when they match the filter", async () => {
    const { key, agent } = await targetingAgent({ lifecycle_stage: ["lead"] });
    const [plain, unsubscribed, bounced] = await makeContacts(key, 3, (i) => ({ lifecycle_stage: "lead", unsubscribed: i === 1 }));
    await sendEvents(key, [{ contact_id: bounced!.id, type: "email.bounced", occurred_at: daysAgo(200) }]);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await runContactIds(key, res.body.run_id)).toEqual([plain!.id]);
    const stored = await db().query.contacts.findFirst({ where: eq(contacts.id, unsubscribed!.id) });
    expect(stored!.unsubscribed).toBe(true);
  });

  it("without a filter selects every contact of the workspace that is not suppressed, and no other workspace's", async () => {
    const { key, agent } = await targetingAgent({});
    const other = await makeWorkspace();
    await makeContacts(other.key, 2);
    const made = await makeContacts(key, 3, (i) => ({ unsubscribed: i === 2 }));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([made[0]!.id, made[1]!.id]));
  });

  it("caps the run at max_contacts_per_run, newest contacts first", async () => {
    const { key, agent } = await targetingAgent({ lifecycle_stage: ["lead"] }, { max_contacts_per_run: 3 });
    const made = await makeContacts(key, 5, () => ({ lifecycle_stage: "lead" }));
    const newest = made.map((c) => c.id as string).sort().reverse().slice(0, 3);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await runContactIds(key, res.body.run_id)).toEqual(newest);
    const row = await db().query.runs.findFirst({ where: eq(runs.id, res.body.run_id) });
    expect(row!.contactCount).toBe(3);
  });

  it("answers 409 no_matching_contacts when nothing matches, and creates no run", async () => {
    const { key, agent } = await targetingAgent({ lifecycle_stage: ["customer"] });
    await makeContacts(key, 2, () => ({ lifecycle_stage: "lead" }));
    expectError(await trigger(key, agent.id), 409, "no_matching_contacts");
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("evaluates the filter with indexes: contacts by an index, events by events_contact_type_time", async () => {
    const { workspaceId } = await makeWorkspace();
    const filter = {
      lifecycle_stage: ["lead" as const],
      properties: { plan: "pro" },
      event: { type: "page_view", url_contains: "/pricing", min_count: 2, within_days: 7 },
      not_contacted_within_days: 3,
    };
    const query = db()
      .select({ id: contacts.id })
      .from(contacts)
      .where(and(...filterConditions(workspaceId, filter)))
      .toSQL();
    const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${query.sql}`)
      .bind(...query.params)
      .all<{ detail: string }>();
    const details = plan.results.map((row) => row.detail);

    const contactAccess = details.filter((d) => /\bcontacts\b/.test(d) && !/\bevents\b/.test(d));
    expect(contactAccess.length, details.join("\n")).toBeGreaterThan(0);
    for (const d of contactAccess) expect(d, details.join("\n")).toMatch(/^SEARCH contacts USING (COVERING )?INDEX contacts_workspace_/);
    const eventAccess = details.filter((d) => /\bevents\b/.test(d));
    expect(eventAccess.length, details.join("\n")).toBe(2); // the bounce check and the event filter
    for (const d of eventAccess) expect(d, details.join("\n")).toMatch(/^SEARCH events USING (COVERING )?INDEX events_contact_type_time/);
  });
});

describe("GET /v1/agents/runs/:runId", () => {
  it("reports the run object's status and counts, even while its D1 mirror trails behind", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes"] });
    const [a] = await makeContacts(key, 1);
    // D1 refuses to record this agent's runs as awaiting approval: the mirror stays at running.
    const guard = `hold_mirror_${agent.id.toLowerCase()}`;
    await env.DB.exec(`CREATE TRIGGER ${guard} BEFORE UPDATE ON runs WHEN NEW.agent_id = '${agent.id}' AND NEW.status = 'awaiting_approval' BEGIN SELECT RAISE(ABORT, 'held'); END`);
    try {
      const res = await trigger(key, agent.id, { contact_ids: [a!.id] });
      const run = await waitForRun(key, res.body.run_id, (r) => r.contacts[0].status === "awaiting_approval");

      expect((await db().query.runs.findFirst({ where: eq(runs.id, res.body.run_id) }))!.status).toBe("running");
      expect(run.status).toBe("awaiting_approval");
      expect(run.counts).toEqual({ pending_approval: 1, approved: 0, rejected: 0, completed: 0, failed: 0 });
      expect(run.started_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    } finally {
      await env.DB.exec(`DROP TRIGGER ${guard}`);
    }
  });
});

describe("GET /v1/agents/:id/runs", () => {
  async function agentWithRuns(n: number) {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes"] });
    const [a] = await makeContacts(key, 1);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const { runId } = await triggerAndWait(key, agent.id, { contact_ids: [a!.id] }, proposed);
      await waitForMirror(runId, (row) => row.status === "awaiting_approval");
      ids.push(runId);
    }
    return { key, agent, ids };
  }

  it("lists the agent's runs newest first with totals", async () => {
    const { key, agent, ids } = await agentWithRuns(3);
    const other = await makeAgent(key, { capabilities: ["notes"] });
    const res = await api(`/v1/agents/${agent.id}/runs`, { key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "success", total: 3, limit: 20, offset: 0 });
    expect((res.body.runs as Json[]).map((r) => r.id)).toEqual([...ids].reverse());
    expect(res.body.runs[0]).toStrictEqual({
      id: ids[2],
      job_id: expect.stringMatching(/^job_/),
      agent_id: agent.id,
      status: "awaiting_approval",
      trigger: "manual",
      contact_count: 1,
      counts: { pending_approval: 1, approved: 0, rejected: 0, completed: 0, failed: 0 },
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      started_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      completed_at: null,
      error: null,
    });
    expect((await api(`/v1/agents/${other.id}/runs`, { key })).body).toMatchObject({ runs: [], total: 0 });
  });

  it("pages with limit and offset, keeping the total", async () => {
    const { key, agent, ids } = await agentWithRuns(3);
    const page = await api(`/v1/agents/${agent.id}/runs?limit=2&offset=1`, { key });
    expect(page.body).toMatchObject({ total: 3, limit: 2, offset: 1 });
    expect((page.body.runs as Json[]).map((r) => r.id)).toEqual([ids[1], ids[0]]);
    const past = await api(`/v1/agents/${agent.id}/runs?offset=3`, { key });
    expect(past.body).toMatchObject({ runs: [], total: 3, offset: 3 });
  });

  it("rejects limit and offset out of bounds", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    for (const query of ["limit=0", "limit=101", "offset=-1", "limit=abc"]) {
      expectError(await api(`/v1/agents/${agent.id}/runs?${query}`, { key }), 400, "validation_error");
    }
    expect((await api(`/v1/agents/${agent.id}/runs?limit=100`, { key })).status).toBe(200);
  });

  it("filters by status and rejects an unknown status", async () => {
    const { key, agent, ids } = await agentWithRuns(3);
    const cancelled = await api(`/v1/agents/runs/${ids[1]}/cancel`, { method: "POST", key });
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);

    const onlyCancelled = await api(`/v1/agents/${agent.id}/runs?status=cancelled`, { key });
    expect(onlyCancelled.body).toMatchObject({ total: 1 });
    expect((onlyCancelled.body.runs as Json[]).map((r) => r.id)).toEqual([ids[1]]);
    const awaiting = await api(`/v1/agents/${agent.id}/runs?status=awaiting_approval`, { key });
    expect((awaiting.body.runs as Json[]).map((r) => r.id)).toEqual([ids[2], ids[0]]);
    expect((await api(`/v1/agents/${agent.id}/runs?status=completed`, { key })).body).toMatchObject({ runs: [], total: 0 });

    const bad = expectError(await api(`/v1/agents/${agent.id}/runs?status=finished`, { key }), 400, "validation_error");
    expect(paths(bad)).toEqual(["status"]);
  });

  it("answers 404 for an unknown agent", async () => {
    const { key } = await makeWorkspace();
    expectError(await api("/v1/agents/agt_00000000000000000000000000/runs", { key }), 404, "not_found");
  });
});
