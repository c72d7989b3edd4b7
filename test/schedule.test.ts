import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { TEMPLATES } from "../src/agents/templates";
import { createDb } from "../src/db/client";
import { deliveries } from "../src/db/schema";
import type { Env, RunMessage } from "../src/env";
import worker from "../src/index";
import { eligibilityScope } from "../src/runs/eligibility";
import { runSchedules } from "../src/runs/schedule";
import { selectTargets } from "../src/runs/targeting";
import { approve, cancel, makeIdentity, waitForAction } from "./engine-helpers";
import { api, makeAgent, makeWorkspace, type Json } from "./helpers";
import { waitForMirror } from "./run-helpers";

// Runs start through the real Queue and alarms; every cron tick passes its time explicitly.
vi.setConfig({ testTimeout: 30_000 });

const db = () => createDb(env.DB);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// Monday 2026-11-23 09:00 UTC, 10:00 in Berlin.
const MONDAY_9_UTC = Date.UTC(2026, 10, 23, 9, 0, 30);

async function workspaceWithLead() {
  const ws = await makeWorkspace();
  const res = await api("/v1/contacts", { method: "POST", key: ws.key, body: { email: "lead@example.com", lifecycle_stage: "lead" } });
  return { ...ws, contactId: res.body.contact.id as string };
}

/** A notes agent (no sender needed) on `cron`, targeting leads. */
const scheduled = (cron: string, timezone = "UTC", enabled = true) => ({
  enabled,
  capabilities: ["notes"],
  monitoring: { filter: { lifecycle_stage: ["lead"] }, schedule_cron: cron, timezone },
});

async function runsOf(key: string, agentId: string) {
  return (await api(`/v1/agents/${agentId}/runs`, { key })).body.runs as { id: string; trigger: string; contact_count: number; status: string }[];
}

describe("scheduled runs", () => {
  it("starts one schedule run for an enabled agent whose cron names this minute, even if the cron fires twice", async () => {
    const { key } = await workspaceWithLead();
    const agent = await makeAgent(key, scheduled("0 9 * * MON"));

    const first = await runSchedules(db(), env, MONDAY_9_UTC);
    const second = await runSchedules(db(), env, MONDAY_9_UTC + 10_000);

    expect(first).toHaveLength(1);
    expect(second).toEqual([]);
    const runs = await runsOf(key, agent.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ trigger: "schedule", contact_count: 1 });
  });

  it("reads the cron in the agent's time zone", async () => {
    const { key } = await workspaceWithLead();
    const berlin = await makeAgent(key, scheduled("0 10 * * 1", "Europe/Berlin"));
    const utc = await makeAgent(key, scheduled("0 10 * * 1", "UTC"));

    const started = await runSchedules(db(), env, MONDAY_9_UTC);

    expect(await runsOf(key, berlin.id)).toHaveLength(1);
    expect(await runsOf(key, utc.id)).toHaveLength(0);
    expect(started).toEqual([(await runsOf(key, berlin.id))[0]!.id]);
  });

  it("leaves disabled agents, other minutes and agents without matching contacts alone", async () => {
    const { key } = await workspaceWithLead();
    const disabled = await makeAgent(key, scheduled("* * * * *", "UTC", false));
    const otherMinute = await makeAgent(key, scheduled("5 9 * * *"));
    const noMatch = await makeAgent(key, { ...scheduled("* * * * *"), monitoring: { filter: { lifecycle_stage: ["customer"] }, schedule_cron: "* * * * *" } });

    await runSchedules(db(), env, MONDAY_9_UTC);

    for (const agent of [disabled, otherMinute, noMatch]) expect(await runsOf(key, agent.id)).toEqual([]);
  });

  it("does not start an agent that reaches contacts without a sender identity (sender_required), and logs it", async () => {
    const { key } = await workspaceWithLead();
    const agent = await makeAgent(key, { ...scheduled("* * * * *"), capabilities: ["email"], identity_id: null });
    const warn = vi.spyOn(console, "warn");
    try {
      await runSchedules(db(), env, MONDAY_9_UTC + 2 * HOUR);
      expect(await runsOf(key, agent.id)).toEqual([]);
      const logged = warn.mock.calls.map((args) => JSON.parse(String(args[0])) as Json);
      expect(logged).toContainEqual(expect.objectContaining({ agent_id: agent.id, code: "sender_required" }));
    } finally {
      warn.mockRestore();
    }

    const identity = await makeIdentity(key);
    await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { identity_id: identity.id } });
    await runSchedules(db(), env, MONDAY_9_UTC + 2 * HOUR + 60_000);
    expect(await runsOf(key, agent.id)).toHaveLength(1);
  });

  it("holds one run per agent and minute in D1: a minute delivered again after its run ended starts nothing", async () => {
    const { key } = await workspaceWithLead();
    const agent = await makeAgent(key, scheduled("* * * * *"));
    const minute = MONDAY_9_UTC + 3 * HOUR;

    const [first] = await runSchedules(db(), env, minute);
    expect((await cancel(key, first!)).status).toBe(200);
    // The contact is eligible again, but this minute's slot is taken.
    await runSchedules(db(), env, minute + 20_000);
    expect((await runsOf(key, agent.id)).map((r) => r.id)).toEqual([first]);
    // The next minute is a new slot.
    await runSchedules(db(), env, minute + 60_000);
    expect(await runsOf(key, agent.id)).toHaveLength(2);
  });

  it("starts one run when two scheduled() events for the same minute run concurrently", async () => {
    const { key } = await workspaceWithLead();
    const agent = await makeAgent(key, scheduled("0 13 * * *"));
    const handler = worker as ExportedHandler<Env, RunMessage>;
    const tick = async (scheduledTime: number) => {
      const ctx = createExecutionContext();
      await handler.scheduled!(createScheduledController({ scheduledTime, cron: "* * * * *" }), env, ctx);
      await waitOnExecutionContext(ctx);
    };

    await Promise.all([tick(MONDAY_9_UTC + 4 * HOUR), tick(MONDAY_9_UTC + 4 * HOUR + 15_000)]);

    const runs = await runsOf(key, agent.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ trigger: "schedule", contact_count: 1 });
  });
});

