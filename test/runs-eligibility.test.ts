import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { createDb } from "../src/db/client";
import { deliveries } from "../src/db/schema";
import { newId } from "../src/lib/ids";
import { candidateReads, type EligibilityScope } from "../src/runs/eligibility";
import { targetsQuery } from "../src/runs/targeting";
import { DAY, cancel } from "./engine-helpers";
import { api, expectError, makeAgent, makeIdentity, makeWorkspace, type Json } from "./helpers";
import { getRun, makeContacts, runCount, sendEvents, trigger } from "./run-helpers";

// CONTRACT.md section 8: who a trigger may target, and why the others are skipped.

vi.setConfig({ testTimeout: 30_000 });

const db = () => createDb(env.DB);
const ago = (days: number) => Date.now() - days * DAY;
const newestFirst = (skipped: Json[]) => [...skipped].sort((a, b) => (a.contact_id < b.contact_id ? 1 : -1));

/** An email agent with a sender, targeting leads by default. */
const emailAgent = (key: string, monitoring: Json = {}) => makeAgent(key, { capabilities: ["email"], monitoring: { filter: { lifecycle_stage: ["lead"] }, ...monitoring } });

const event = (contactId: string, type: string, at: number) => ({ contact_id: contactId, type, occurred_at: new Date(at).toISOString() });

/** A run row of the agent holding the contacts, written straight to D1 (no queue message, no object). */
async function seedRun(workspaceId: string, agentId: string, contactIds: string[], status: "queued" | "completed", createdAt = Date.now()) {
  const runId = newId("run");
  await env.DB.batch([
    env.DB.prepare(
      `INSERT INTO runs (id, job_id, workspace_id, agent_id, status, "trigger", contact_count, counts, agent_snapshot, created_at, enqueued_at, enqueue_attempts)
       VALUES (?, ?, ?, ?, ?, 'manual', ?, '{}', '{}', ?, ?, 1)`,
    ).bind(runId, newId("job"), workspaceId, agentId, status, contactIds.length, createdAt, createdAt),
    ...contactIds.map((id, position) => env.DB.prepare("INSERT INTO run_contacts (run_id, position, contact_id) VALUES (?, ?, ?)").bind(runId, position, id)),
  ]);
  return runId;
}

/** A delivery row: the agent's executed action reached the contact on `channel` at `at`. */
async function seedDelivery(workspaceId: string, agentId: string, contactId: string, channel: string, at: number) {
  const runId = newId("run");
  await db()
    .insert(deliveries)
    .values({
      id: newId("dlv"),
      workspaceId,
      actionKey: `${runId}/${contactId}/0`,
      runId,
      agentId,
      contactId,
      actionIndex: 0,
      actionType: channel === "email" ? "email_message" : channel === "linkedin" ? "linkedin_message" : "create_note",
      identityId: null,
      channel,
      params: {},
      createdAt: new Date(at),
    });
}

/**
 * A workspace whose leads cover every reason and the near misses of each, for `agent`
 * (with `monitoring`); `other` is a second agent of the workspace.
 */
async function population(monitoring: Json = {}) {
  const { key, workspaceId } = await makeWorkspace();
  const agent = await emailAgent(key, monitoring);
  const other = await emailAgent(key);
  const names = [
    "plain", "unsubscribed", "bounced", "active", "replied", "reached", "linkedinReached",
    "oldReach", "notesOnly", "otherAgent", "oldReply", "replyBeforeRun",
  ] as const;
  const made = await makeContacts(key, names.length, (i) => ({ lifecycle_stage: "lead", unsubscribed: names[i] === "unsubscribed" }));
  const c = Object.fromEntries(names.map((name, i) => [name, made[i]!.id as string])) as Record<(typeof names)[number], string>;

  await seedRun(workspaceId, agent.id, [c.active], "queued");
  await seedRun(workspaceId, agent.id, [c.replied], "completed", ago(10));
  await seedRun(workspaceId, agent.id, [c.oldReply], "completed", ago(60));
  await seedRun(workspaceId, agent.id, [c.replyBeforeRun], "completed", ago(1));
  await seedRun(workspaceId, other.id, [c.otherAgent], "queued", ago(10));
  await sendEvents(key, [
    event(c.bounced, "email.bounced", ago(300)),
    event(c.replied, "email.replied", ago(5)),
    event(c.oldReply, "email.replied", ago(45)),
    event(c.replyBeforeRun, "email.replied", ago(5)),
    event(c.otherAgent, "email.replied", ago(5)),
  ]);
  await seedDelivery(workspaceId, agent.id, c.reached, "email", ago(2));
  await seedDelivery(workspaceId, agent.id, c.linkedinReached, "linkedin", ago(29));
  await seedDelivery(workspaceId, agent.id, c.oldReach, "email", ago(40));
  await seedDelivery(workspaceId, agent.id, c.notesOnly, "notes", ago(1));
  await seedDelivery(workspaceId, other.id, c.otherAgent, "email", ago(1));
  return { key, workspaceId, agent, c, all: names.map((n) => c[n]) };
}

