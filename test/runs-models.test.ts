import { env } from "cloudflare:workers";
import { configFromRow } from "../src/agents/agent-record";
import { createDb } from "../src/db/client";
import { findAgent } from "../src/routes/agents";
import { createRun } from "../src/runs/create-run";
import { http, HttpResponse } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MAX_ATTEMPTS } from "../src/runs/run-engine";
import { api, makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, advance, approve, contactOf, drive, getRun, makeContact, makeStepsAgent, trigger } from "./engine-helpers";

// The deployment under test has OPENAI_API_KEY and OPENAI_BASE_URL=https://openai.test/v1
// (vitest.config.ts); its endpoint is this msw server, inside the Workers pool.
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

type Seen = { authorization: string | null; body: Json };

/** The model's endpoint: answers with `answer(n)` for the n-th call and records each request. */
function model(answer: (n: number, body: Json) => Response | Promise<Response>): Seen[] {
  const seen: Seen[] = [];
  server.use(
    http.post("https://openai.test/v1/chat/completions", async ({ request }) => {
      const body = (await request.json()) as Json;
      seen.push({ authorization: request.headers.get("authorization"), body });
      return answer(seen.length, body);
    }),
  );
  return seen;
}

const email = (subject: string, body: string) =>
  HttpResponse.json({
    id: "chatcmpl-1",
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content: JSON.stringify({ subject, body, reasoning: "Visited pricing twice." }) }, finish_reason: "stop" }],
    usage: { prompt_tokens: 700, completion_tokens: 60, total_tokens: 760 },
  });

/** The provider's answer while it is busy: `status` (429, 503) with its message and, if given, Retry-After in seconds. */
const busy = (status: number, message: string, retryAfter?: string) =>
  HttpResponse.json({ error: { message } }, { status, headers: retryAfter === undefined ? {} : { "Retry-After": retryAfter } });

const prompt = (seen: Seen) => (seen.body.messages as Json[]).map((m) => m.content).join("\n");

async function modelAgent(key: string, steps: Json[] = [EMAIL_STEP]) {
  return makeStepsAgent(key, steps, { llm_config: { provider: "openai", model: "gpt-4.1-mini", temperature: 0.3 } });
}

