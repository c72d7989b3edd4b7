import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { localDay } from "../src/delivery/send-days";
import { api, makeWorkspace, type Json } from "./helpers";
import { DAY, EMAIL_STEP, contactOf, drive, getRun, makeContact, makeIdentity, makeStepsAgent, outbox, runSql, startRun } from "./engine-helpers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { runStub } from "./engine-helpers";

const tomorrowUtc = () => {
  const at = new Date();
  at.setUTCHours(0, 0, 0, 0);
  return new Date(at.getTime() + DAY).toISOString();
};

/** A workspace whose identity may send `limit` emails a day (UTC, no window), and `runs` runs of `perRun` pending emails each. */
async function pendingRuns(limit: number, runs: number, perRun: number) {
  const { key } = await makeWorkspace();
  const identity = await makeIdentity(key, { daily_limit: limit, email_address: `bulk-${crypto.randomUUID().slice(0, 8)}@cairn.example` });
  const made: { runId: string; contacts: Json[] }[] = [];
  for (let r = 0; r < runs; r++) {
    const agent = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: identity.id });
    const contacts: Json[] = [];
    for (let i = 0; i < perRun; i++) contacts.push(await makeContact(key));
    made.push({ runId: await startRun(key, agent.id, contacts.map((c) => c.id)), contacts });
  }
  return { key, identity, runs: made };
}

const approveAll = async (key: string, runs: { runId: string; contacts: Json[] }[]) => {
  const items = runs.flatMap(({ runId, contacts }) => contacts.map((c) => ({ run_id: runId, contact_id: c.id, action_index: 0 })));
  const res = await api("/v1/approvals/decide", { method: "POST", key, body: { decision: "approve", items } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.results as Json[];
};

const claimStatements = (prepare: { mock: { calls: unknown[][] } }) => prepare.mock.calls.filter(([query]) => String(query).startsWith("WITH batch AS")).length;

const sendDaysOf = async (identityId: string) =>
  (await env.DB.prepare("SELECT send_day, status, count(*) AS n FROM deliveries WHERE identity_id = ? GROUP BY send_day, status ORDER BY send_day").bind(identityId).all()).results;

afterEach(() => vi.restoreAllMocks());

describe("POST /v1/approvals/decide: carrying out the approvals", () => {
  it("claims the sends of each run's approved emails in one D1 statement, and each goes once", async () => {
    const { key, runs } = await pendingRuns(50, 1, 5);
    const prepare = vi.spyOn(env.DB, "prepare");
    const results = await approveAll(key, runs);
    expect(results.map((r) => r.status)).toStrictEqual(Array(5).fill("completed"));
    expect(claimStatements(prepare)).toBe(1);
    expect((await outbox(key, `?run_id=${runs[0]!.runId}`)).total).toBe(5);
  });

  it("counts a day's taken slots from the deliveries_identity_day index alone, once per claim however full the day", async () => {
    const { key, runs } = await pendingRuns(50, 1, 2);
    const prepare = vi.spyOn(env.DB, "prepare");
    await approveAll(key, runs);
    const claim = prepare.mock.calls.map(([query]) => String(query)).find((query) => query.startsWith("WITH batch AS"))!;
    prepare.mockRestore();
    const plan = (await env.DB.prepare(`EXPLAIN QUERY PLAN ${claim}`).bind(...Array(11).fill(null)).all<{ detail: string }>()).results.map((r) => r.detail);
    // An email claimed again finds its own held slot by its key, not by reading every delivery of the day.
    expect(plan).toContain("SEARCH x USING COVERING INDEX deliveries_identity_day (identity_id=? AND send_day=?)");
    expect(plan).toContain("SEARCH x USING INDEX deliveries_action_key (action_key=?)");
  });

  it("gives the approved emails of runs decided at once the identity's free slots, and holds the rest for the next day", async () => {
    const { key, identity, runs } = await pendingRuns(3, 2, 2);
    const results = await approveAll(key, runs);
    // The two runs' objects claim in parallel: three slots today between them, never four.
    expect(results.filter((r) => r.status === "completed")).toHaveLength(3);
    const held = results.filter((r) => r.status === "scheduled");
    expect(held).toHaveLength(1);
    expect(await sendDaysOf(identity.id)).toStrictEqual([
      { send_day: localDay(Date.now(), "UTC"), status: "sent", n: 3 },
      { send_day: localDay(Date.now() + DAY, "UTC"), status: "scheduled", n: 1 },
    ]);
    const waiting = contactOf(await getRun(key, held[0]!.run_id), held[0]!.contact_id).actions[0];
    expect(waiting.scheduled_for).toBe(tomorrowUtc());
  });

  it("sends nothing to a contact who left before the approval reached it; the others go", async () => {
    const { key, runs } = await pendingRuns(50, 1, 3);
    const [{ runId, contacts }] = runs as [{ runId: string; contacts: Json[] }];
    // Unsubscribed in D1 a moment before the run object hears of it.
    await env.DB.prepare("UPDATE contacts SET unsubscribed = 1 WHERE id = ?").bind(contacts[1]!.id).run();
    const results = await approveAll(key, runs);
    expect(results.map((r) => r.status)).toStrictEqual(["completed", "invalidated", "completed"]);
    const left = contactOf(await getRun(key, runId), contacts[1]!.id);
    expect(left).toMatchObject({ status: "stopped", stop_reason: "unsubscribe" });
    expect(left.actions[0].error).toBe("Not sent: unsubscribe");
    expect((await outbox(key, `?run_id=${runId}`)).deliveries.map((d: Json) => d.action.contact_id).sort()).toStrictEqual([contacts[0]!.id, contacts[2]!.id].sort());
  });

  it("sends nothing twice when the object dies after the sends and executes them again", async () => {
    const { key, runs } = await pendingRuns(50, 1, 3);
    const [{ runId, contacts }] = runs as [{ runId: string; contacts: Json[] }];
    expect((await approveAll(key, runs)).map((r) => r.status)).toStrictEqual(Array(3).fill("completed"));
    // As if the object died after D1 recorded the sends but before it recorded them itself.
    await runSql(runId, "UPDATE actions SET status = 'running', lease_until = ?, executed_at = NULL, result = NULL", Date.now() - 1);
    await runSql(runId, "UPDATE contacts SET status = 'processing', current_step = 0");
    await runSql(runId, "UPDATE run SET status = 'running', completed_at = NULL");
    const prepare = vi.spyOn(env.DB, "prepare");
    await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(runStub(runId));
    await drive(runId);
    // Taken again together, found already sent, recorded as sent: no second delivery.
    expect(claimStatements(prepare)).toBe(1);
    const run = await getRun(key, runId);
    expect(contacts.map((c) => contactOf(run, c.id).actions[0].status)).toStrictEqual(Array(3).fill("completed"));
    expect((await outbox(key, `?run_id=${runId}`)).total).toBe(3);
  });
});
