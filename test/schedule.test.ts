import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { runSchedules } from "../src/runs/schedule";
import { api, makeAgent, makeWorkspace } from "./helpers";

const db = () => createDb(env.DB);
// Monday 2026-11-23 09:00 UTC, 10:00 in Berlin.
const MONDAY_9_UTC = Date.UTC(2026, 10, 23, 9, 0, 30);

async function workspaceWithLead() {
  const ws = await makeWorkspace();
  await api("/v1/contacts", { method: "POST", key: ws.key, body: { email: "lead@example.com", lifecycle_stage: "lead" } });
  return ws;
}

const scheduled = (cron: string, timezone = "UTC", enabled = true) => ({
  enabled,
  monitoring: { filter: { lifecycle_stage: ["lead"] }, schedule_cron: cron, timezone },
});

async function runsOf(key: string, agentId: string) {
  return (await api(`/v1/agents/${agentId}/runs`, { key })).body.runs as { trigger: string; contact_count: number }[];
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
    expect(started).toHaveLength(1);
  });

  it("leaves disabled agents, other minutes and agents without matching contacts alone", async () => {
    const { key } = await workspaceWithLead();
    const disabled = await makeAgent(key, scheduled("* * * * *", "UTC", false));
    const otherMinute = await makeAgent(key, scheduled("5 9 * * *"));
    const noMatch = await makeAgent(key, { enabled: true, monitoring: { filter: { lifecycle_stage: ["customer"] }, schedule_cron: "* * * * *" } });

    await runSchedules(db(), env, MONDAY_9_UTC);

    for (const agent of [disabled, otherMinute, noMatch]) expect(await runsOf(key, agent.id)).toEqual([]);
  });
});
