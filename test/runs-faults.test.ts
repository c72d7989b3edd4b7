import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createDb } from "../src/db/client";
import { contacts } from "../src/db/schema";
import { builtinGenerator } from "../src/runs/generators/builtin";
import { MAX_ATTEMPTS } from "../src/runs/run-engine";
import { makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, advance, agentClosedUntilTomorrow, approve, contactOf, deliveryRows, drive, getRun, makeContact, makeStepsAgent, pendingEmail, runSql, runStub, startRun, trigger } from "./engine-helpers";

// Faults are real: D1 refuses writes through SQLite triggers, the generator throws.
const guards: string[] = [];
async function refuse(table: string, runId: string, when = "1") {
  const name = `fault_${table}_${runId.toLowerCase()}_${guards.length}`;
  const column = table === "runs" ? "OLD.id" : "NEW.run_id";
  const event = table === "runs" ? "UPDATE" : "INSERT";
  await env.DB.exec(`CREATE TRIGGER ${name} BEFORE ${event} ON ${table} WHEN ${column} = '${runId}' AND ${when} BEGIN SELECT RAISE(ABORT, 'injected fault'); END`);
  guards.push(name);
  return () => env.DB.exec(`DROP TRIGGER IF EXISTS ${name}`);
}
afterEach(async () => {
  for (const name of guards.splice(0)) await env.DB.exec(`DROP TRIGGER IF EXISTS ${name}`);
  vi.restoreAllMocks();
});
const quiet = () => vi.spyOn(console, "error").mockImplementation(() => {});

const TWO_STEPS = [EMAIL_STEP, { id: "follow_up", action: "email_message", wait: { days: 2 } }];
const ADA = { first_name: "Ada" };

describe("an executor that throws", () => {
  it("is retried with backoff, then the action fails with its error after MAX_ATTEMPTS and the run finishes", async () => {
    const { key, contact, runId } = await pendingEmail([EMAIL_STEP], ADA);
    await refuse("deliveries", runId);
    quiet();

    const first = await approve(key, runId, contact.id, 0);
    expect(first.status).toBe(200);
    expect(first.body.action).toMatchObject({ status: "scheduled", attempts: 1, error: expect.stringContaining("injected fault") });
    for (let attempt = 2; attempt <= MAX_ATTEMPTS; attempt++) expect(await advance(runId)).toBe(true);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "failed", stop_reason: "error" });
    expect(contactOf(run, contact.id).actions[0]).toMatchObject({ status: "failed", attempts: MAX_ATTEMPTS, error: expect.stringContaining("injected fault") });
    expect(run).toMatchObject({ status: "failed", counts: expect.objectContaining({ failed: 1, approved: 0 }) });
    expect(await runInDurableObject(runStub(runId), (_i, state) => state.storage.getAlarm())).toBeNull();
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(0);
  });

  it("sends exactly once when a retry after failures succeeds", async () => {
    const { key, contact, runId } = await pendingEmail([EMAIL_STEP], ADA);
    const heal = await refuse("deliveries", runId);
    quiet();
    expect((await approve(key, runId, contact.id, 0)).body.action.status).toBe("scheduled");
    expect(await advance(runId)).toBe(true);
    await heal();
    expect(await advance(runId)).toBe(true);

    const action = contactOf(await getRun(key, runId), contact.id).actions[0];
    expect(action).toMatchObject({ status: "completed", attempts: 3, error: null });
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(1);
  });

  it("stops, not retries, a note for a contact deleted behind the run's back", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "note", action: "create_note", template: { note: "Hi" } }]);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id]);
    await createDb(env.DB).delete(contacts).where(eq(contacts.id, contact.id));

    expect((await approve(key, runId, contact.id, 0)).status).toBe(409);
    await drive(runId);

    const run = await getRun(key, runId);
    expect(run.status).toBe("completed");
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "contact_deleted", actions: [{ status: "invalidated", attempts: 1 }] });
    expect(await runInDurableObject(runStub(runId), (_i, state) => state.storage.getAlarm())).toBeNull();
  });
});

describe("a generator that throws", () => {
  it("is tried again after a backoff and then proposes", async () => {
    const propose = vi.spyOn(builtinGenerator, "propose").mockRejectedValueOnce(new Error("model unavailable"));
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key);
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);
    // The first attempt failed and left the contact due again after a backoff.
    expect(propose).toHaveBeenCalled();
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "pending", actions: [] });

    expect(await advance(runId)).toBe(true);
    expect(contactOf(await getRun(key, runId), contact.id).actions.map((a: Json) => a.status)).toStrictEqual(["pending_approval"]);
  });

  it("fails only that contact after MAX_ATTEMPTS, with the generator's error, and the run finishes", async () => {
    vi.spyOn(builtinGenerator, "propose").mockRejectedValue(new Error("model unavailable"));
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key);
    const runId = await trigger(key, agent.id, [contact.id]);
    await drive(runId);
    for (let attempt = 2; attempt <= MAX_ATTEMPTS; attempt++) await advance(runId);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "failed", stop_reason: "error", actions: [{ status: "failed", error: "model unavailable" }] });
    expect(run.status).toBe("failed");
  });
});

describe("a D1 mirror that throws", () => {
  it("loses no step: after a send whose summary D1 refused, the next step is still proposed", async () => {
    const { key, contact, runId } = await pendingEmail(TWO_STEPS, ADA);
    await refuse("runs", runId);
    quiet();

    expect((await approve(key, runId, contact.id, 0)).body.action.status).toBe("completed");
    await drive(runId);
    expect(await advance(runId)).toBe(true);

    const progress = contactOf(await getRun(key, runId), contact.id);
    expect(progress.actions.map((a: Json) => [a.step_id, a.status])).toStrictEqual([
      ["intro", "completed"],
      ["follow_up", "pending_approval"],
    ]);
    // D1 is behind, and that is all: the mirror keeps trying.
    expect((await runSql(runId, "SELECT mirror_failures AS n FROM run"))[0]!.n).toBeGreaterThan(0);
  });
});

describe("a lease that lapses outside the send window", () => {
  it("schedules the action for the opening instead of waking the object again and again", async () => {
    const { key } = await makeWorkspace();
    const { agent, opening } = await agentClosedUntilTomorrow(key);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id]);
    // As if an execution took the lease and died.
    await runSql(runId, "UPDATE actions SET status = 'running', lease_until = ?, attempts = 1", Date.now() - 1);
    await runSql(runId, "UPDATE contacts SET status = 'processing'");
    await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));

    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);

    expect(contactOf(await getRun(key, runId), contact.id).actions[0]).toMatchObject({ status: "scheduled", scheduled_for: opening.toISOString() });
    expect(await runInDurableObject(runStub(runId), (_i, state) => state.storage.getAlarm())).toBe(opening.getTime());
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(0);
  });
});