describe("explicit contact_ids", () => {
  it("skips a bounced contact and one who replied to the agent's run, and emails the rest", async () => {
    const { key } = await makeWorkspace();
    const agent = await emailAgent(key);
    const [plain, bounced, replied] = await makeContacts(key, 3);
    // The contact replies to a first run of the agent, which is then cancelled.
    const first = await trigger(key, agent.id, { contact_ids: [replied!.id] });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect((await cancel(key, first.body.run_id)).status).toBe(200);
    await sendEvents(key, [event(bounced!.id, "email.bounced", ago(100)), event(replied!.id, "email.replied", Date.now())]);

    const res = await trigger(key, agent.id, { contact_ids: [bounced!.id, plain!.id, replied!.id] });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toStrictEqual({
      status: "success",
      job_id: expect.stringMatching(/^job_/),
      run_id: expect.stringMatching(/^run_/),
      contact_count: 1,
      skipped: [
        { contact_id: bounced!.id, reason: "bounced" },
        { contact_id: replied!.id, reason: "replied" },
      ],
    });
    const run = await getRun(key, res.body.run_id);
    expect((run.contacts as Json[]).map((x) => x.contact_id)).toEqual([plain!.id]);
  });

  it("applies unsubscribed, bounced, in_active_run and replied, but not the cooldown", async () => {
    const { key, agent, c, all } = await population();
    const res = await trigger(key, agent.id, { contact_ids: all });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.skipped).toEqual([
      { contact_id: c.unsubscribed, reason: "unsubscribed" },
      { contact_id: c.bounced, reason: "bounced" },
      { contact_id: c.active, reason: "in_active_run" },
      { contact_id: c.replied, reason: "replied" },
    ]);
    expect(res.body.contact_count).toBe(all.length - 4);
  });

  it("answers 200, then 409 no_eligible_contacts (in_active_run) when one agent is triggered three times on one contact", async () => {
    const { key } = await makeWorkspace();
    const agent = await emailAgent(key);
    const [contact] = await makeContacts(key, 1);

    const first = await trigger(key, agent.id, { contact_ids: [contact!.id] });
    const second = await trigger(key, agent.id, { contact_ids: [contact!.id] });
    const third = await trigger(key, agent.id, { contact_ids: [contact!.id] });

    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({ contact_count: 1, skipped: [] });
    for (const res of [second, third]) {
      const body = expectError(res, 409, "no_eligible_contacts");
      expect(body.details).toEqual([{ path: "contact_ids.0", message: expect.stringMatching(new RegExp(`${contact!.id}.*\\(in_active_run\\)`)) }]);
    }
    expect(await runCount(key, agent.id)).toBe(1);
    // Once the run is over the contact may be targeted again.
    expect((await cancel(key, first.body.run_id)).status).toBe(200);
    expect((await trigger(key, agent.id, { contact_ids: [contact!.id] })).status).toBe(200);
  });

  it("answers 409 no_eligible_contacts with one detail per contact, at its index, when none is eligible", async () => {
    const { key, agent, c } = await population();
    const before = await runCount(key, agent.id);
    const body = expectError(await trigger(key, agent.id, { contact_ids: [c.replied, c.unsubscribed, c.active, c.bounced] }), 409, "no_eligible_contacts");
    expect(body.details).toEqual([
      { path: "contact_ids.0", message: expect.stringMatching(/\(replied\)$/) },
      { path: "contact_ids.1", message: expect.stringMatching(/\(unsubscribed\)$/) },
      { path: "contact_ids.2", message: expect.stringMatching(/\(in_active_run\)$/) },
      { path: "contact_ids.3", message: expect.stringMatching(/\(bounced\)$/) },
    ]);
    expect(await runCount(key, agent.id)).toBe(before);
  });

  it("still answers 400 for unknown ids before any eligibility", async () => {
    const { key, agent, c } = await population();
    const body = expectError(await trigger(key, agent.id, { contact_ids: [c.unsubscribed, "ct_00000000000000000000000000"] }), 400, "validation_error");
    expect(body.details).toEqual([{ path: "contact_ids.1", message: expect.stringContaining("ct_00000000000000000000000000") }]);
  });

  it("checks 1000 contact_ids in statements of at most 100 bound parameters", async () => {
    const { key } = await makeWorkspace();
    const agent = await emailAgent(key);
    const made = await makeContacts(key, 1000, (i) => ({ unsubscribed: i !== 500 }));
    const res = await trigger(key, agent.id, { contact_ids: made.map((x) => x.id) });
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expect(res.body.contact_count).toBe(1);
    expect(res.body.skipped).toHaveLength(999);
    const scope: EligibilityScope = { workspaceId: "ws_x", agentId: "agt_x", cooldownDays: 30, targeting: "default" };
    const reads = candidateReads(db(), scope, made.map((x) => x.id as string));
    for (const read of reads) expect(read.toSQL().params.length).toBeLessThanOrEqual(100);
  });
});

