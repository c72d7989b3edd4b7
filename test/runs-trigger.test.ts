import { env } from "cloudflare:workers";
import { asc, eq } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { createDb } from "../src/db/client";
import { runContacts, runs } from "../src/db/schema";
import { api, expectError, makeAgent, makeWorkspace, type Json } from "./helpers";
import { cancel } from "./engine-helpers";
import { makeContacts, proposed, runCount, trigger, triggerAndWait, waitForMirror, waitForRun } from "./run-helpers";

// Runs start through the real Queue (a batch waits up to a second) and alarms.
vi.setConfig({ testTimeout: 30_000 });

const db = () => createDb(env.DB);
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);

describe("POST /v1/agents/:id/trigger", () => {
  it("answers 200 with job_id, run_id, contact_count and skipped, and the run row is in D1 before the answer", async () => {
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
      contact_count: 2,
      skipped: [],
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
    const agent = await makeAgent(key, { llm_config: { provider: "anthropic", model: "claude-haiku-4-5" } });
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
describe("GET /v1/agents/runs/:runId", () => {
  it("reports the run object's status and counts, even while its D1 mirror trails behind", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes"] });
    const [a] = await makeContacts(key, 1);
    // D1 refuses to record this agent's runs as awaiting approval: the mirror stays where the trigger left it.
    const guard = `hold_mirror_${agent.id.toLowerCase()}`;
    await env.DB.exec(`CREATE TRIGGER ${guard} BEFORE UPDATE ON runs WHEN NEW.agent_id = '${agent.id}' AND NEW.status = 'awaiting_approval' BEGIN SELECT RAISE(ABORT, 'held'); END`);
    try {
      const res = await trigger(key, agent.id, { contact_ids: [a!.id] });
      const run = await waitForRun(key, res.body.run_id, (r) => r.contacts[0].status === "awaiting_approval");

      expect((await db().query.runs.findFirst({ where: eq(runs.id, res.body.run_id) }))!.status).toBe("queued");
      expect(run.status).toBe("awaiting_approval");
      expect(run.counts).toEqual({ pending_approval: 1, approved: 0, rejected: 0, completed: 0, failed: 0, invalidated: 0, cancelled: 0 });
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
    // One contact per run: a contact in an active run of the agent is not eligible for another.
    const made = await makeContacts(key, n);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const { runId } = await triggerAndWait(key, agent.id, { contact_ids: [made[i]!.id] }, proposed);
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
      counts: { pending_approval: 1, approved: 0, rejected: 0, completed: 0, failed: 0, invalidated: 0, cancelled: 0 },
      usage: { proposals: 0, input_tokens: 0, output_tokens: 0 },
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
    const cancelled = await cancel(key, ids[1]!);
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
