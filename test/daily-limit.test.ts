import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { localDay } from "../src/delivery/send-days";
import { api, makeWorkspace, type Json } from "./helpers";
import { makeContacts } from "./run-helpers";
import { DAY, EMAIL_STEP, advance, agentClosedUntilTomorrow, approve, contactOf, deliveryRows, drive, getRun, makeContact, makeIdentity, makeStepsAgent, runSql, runStub, startRun } from "./engine-helpers";

const today = () => localDay(Date.now(), "UTC");
const tomorrow = () => localDay(Date.now() + DAY, "UTC");
const nextUtcMidnight = (days = 1) => {
  const at = new Date();
  at.setUTCHours(0, 0, 0, 0);
  return at.getTime() + days * DAY;
};

/** A workspace whose identity may send `limit` emails a day (UTC, no window), and an email agent sending as it. */
async function limitedSender(limit: number) {
  const { key } = await makeWorkspace();
  const identity = await makeIdentity(key, { daily_limit: limit, email_address: `limited-${crypto.randomUUID().slice(0, 8)}@cairn.example` });
  const agent = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: identity.id });
  return { key, identity, agent };
}

/** A limit of one a day, both emails of one run approved: `a` sent today, `b` holding tomorrow's slot. */
async function oneSentOneHeld() {
  const { key, identity, agent } = await limitedSender(1);
  const [a, b] = [await makeContact(key), await makeContact(key)];
  const runId = await startRun(key, agent.id, [a.id, b.id]);
  await approve(key, runId, a.id, 0);
  await approve(key, runId, b.id, 0);
  return { key, identity, runId, a, b };
}

const sendDaysOf = async (identityId: string) =>
  (await env.DB.prepare(`SELECT send_day, status FROM deliveries WHERE identity_id = ? ORDER BY send_day, status`).bind(identityId).all<{ send_day: string; status: string }>()).results;