describe("default targeting", () => {
  it("leaves out and reports every reason, and keeps each near miss", async () => {
    const { key, agent, c } = await population();
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.skipped).toEqual(
      newestFirst([
        { contact_id: c.unsubscribed, reason: "unsubscribed" },
        { contact_id: c.bounced, reason: "bounced" },
        { contact_id: c.active, reason: "in_active_run" },
        { contact_id: c.replied, reason: "replied" },
        { contact_id: c.reached, reason: "cooldown" },
        { contact_id: c.linkedinReached, reason: "cooldown" },
      ]),
    );
    const run = await getRun(key, res.body.run_id);
    const targeted = [c.plain, c.oldReach, c.notesOnly, c.otherAgent, c.oldReply, c.replyBeforeRun];
    expect(new Set((run.contacts as Json[]).map((x) => x.contact_id))).toEqual(new Set(targeted));
    expect(res.body.contact_count).toBe(targeted.length);
  });

  it("takes the first reason that applies: unsubscribed, bounced, in_active_run, replied, cooldown", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const agent = await emailAgent(key);
    const [a, b, d, e] = await makeContacts(key, 4, (i) => ({ lifecycle_stage: "lead", unsubscribed: i === 0 }));
    await seedRun(workspaceId, agent.id, [a!.id, b!.id, d!.id, e!.id], "completed", ago(10));
    await seedRun(workspaceId, agent.id, [a!.id, b!.id, d!.id], "queued");
    await sendEvents(key, [
      event(a!.id, "email.bounced", ago(1)),
      event(b!.id, "email.bounced", ago(1)),
      ...[a, b, d, e].map((x) => event(x!.id, "email.replied", ago(2))),
    ]);
    for (const x of [a, b, d, e]) await seedDelivery(workspaceId, agent.id, x!.id, "email", ago(3));

    const body = expectError(await trigger(key, agent.id), 409, "no_eligible_contacts");
    const found = (body.details as Json[]).map((x) => ({ path: x.path, contact_id: /ct_\w+/.exec(x.message)![0], reason: /\((\w+)\)$/.exec(x.message)![1] }));
    expect(found).toEqual(
      newestFirst([
        { path: "monitoring.filter", contact_id: a!.id, reason: "unsubscribed" },
        { path: "monitoring.filter", contact_id: b!.id, reason: "bounced" },
        { path: "monitoring.filter", contact_id: d!.id, reason: "in_active_run" },
        { path: "monitoring.filter", contact_id: e!.id, reason: "replied" },
      ]),
    );
  });

  it("turns the cooldown and the replied rule off with cooldown_days 0", async () => {
    const { key, agent, c, all } = await population({ cooldown_days: 0 });
    expect(agent.monitoring.cooldown_days).toBe(0);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.skipped.map((s: Json) => s.reason).sort()).toEqual(["bounced", "in_active_run", "unsubscribed"]);
    expect(res.body.contact_count).toBe(all.length - 3);
    expect(res.body.skipped.map((s: Json) => s.contact_id)).not.toContain(c.replied);
  });

  it("counts cooldown_days back from now", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const agent = await emailAgent(key, { cooldown_days: 7 });
    const [recent, older, repliedRecently, repliedLongAgo] = await makeContacts(key, 4, () => ({ lifecycle_stage: "lead" }));
    await seedDelivery(workspaceId, agent.id, recent!.id, "email", ago(6));
    await seedDelivery(workspaceId, agent.id, older!.id, "email", ago(8));
    await seedRun(workspaceId, agent.id, [repliedRecently!.id, repliedLongAgo!.id], "completed", ago(20));
    await sendEvents(key, [event(repliedRecently!.id, "email.replied", ago(6)), event(repliedLongAgo!.id, "email.replied", ago(8))]);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.skipped).toEqual(newestFirst([
      { contact_id: recent!.id, reason: "cooldown" },
      { contact_id: repliedRecently!.id, reason: "replied" },
    ]));
    expect(res.body.contact_count).toBe(2);
  });

  it("reports the matches passed over on the way to max_contacts_per_run, not older ones", async () => {
    const { key } = await makeWorkspace();
    const agent = await emailAgent(key, { max_contacts_per_run: 2 });
    const made: Json[] = [];
    // Oldest first: e1, skippedOld, e2, skippedMid, e3.
    for (const unsubscribed of [false, true, false, true, false]) made.push((await makeContacts(key, 1, () => ({ lifecycle_stage: "lead", unsubscribed })))[0]!);
    const [, skippedOld, e2, skippedMid, e3] = made;
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ contact_count: 2, skipped: [{ contact_id: skippedMid!.id, reason: "unsubscribed" }] });
    expect(res.body.skipped.map((s: Json) => s.contact_id)).not.toContain(skippedOld!.id);
    const run = await getRun(key, res.body.run_id);
    expect((run.contacts as Json[]).map((x) => x.contact_id)).toEqual([e3!.id, e2!.id]);
  });

  it("caps the skipped list at 1000, newest first", async () => {
    const { key } = await makeWorkspace();
    const agent = await emailAgent(key);
    const [eligible] = await makeContacts(key, 1, () => ({ lifecycle_stage: "lead" }));
    const skipped = [
      ...(await makeContacts(key, 600, () => ({ lifecycle_stage: "lead", unsubscribed: true }))),
      ...(await makeContacts(key, 600, () => ({ lifecycle_stage: "lead", unsubscribed: true }))),
    ].map((x) => x.id as string);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expect(res.body.contact_count).toBe(1);
    expect(res.body.skipped).toHaveLength(1000);
    expect(res.body.skipped.map((s: Json) => s.contact_id)).toEqual(skipped.sort().reverse().slice(0, 1000));
    const run = await getRun(key, res.body.run_id);
    expect((run.contacts as Json[]).map((x) => x.contact_id)).toEqual([eligible!.id]);
  });
});

