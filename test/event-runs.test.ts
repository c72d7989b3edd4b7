import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq, inArray } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { TEMPLATES } from "../src/agents/templates";
import { createDb } from "../src/db/client";
import { eventMatchRequests, eventRunCandidates } from "../src/db/schema";
import type { Env, MatchMessage, RunMessage } from "../src/env";
import { matchRequest } from "../src/events/event-runs";
import { startEventRuns } from "../src/events/start-event-runs";
import worker from "../src/index";
import { eligibleContacts, eligibilityScope } from "../src/runs/eligibility";
import { approveAndDrive, makeContact, waitForAction } from "./engine-helpers";
import { api, makeAgent, makeWorkspace, type Json } from "./helpers";
import { getRun, makeContacts, sendEvents } from "./run-helpers";

// Match messages are captured instead of sent, and handed to the consumer by hand; every
// other message (run starts) still goes to the real Queue. Cron ticks pass their time.
vi.setConfig({ testTimeout: 30_000 });
afterEach(() => vi.restoreAllMocks());

const db = () => createDb(env.DB);
const handler = worker as ExportedHandler<Env, RunMessage>;
const MINUTE = 60_000;
const PRICING = "https://acme.example/pricing";
/** What the Queue answers a send; nothing here reads it. */
const SENT = { metadata: { metrics: { backlogCount: 0, backlogBytes: 0, oldestMessageTimestamp: new Date() } } };

// The real send, taken before any spy: a spy's own send would call itself.
const send = env.RUN_QUEUE.send.bind(env.RUN_QUEUE);

/** Match messages `send` was given, kept from the Queue; `fail` makes each send throw after it is recorded. */
function captureMatches({ fail = false } = {}): MatchMessage[] {
  const matches: MatchMessage[] = [];
  vi.spyOn(env.RUN_QUEUE, "send").mockImplementation(async (body, options) => {
    if (!("kind" in body && body.kind === "match")) return send(body, options);
    matches.push(body);
    if (fail) throw new Error("Queue send failed");
    return SENT;
  });
  return matches;
}

/** Hands messages to the Worker's queue handler as one batch sent at `timestamp`. */
async function consume(messages: RunMessage[], timestamp = new Date()) {
  const batch = createMessageBatch<RunMessage>("cairn-runs", messages.map((body, i) => ({ id: `m${i}`, timestamp, attempts: 1, body })));
  const ctx = createExecutionContext();
  await handler.queue!(batch, env, ctx);
  await waitOnExecutionContext(ctx);
  return getQueueResult(batch, ctx);
}

/** A minute from now and off the hour, when the template's schedule_cron ("0 * * * *") would start a schedule run too. */
function nextMinute(after = Date.now()): number {
  const at = after + MINUTE;
  return new Date(at).getUTCMinutes() === 0 ? at + MINUTE : at;
}

/** The Worker's scheduled() handler, as the cron delivers it. */
async function tick(scheduledTime = nextMinute()) {
  const ctx = createExecutionContext();
  await handler.scheduled!(createScheduledController({ scheduledTime, cron: "* * * * *" }), env, ctx);
  await waitOnExecutionContext(ctx);
}

const views = (contactId: string, n = 2, url = PRICING) => Array.from({ length: n }, () => ({ contact_id: contactId, type: "page_view", url }));
const pricingAgent = (key: string, overrides: Json = {}) => makeAgent(key, { playbook_template: "pricing_visitor_followup", capabilities: undefined, enabled: true, ...overrides });
/** A notes agent (nothing to send, so no sender rules) on the pricing page, `min_count` views. */
const notesAgent = (key: string, monitoring: Json = {}) =>
  makeAgent(key, { capabilities: ["notes"], enabled: true, monitoring: { filter: { event: { type: "page_view", url_contains: "/pricing", min_count: 1 } }, ...monitoring } });

async function runsOf(key: string, agentId: string): Promise<Json[]> {
  return (await api(`/v1/agents/${agentId}/runs`, { key })).body.runs;
}
const contactsOf = async (key: string, runId: string) => ((await getRun(key, runId)).contacts as Json[]).map((c) => c.contact_id as string);