describe("a scheduled pricing_visitor_followup agent", () => {
  it("does not propose to the same contact on the next ticks: in_active_run while its run is open, cooldown after emailing", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const agent = await makeAgent(key, { playbook_template: "pricing_visitor_followup", capabilities: undefined, enabled: true });
    expect(agent.monitoring).toMatchObject({ schedule_cron: "0 * * * *", cooldown_days: 30 });
    // Tuesday 2026-11-24, on the hour; the contact viewed pricing twice in the days before.
    const T0 = Date.UTC(2026, 10, 24, 14, 0, 5);
    const contact = (await api("/v1/contacts", { method: "POST", key, body: { email: "visitor@example.com", first_name: "Vi" } })).body.contact;
    const views = [1, 2].map((d) => ({ contact_id: contact.id, type: "page_view", url: "https://acme.example/pricing", occurred_at: new Date(T0 - d * DAY).toISOString() }));
    expect((await api("/v1/events", { method: "POST", key, body: { events: views } })).status).toBe(201);
    const why = async (now: number) => {
      const { filter, max_contacts_per_run } = agent.monitoring;
      return selectTargets(db(), eligibilityScope({ id: agent.id, workspaceId }, agent.monitoring, "default", now), filter, max_contacts_per_run);
    };

    const [runId] = await runSchedules(db(), env, T0);
    expect(runId).toBeDefined();
    const action = await waitForAction(key, runId!, contact.id, 0, "pending_approval");
    expect(action.type).toBe("email_message");

    // 15:00: the first run still waits for approval.
    await runSchedules(db(), env, T0 + HOUR);
    expect(await runsOf(key, agent.id)).toHaveLength(1);
    expect(await why(T0 + HOUR)).toEqual({ contactIds: [], skipped: [{ contact_id: contact.id, reason: "in_active_run" }] });

    // The email is approved and sent; on the test's clock it went out at 15:10.
    expect((await approve(key, runId!, contact.id, 0)).status).toBe(200);
    await waitForMirror(runId!, (row) => row.status === "completed");
    const [sent] = await db().select().from(deliveries).where(eq(deliveries.runId, runId!));
    expect(sent).toMatchObject({ agentId: agent.id, contactId: contact.id, channel: "email" });
    await db().update(deliveries).set({ createdAt: new Date(T0 + HOUR + 10 * 60_000) }).where(eq(deliveries.id, sent!.id));

    // 16:00: the run is over, but the agent reached the contact within cooldown_days.
    await runSchedules(db(), env, T0 + 2 * HOUR);
    expect(await runsOf(key, agent.id)).toHaveLength(1);
    expect(await why(T0 + 2 * HOUR)).toEqual({ contactIds: [], skipped: [{ contact_id: contact.id, reason: "cooldown" }] });

    // With the cooldown off, 17:00 proposes to the contact again: the cooldown is what held it back.
    const monitoring = { ...TEMPLATES.pricing_visitor_followup.monitoring, cooldown_days: 0 };
    expect((await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { monitoring } })).status).toBe(200);
    await runSchedules(db(), env, T0 + 3 * HOUR);
    expect(await runsOf(key, agent.id)).toHaveLength(2);
  });
});