describe("sender_required", () => {
  it.each([
    ["an email capability", { capabilities: ["email"], identity_id: null }],
    ["a LinkedIn capability (its first)", { capabilities: ["linkedin", "notes"], identity_id: null }],
    ["an email step after a note", { capabilities: ["email", "notes"], identity_id: null, playbook: { playbook_md: "#", steps: [{ action: "create_note" }, { action: "email_message" }] } }],
  ])("refuses to trigger an agent with %s and no identity: 409 sender_required", async (_name, overrides) => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, overrides);
    const [contact] = await makeContacts(key, 1);
    expectError(await trigger(key, agent.id, { contact_ids: [contact!.id] }), 409, "sender_required");
    expectError(await trigger(key, agent.id), 409, "sender_required");
    expect(await runCount(key, agent.id)).toBe(0);

    const identity = await makeIdentity(key);
    expect((await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { identity_id: identity.id } })).status).toBe(200);
    expect((await trigger(key, agent.id, { contact_ids: [contact!.id] })).status).toBe(200);
  });

  it("triggers an agent without outbound steps and without identity", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes", "email"], identity_id: null });
    const [contact] = await makeContacts(key, 1);
    expect((await trigger(key, agent.id, { contact_ids: [contact!.id] })).status).toBe(200);
  });
});

describe("query plans", () => {
  const details = async (query: { sql: string; params: unknown[] }) =>
    (await env.DB.prepare(`EXPLAIN QUERY PLAN ${query.sql}`).bind(...query.params).all<{ detail: string }>()).results.map((r) => r.detail);
  const scope: EligibilityScope = { workspaceId: "ws_x", agentId: "agt_x", cooldownDays: 30, targeting: "default" };

  function expectIndexed(plan: string[]) {
    const text = plan.join("\n");
    // Every table is searched through an index; none is scanned.
    for (const table of ["contacts", "events", "deliveries", "run_contacts", "runs"]) expect(text, text).not.toMatch(new RegExp(`SCAN ${table}\\b`));
    expect(text, text).toMatch(/SEARCH deliveries USING (COVERING )?INDEX deliveries_contact_agent_time/);
    expect(text, text).toMatch(/SEARCH events USING (COVERING )?INDEX events_contact_type_time/);
    expect(text, text).toMatch(/SEARCH run_contacts USING (COVERING )?INDEX run_contacts_contact/);
    expect(text, text).toMatch(/SEARCH runs USING (COVERING )?INDEX sqlite_autoindex_runs_1 \(id=\?\)/);
  }

  it("checks explicit contacts with indexed lookups", async () => {
    const [read] = candidateReads(db(), scope, ["ct_a", "ct_b"]);
    expectIndexed(await details(read!.toSQL()));
  });

  it("runs default targeting with indexed lookups, and reads skipped matches only back to the last pick", async () => {
    const plan = await details(targetsQuery(db(), scope, { lifecycle_stage: ["lead"] }, 50).getQuery());
    expectIndexed(plan);
    const unfiltered = await details(targetsQuery(db(), scope, {}, 50).getQuery());
    expectIndexed(unfiltered);
    expect(unfiltered.join("\n")).toMatch(/SEARCH contacts USING (COVERING )?INDEX contacts_workspace_id \(workspace_id=\? AND id>\?\)/);
  });
});