// Each round of viewAndStart matches in a minute of its own, as rounds minutes apart would:
// a round in a minute whose run already started would wait for the next minute's run.
let rounds = Date.now();

/** Ingests `events`, consumes the match message it sent in a minute of its own, and runs the next minute's cron: the runs it started. */
async function viewAndStart(key: string, events: Json[]): Promise<string[]> {
  const matches = captureMatches();
  await sendEvents(key, events);
  expect(matches).toHaveLength(1);
  rounds = Math.max(rounds, Date.now()) + 2 * MINUTE;
  await consume(matches, new Date(rounds));
  return startEventRuns(db(), env, rounds + MINUTE);
}

describe("event-driven runs", () => {
  it("start one event run the minute after a contact views pricing twice; one view, or another page, start nothing", async () => {
    const { key } = await makeWorkspace();
    const agent = await pricingAgent(key);
    const [twice, once, elsewhere] = await makeContacts(key, 3);
    const matches = captureMatches();

    await sendEvents(key, [...views(twice!.id), ...views(once!.id, 1), ...views(elsewhere!.id, 2, "https://acme.example/about")]);
    expect(matches).toStrictEqual([{ kind: "match", request_id: expect.any(Number) }]);
    expect((await consume(matches)).explicitAcks).toStrictEqual(["m0"]);
    // Matched, not started: the run waits for its minute to end.
    expect(await runsOf(key, agent.id)).toStrictEqual([]);

    await tick();
    const runs = await runsOf(key, agent.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ trigger: "event", contact_count: 1 });
    expect(await contactsOf(key, runs[0]!.id)).toStrictEqual([twice!.id]);
    const action = await waitForAction(key, runs[0]!.id, twice!.id, 0, "pending_approval");
    expect(action.params.subject).toContain("pricing");
  });

  it("start nothing for a contact in the agent's active run, nor within its cooldown once emailed", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const agent = await pricingAgent(key);
    const [ann, bob, cy] = await makeContacts(key, 3);
    const [first] = await viewAndStart(key, views(ann!.id));
    await waitForAction(key, first!, ann!.id, 0, "pending_approval");

    // Ann is in the first run, still awaiting approval; Bob, viewing at the same time, starts one.
    const [second] = await viewAndStart(key, [...views(ann!.id), ...views(bob!.id)]);
    expect(await contactsOf(key, second!)).toStrictEqual([bob!.id]);

    // Her email is sent and the run is over, but the agent reached her within cooldown_days.
    expect(await approveAndDrive(key, first!, ann!.id)).toMatchObject({ status: "completed" });
    const [third] = await viewAndStart(key, [...views(ann!.id), ...views(cy!.id)]);
    expect(await contactsOf(key, third!)).toStrictEqual([cy!.id]);
    const scope = eligibilityScope({ id: agent.id, workspaceId }, agent.monitoring, "default", Date.now());
    expect((await eligibleContacts(db(), scope, [ann!.id])).skipped).toStrictEqual([{ contact_id: ann!.id, reason: "cooldown" }]);
    expect(await runsOf(key, agent.id)).toHaveLength(3);

    // With the cooldown off, her next views start a run for her: the cooldown is what held her back.
    const monitoring = { ...TEMPLATES.pricing_visitor_followup.monitoring, cooldown_days: 0 };
    expect((await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { monitoring } })).status).toBe(200);
    const [fourth] = await viewAndStart(key, views(ann!.id));
    expect(await contactsOf(key, fourth!)).toStrictEqual([ann!.id]);
  });

  it("turn a burst of events into one run per agent and minute, however often messages and ticks are delivered", async () => {
    const { key } = await makeWorkspace();
    const pricing = await pricingAgent(key);
    const notes = await notesAgent(key);
    const many = await makeContacts(key, 10);
    const keen = await makeContact(key);
    const matches = captureMatches();

    await sendEvents(key, many.flatMap((c) => views(c.id, 10)));
    await sendEvents(key, views(keen.id, 100));
    expect(matches).toHaveLength(2);
    await consume(matches);
    // Redelivered: each request was consumed, so nothing more is matched.
    expect((await consume(matches)).explicitAcks).toStrictEqual(["m0", "m1"]);
    expect(await db().select().from(eventRunCandidates).where(eq(eventRunCandidates.agentId, notes.id))).toHaveLength(11);

    const at = nextMinute();
    await Promise.all([tick(at), tick(at + 5_000)]);
    await tick(at + 10_000);

    const everyone = [...many.map((c) => c.id as string), keen.id].sort();
    for (const agent of [pricing, notes]) {
      const runs = await runsOf(key, agent.id);
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ trigger: "event", contact_count: 11 });
      expect((await contactsOf(key, runs[0]!.id)).sort()).toStrictEqual(everyone);
    }
    expect(await db().select().from(eventRunCandidates).where(eq(eventRunCandidates.agentId, pricing.id))).toStrictEqual([]);
  });

  it("leave out disabled agents, agents without an event clause or watching another type, and unsubscribed contacts", async () => {
    const { key } = await makeWorkspace();
    const watching = await pricingAgent(key);
    const disabled = await pricingAgent(key, { enabled: false });
    const noEventClause = await makeAgent(key, { capabilities: ["notes"], enabled: true, monitoring: { filter: { lifecycle_stage: ["lead"] } } });
    const signups = await makeAgent(key, { capabilities: ["notes"], enabled: false, monitoring: { filter: { event: { type: "signup" } } } });
    const lead = await makeContact(key, { lifecycle_stage: "lead" });
    const optedOut = await makeContact(key, { lifecycle_stage: "lead", unsubscribed: true });

    // Signed up before its agent was enabled: no enabled agent watches signups, so no message.
    const quiet = captureMatches();
    await sendEvents(key, [{ contact_id: lead.id, type: "signup" }]);
    expect(quiet).toStrictEqual([]);
    vi.restoreAllMocks();
    expect((await api(`/v1/agents/${signups.id}`, { method: "PATCH", key, body: { enabled: true } })).status).toBe(200);

    const matches = captureMatches();
    await sendEvents(key, [...views(lead.id), ...views(optedOut.id)]);
    await consume(matches);
    // Matched by the watching agent alone (the cron checks the agent again, so this is where it shows).
    const candidates = await db().select().from(eventRunCandidates).where(inArray(eventRunCandidates.contactId, [lead.id, optedOut.id]));
    expect(candidates.map((c) => [c.agentId, c.contactId])).toStrictEqual([[watching.id, lead.id]]);

    await startEventRuns(db(), env, nextMinute());
    const [run] = await runsOf(key, watching.id);
    expect(await contactsOf(key, run!.id)).toStrictEqual([lead.id]);
    for (const agent of [disabled, noEventClause, signups]) expect(await runsOf(key, agent.id)).toStrictEqual([]);
  });

  it("drop the candidates of an agent disabled, or no longer watching events, before its minute's run", async () => {
    const { key } = await makeWorkspace();
    const disabled = await notesAgent(key);
    const unwatched = await notesAgent(key);
    const [contact] = await makeContacts(key, 1);
    const matches = captureMatches();
    await sendEvents(key, views(contact!.id, 1));
    await consume(matches);
    expect(await db().select().from(eventRunCandidates).where(eq(eventRunCandidates.contactId, contact!.id))).toHaveLength(2);

    expect((await api(`/v1/agents/${disabled.id}`, { method: "PATCH", key, body: { enabled: false } })).status).toBe(200);
    expect((await api(`/v1/agents/${unwatched.id}`, { method: "PATCH", key, body: { monitoring: { filter: {} } } })).status).toBe(200);
    await startEventRuns(db(), env, nextMinute());

    for (const agent of [disabled, unwatched]) expect(await runsOf(key, agent.id)).toStrictEqual([]);
    expect(await db().select().from(eventRunCandidates).where(eq(eventRunCandidates.contactId, contact!.id))).toStrictEqual([]);
  });

  it("weigh eligibility again when the minute's run starts: a contact who unsubscribed after matching is left out", async () => {
    const { key } = await makeWorkspace();
    const agent = await notesAgent(key);
    const [stays, leaves] = await makeContacts(key, 2);
    const matches = captureMatches();
    await sendEvents(key, [...views(stays!.id, 1), ...views(leaves!.id, 1)]);
    await consume(matches);
    expect(await db().select().from(eventRunCandidates).where(eq(eventRunCandidates.agentId, agent.id))).toHaveLength(2);

    expect((await api(`/v1/contacts/${leaves!.id}`, { method: "PATCH", key, body: { unsubscribed: true } })).status).toBe(200);
    await startEventRuns(db(), env, nextMinute());

    const [run] = await runsOf(key, agent.id);
    expect(await contactsOf(key, run!.id)).toStrictEqual([stays!.id]);
    expect(await db().select().from(eventRunCandidates).where(eq(eventRunCandidates.agentId, agent.id))).toStrictEqual([]);
  });

  it("start a match that arrives for a minute whose run already started in the next minute's run", async () => {
    const { key } = await makeWorkspace();
    const agent = await notesAgent(key);
    const [early, late] = await makeContacts(key, 2);
    const matches = captureMatches();
    const sent = new Date();
    await sendEvents(key, views(early!.id, 1));
    await consume(matches, sent);
    const at = nextMinute(sent.getTime());
    await startEventRuns(db(), env, at);

    // A message delayed in the Queue: matched in the minute the run above already claimed.
    await sendEvents(key, views(late!.id, 1));
    await consume(matches.slice(1), sent);
    await startEventRuns(db(), env, at);
    expect(await runsOf(key, agent.id)).toHaveLength(1);
    await startEventRuns(db(), env, at + MINUTE);

    const runs = await runsOf(key, agent.id);
    expect(runs).toHaveLength(2);
    expect(runs.map((r) => r.contact_count)).toStrictEqual([1, 1]);
    const members = await Promise.all(runs.map((r) => contactsOf(key, r.id)));
    expect(members.flat().sort()).toStrictEqual([early!.id, late!.id].sort());
  });

  it("make a request only in workspaces with an enabled event-driven agent, one per burst, none elsewhere", async () => {
    const watched = await makeWorkspace();
    const watcher = await notesAgent(watched.key);
    const [seen] = await makeContacts(watched.key, 1);
    const other = await makeWorkspace();
    await pricingAgent(other.key, { enabled: false });
    await makeAgent(other.key, { capabilities: ["notes"], enabled: true, monitoring: { schedule_cron: "0 9 * * *" } });
    const [unseen] = await makeContacts(other.key, 1);
    const matches = captureMatches();

    await sendEvents(other.key, views(unseen!.id, 100));
    expect(matches).toStrictEqual([]);
    expect(await db().select().from(eventMatchRequests).where(eq(eventMatchRequests.workspaceId, other.workspaceId))).toStrictEqual([]);

    await sendEvents(watched.key, views(seen!.id, 100));
    // A burst coalesces: the same contacts and types wait in the first request, unclaimed.
    await sendEvents(watched.key, views(seen!.id, 1));
    expect(matches).toHaveLength(1);
    const [request] = await db().select().from(eventMatchRequests).where(eq(eventMatchRequests.id, matches[0]!.request_id));
    expect(request).toMatchObject({ workspaceId: watched.workspaceId, contactIds: [seen!.id], types: ["page_view"], claimedAt: null });

    await consume(matches);
    await startEventRuns(db(), env, nextMinute());
    expect(await runsOf(watched.key, watcher.id)).toHaveLength(1);
    // Once that request was taken, the next events make their own.
    await sendEvents(watched.key, views(seen!.id, 1));
    expect(matches).toHaveLength(2);
    expect(matches[1]!.request_id).not.toBe(matches[0]!.request_id);
  });

  it("cost POST /v1/events no D1 round trip or statement more with an event-driven agent, and find agents through agents_workspace_enabled", async () => {
    const withAgent = await makeWorkspace();
    await notesAgent(withAgent.key);
    const without = await makeWorkspace();
    const roundTrips = async (key: string) => {
      const [contact] = await makeContacts(key, 1);
      await sendEvents(key, views(contact!.id, 1)); // warms the key's auth cache
      const batch = vi.spyOn(env.DB, "batch");
      const prepare = vi.spyOn(env.DB, "prepare");
      await sendEvents(key, views(contact!.id, 1));
      const counts = { batches: batch.mock.calls.length, statements: prepare.mock.calls.length };
      vi.restoreAllMocks();
      return counts;
    };
    captureMatches();
    const plain = await roundTrips(without.key);
    captureMatches();
    const matched = await roundTrips(withAgent.key);
    expect(matched).toStrictEqual({ batches: plain.batches, statements: plain.statements });

    const rows = [{ id: "evt_x", workspaceId: withAgent.workspaceId, contactId: "ct_x", type: "page_view", url: null, properties: {}, occurredAt: new Date(), createdAt: new Date() }];
    const { sql, params } = matchRequest(db(), withAgent.workspaceId, rows).toSQL();
    const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...params).all<{ detail: string }>();
    const details = results.map((r) => r.detail);
    expect(details, details.join("\n")).toContainEqual(expect.stringMatching(/^SEARCH agents (EXISTS )?USING INDEX agents_workspace_enabled \(workspace_id=\? AND enabled=\?\)/));
    expect(details.some((d) => /^SCAN agents/.test(d)), details.join("\n")).toBe(false);
  });

  it("answer POST /v1/events even when the match message is lost, and start the run from the cron's sweep", async () => {
    const { key } = await makeWorkspace();
    const agent = await notesAgent(key);
    const [contact] = await makeContacts(key, 1);
    const lost = captureMatches({ fail: true });
    await sendEvents(key, views(contact!.id, 1));
    expect(lost).toHaveLength(1);
    const requestId = lost[0]!.request_id;
    vi.restoreAllMocks();

    const resent: MatchMessage[] = [];
    vi.spyOn(env.RUN_QUEUE, "sendBatch").mockImplementation(async (messages) => {
      for (const m of messages) resent.push(m.body as MatchMessage);
      return SENT;
    });
    // Under a minute old, the message may still be on its way.
    await startEventRuns(db(), env, Date.now() + 30_000);
    expect(resent.map((m) => m.request_id)).not.toContain(requestId);
    await startEventRuns(db(), env, Date.now() + 61_000);
    expect(resent).toContainEqual({ kind: "match", request_id: requestId });
    vi.restoreAllMocks();

    await consume(resent.filter((m) => m.request_id === requestId));
    await startEventRuns(db(), env, nextMinute());
    const runs = await runsOf(key, agent.id);
    expect(runs).toHaveLength(1);
    expect(await contactsOf(key, runs[0]!.id)).toStrictEqual([contact!.id]);
  });

  it("start the contacts past max_contacts_per_run in the next minute's run, first matched first", async () => {
    const { key } = await makeWorkspace();
    const agent = await notesAgent(key, { max_contacts_per_run: 2 });
    const made = await makeContacts(key, 3);
    const matches = captureMatches();
    await sendEvents(key, made.flatMap((c) => views(c.id, 1)));
    await consume(matches);

    const at = nextMinute();
    await startEventRuns(db(), env, at);
    const [first] = await runsOf(key, agent.id);
    await startEventRuns(db(), env, at + MINUTE);
    await startEventRuns(db(), env, at + 2 * MINUTE);
    const runs = await runsOf(key, agent.id);
    expect(runs).toHaveLength(2);
    const second = runs.find((r) => r.id !== first!.id)!;

    const firstIds = await contactsOf(key, first!.id);
    const secondIds = await contactsOf(key, second.id);
    expect(firstIds).toHaveLength(2);
    expect(secondIds).toHaveLength(1);
    expect([...firstIds, ...secondIds].sort()).toStrictEqual(made.map((c) => c.id as string).sort());
  });
});