describe("an identity's daily limit", () => {
  it("holds across runs and agents: over it, the send holds tomorrow's slot and waits for it", async () => {
    const { key, identity, agent } = await limitedSender(2);
    const other = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: identity.id });
    const [a, b] = [await makeContact(key), await makeContact(key)];
    const c = await makeContact(key);
    const first = await startRun(key, agent.id, [a.id, b.id]);
    const second = await startRun(key, other.id, [c.id]);
    for (const contact of [a, b]) expect((await approve(key, first, contact.id, 0)).status).toBe(200);

    // Before it is approved, the third email says when it would go: today is spent.
    const pending = contactOf(await getRun(key, second), c.id).actions[0];
    expect(Date.parse(pending.estimated_send_at)).toBe(nextUtcMidnight());

    expect((await approve(key, second, c.id, 0)).status).toBe(200);
    const held = contactOf(await getRun(key, second), c.id);
    expect(held.actions[0]).toMatchObject({ status: "scheduled", scheduled_for: new Date(nextUtcMidnight()).toISOString() });
    expect(await deliveryRows(second, c.id, 0)).toMatchObject([{ status: "scheduled", sendDay: tomorrow() }]);
    // Holding a slot is not contacting them.
    expect((await api(`/v1/contacts/${c.id}`, { key })).body.contact.last_contacted_at).toBeNull();

    // The day turns: today's two sends now count against yesterday, and the held email goes.
    await env.DB.prepare(`UPDATE deliveries SET send_day = ? WHERE identity_id = ? AND status = 'sent'`).bind(localDay(Date.now() - DAY, "UTC"), identity.id).run();
    await advance(second);
    expect(contactOf(await getRun(key, second), c.id).actions[0].status).toBe("completed");
    expect(await deliveryRows(second, c.id, 0)).toMatchObject([{ status: "sent", sendDay: today() }]);
    expect((await api(`/v1/contacts/${c.id}`, { key })).body.contact.last_contacted_at).not.toBeNull();
  });

  it("lets a held email take its own slot when its day comes", async () => {
    const { key, identity, runId, b } = await oneSentOneHeld();
    // The day turns: a's send was yesterday's, and the day b holds is today.
    await env.DB.prepare(`UPDATE deliveries SET send_day = CASE status WHEN 'sent' THEN ?2 ELSE ?3 END WHERE identity_id = ?1`)
      .bind(identity.id, localDay(Date.now() - DAY, "UTC"), today())
      .run();
    await advance(runId);
    // Its own held slot is the day's one slot: it goes, rather than being put off again.
    expect(await deliveryRows(runId, b.id, 0)).toMatchObject([{ status: "sent", sendDay: today() }]);
    expect(contactOf(await getRun(key, runId), b.id).actions[0]).toMatchObject({ status: "completed", attempts: 2 });
  });

  it("gives two runs approving at once the last slot once", async () => {
    const { key, identity, agent } = await limitedSender(1);
    const [a, b] = [await makeContact(key), await makeContact(key)];
    const runs = [await startRun(key, agent.id, [a.id]), await startRun(key, agent.id, [b.id])];
    const answers = await Promise.all([approve(key, runs[0]!, a.id, 0), approve(key, runs[1]!, b.id, 0)]);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    expect(await sendDaysOf(identity.id)).toEqual([
      { send_day: today(), status: "sent" },
      { send_day: tomorrow(), status: "scheduled" },
    ]);
  });

  it("gives 32 approvals racing in one run 12 slots a day: 12 today, 12 tomorrow, 8 the day after", async () => {
    const { key, identity, agent } = await limitedSender(12);
    const contacts = await makeContacts(key, 32);
    const runId = await startRun(key, agent.id, contacts.map((c) => c.id));
    const answers = await Promise.all(contacts.map((c) => approve(key, runId, c.id, 0)));
    expect(answers.every((r) => r.status === 200)).toBe(true);
    await drive(runId);
    const days = await sendDaysOf(identity.id);
    const count = (day: string, status: string) => days.filter((d) => d.send_day === day && d.status === status).length;
    expect([count(today(), "sent"), count(tomorrow(), "scheduled"), count(localDay(Date.now() + 2 * DAY, "UTC"), "scheduled")]).toEqual([12, 12, 8]);
    const scheduled = (await getRun(key, runId, "?contacts_limit=100")).contacts.map((c: Json) => c.actions[0].scheduled_for).filter(Boolean);
    expect(new Set(scheduled)).toEqual(new Set([new Date(nextUtcMidnight(1)).toISOString(), new Date(nextUtcMidnight(2)).toISOString()]));
  });

  it("estimates each pending email its own slot, inside the send window", async () => {
    const { key } = await makeWorkspace();
    const closed = await agentClosedUntilTomorrow(key, { daily_limit: 2 });
    const contacts = [await makeContact(key), await makeContact(key), await makeContact(key)];
    const runId = await startRun(key, closed.agent.id, contacts.map((c) => c.id));
    const estimates = (await getRun(key, runId)).contacts.map((c: Json) => c.actions[0].estimated_send_at).sort();
    const opening = closed.opening.getTime();
    // Two fit tomorrow; the third waits a week for the window's next day.
    expect(estimates).toEqual([opening, opening, opening + 7 * DAY].map((t) => new Date(t).toISOString()));

    // One approved now waits for tomorrow's opening and takes one of its two slots.
    expect((await approve(key, runId, contacts[0]!.id, 0)).status).toBe(200);
    const run = await getRun(key, runId);
    expect(contactOf(run, contacts[0]!.id).actions[0].status).toBe("scheduled");
    const left = [contactOf(run, contacts[1]!.id), contactOf(run, contacts[2]!.id)].map((c) => c.actions[0].estimated_send_at).sort();
    expect(left).toEqual([opening, opening + 7 * DAY].map((t) => new Date(t).toISOString()));
    // Each page counts the whole run's queue: the second contact's page alone says the same.
    const second = await getRun(key, runId, "?contacts_limit=1&contacts_offset=2");
    expect(second.contacts[0].actions[0].estimated_send_at).toBe(contactOf(run, contacts[2]!.id).actions[0].estimated_send_at);
  });

  it("gives back the slot of a held email whose contact left", async () => {
    const { key, identity, runId, b } = await oneSentOneHeld();
    expect(await deliveryRows(runId, b.id, 0)).toMatchObject([{ status: "scheduled" }]);
    expect((await api(`/v1/contacts/${b.id}`, { method: "PATCH", key, body: { unsubscribed: true } })).status).toBe(200);
    // Given back now, not when the held day comes: nothing is moved in time here.
    await drive(runId);
    const after = contactOf(await getRun(key, runId), b.id);
    expect(after).toMatchObject({ status: "stopped", stop_reason: "unsubscribe" });
    expect(after.actions[0].status).toBe("invalidated");
    expect(await deliveryRows(runId, b.id, 0)).toEqual([]);
    expect(await sendDaysOf(identity.id)).toEqual([{ send_day: today(), status: "sent" }]);
  });

  it("keeps counting a retried email's slot when it went out before its process died: a new email of the same batch waits for tomorrow", async () => {
    const { key, agent } = await limitedSender(1);
    const [sent, fresh] = [await makeContact(key), await makeContact(key)];
    const runId = await startRun(key, agent.id, [sent.id, fresh.id]);
    expect((await approve(key, runId, sent.id, 0)).status).toBe(200);
    // As if the object died after `sent` went out and before it recorded so: due again, behind
    // `fresh`, approved and proposed earlier, in the same pass.
    await runSql(runId, "UPDATE actions SET status = 'running', lease_until = ?, executed_at = NULL, result = NULL, proposed_at = 2000 WHERE contact_id = ?", Date.now() - 1, sent.id);
    await runSql(runId, "UPDATE actions SET status = 'approved', proposed_at = 1000 WHERE contact_id = ?", fresh.id);
    await runSql(runId, "UPDATE contacts SET status = 'processing', current_step = 0");
    await runSql(runId, "UPDATE run SET status = 'running', completed_at = NULL");
    await runInDurableObject(runStub(runId), (_object, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(runStub(runId));
    await drive(runId);

    const [[first], [second]] = [await deliveryRows(runId, sent.id, 0), await deliveryRows(runId, fresh.id, 0)];
    expect(first).toMatchObject({ sendDay: today(), status: "sent" });
    expect(second).toMatchObject({ sendDay: tomorrow(), status: "scheduled" });
  });
});