describe("a run whose agent writes with a model", () => {
  it("proposes what the model wrote, with its generation, and counts the run's usage", async () => {
    const seen = model(() => email("Pricing, Ada?", "Hi Ada, happy to walk you through the plans."));
    const { key } = await makeWorkspace();
    const agent = await modelAgent(key);
    const contact = await makeContact(key, { first_name: "Ada", company: "Acme", properties: { plan: "team" } });
    await api("/v1/events", { method: "POST", key, body: { events: [{ contact_id: contact.id, type: "page_view", url: "https://ourco.example/pricing" }] } });
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);

    const run = await getRun(key, runId);
    const action = contactOf(run, contact.id).actions[0];
    expect(action).toMatchObject({
      status: "pending_approval",
      params: { to: contact.email, subject: "Pricing, Ada?", body: "Hi Ada, happy to walk you through the plans." },
      reasoning: "Visited pricing twice.",
      generation: { provider: "openai", model: "gpt-4.1-mini", input_tokens: 700, output_tokens: 60, attempts: 1, latency_ms: expect.any(Number) },
    });
    expect(run.usage).toStrictEqual({ proposals: 1, input_tokens: 700, output_tokens: 60 });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.authorization).toBe("Bearer sk-test");
    expect(seen[0]!.body).toMatchObject({ model: "gpt-4.1-mini", temperature: 0.3 });
    for (const fact of ["# Test playbook", contact.email, "Acme", "team", "page_view", "/pricing"]) expect(prompt(seen[0]!)).toContain(fact);

    await drive(runId);
    const listed = await api(`/v1/agents/${agent.id}/runs`, { key });
    expect(listed.body.runs[0].usage).toStrictEqual({ proposals: 1, input_tokens: 700, output_tokens: 60 });
  });

  it("tells the model, for a follow-up, the first email as the human edited and sent it", async () => {
    const seen = model((n) => email(n === 1 ? "First" : "Following up", "Body"));
    const { key } = await makeWorkspace();
    const agent = await modelAgent(key, [EMAIL_STEP, { id: "follow_up", action: "email_message", wait: { days: 2 }, instructions: "Follow up on the first email." }]);
    const contact = await makeContact(key);
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);
    expect((await approve(key, runId, contact.id, 0, { params: { subject: "The subject a human wrote" } })).status).toBe(200);

    expect(await advance(runId)).toBe(true);

    expect(contactOf(await getRun(key, runId), contact.id).actions[1]).toMatchObject({ step_id: "follow_up", status: "pending_approval", params: { subject: "Following up" } });
    expect(seen).toHaveLength(2);
    expect(prompt(seen[1]!)).toContain("The subject a human wrote");
    expect(prompt(seen[1]!)).toContain("Follow up on the first email.");
  });

  it("drops the proposal when the contact replies while the model is writing it", async () => {
    const { key } = await makeWorkspace();
    const agent = await modelAgent(key);
    const contact = await makeContact(key);
    // The reply lands while the model's answer is on its way.
    model(async () => {
      const res = await api("/v1/events", { method: "POST", key, body: { events: [{ contact_id: contact.id, type: "email.replied" }] } });
      expect(res.status).toBe(201);
      return email("Too late", "Body");
    });
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply", actions: [] });
    expect(run).toMatchObject({ status: "completed", counts: expect.objectContaining({ pending_approval: 0 }) });
  });

  it("fails the action with the reason when the model's answer never passes its schema, and still counts its tokens", async () => {
    const seen = model(() => email("", ""));
    const { key } = await makeWorkspace();
    const agent = await modelAgent(key);
    const contact = await makeContact(key);
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);

    const run = await getRun(key, runId);
    const action = contactOf(run, contact.id).actions[0];
    expect(action).toMatchObject({ status: "failed", error: expect.stringContaining("subject"), generation: { attempts: 2, input_tokens: 1400 } });
    expect(seen).toHaveLength(2);
    expect(run.usage).toStrictEqual({ proposals: 1, input_tokens: 1400, output_tokens: 120 });
  });

  it("slows down, not fails, while the provider is busy, then fails only that contact's action with the provider's message", async () => {
    const seen = model(() => busy(503, "The server is overloaded", "120"));
    const { key } = await makeWorkspace();
    const agent = await modelAgent(key);
    const contact = await makeContact(key);
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);

    // Handed back to the run, due again after the wait the provider asked for.
    const waiting = contactOf(await getRun(key, runId), contact.id);
    expect(waiting).toMatchObject({ status: "pending", actions: [] });
    expect(Date.parse(waiting.next_step_at) - Date.now()).toBeGreaterThan(60_000);

    for (let attempt = 2; attempt <= MAX_ATTEMPTS; attempt++) await advance(runId);
    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "failed", stop_reason: "error", actions: [{ status: "failed", error: expect.stringContaining("overloaded") }] });
    expect(run.status).toBe("failed");
    expect(seen.length).toBe(MAX_ATTEMPTS);
  });

  it("asks a busy provider for no more contacts in that pass, and holds the rest back until its Retry-After", async () => {
    const seen = model(() => busy(429, "Rate limit reached", "60"));
    const { key } = await makeWorkspace();
    const agent = await modelAgent(key);
    const contacts = [];
    for (let i = 0; i < 12; i++) contacts.push(await makeContact(key));
    const runId = await trigger(key, agent.id, contacts.map((c) => c.id));
    await drive(runId);

    // At most one call per worker: the others were not started once the provider said it was busy.
    expect(seen.length).toBeLessThanOrEqual(6);
    const run = await getRun(key, runId);
    expect(run.contacts.every((c: Json) => c.status === "pending" && Date.parse(c.next_step_at) - Date.now() > 30_000)).toBe(true);
  });

  it("makes no second call for a contact that replied while its first answer was on its way", async () => {
    const { key } = await makeWorkspace();
    const agent = await modelAgent(key);
    const contact = await makeContact(key);
    // The first answer fails its schema (a corrected second call would follow), and the contact replies meanwhile.
    const seen = model(async () => {
      await api("/v1/events", { method: "POST", key, body: { events: [{ contact_id: contact.id, type: "email.replied" }] } });
      return email("", "");
    });
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);

    expect(seen.length).toBe(1);
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply", actions: [] });
  });

  it("fails each contact's step, not stalls the run, when its provider stopped being configured after the trigger", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP], { llm_config: { provider: "anthropic" } });
    const contact = await makeContact(key);
    // Triggered while Anthropic was configured; this deployment has no key for it now.
    const db = createDb(env.DB);
    const config = configFromRow((await findAgent(db, workspaceId, agent.id))!);
    const { runId } = await createRun(db, env, { workspaceId, agentId: agent.id, config, steps: config.playbook!.steps as never, contactIds: [contact.id], trigger: "manual" });
    await drive(runId);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "failed", actions: [{ status: "failed", error: expect.stringContaining("no longer configured") }] });
    expect(run.status).toBe("failed");
  });
});
