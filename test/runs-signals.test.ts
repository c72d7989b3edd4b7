import { createExecutionContext, createMessageBatch, getQueueResult, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { Env, RunMessage, SignalMessage } from "../src/env";
import worker from "../src/index";
import { INLINE_SIGNAL_RUNS } from "../src/runs/stop-signals";
import { api, makeAgent, makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, approve, contactOf, deliveryRows, drive, getRun, makeContact, makeStepsAgent, runStub, startRun } from "./engine-helpers";
import { allContacts, deliverStart, makeContacts, trigger } from "./run-helpers";

async function consume(messages: RunMessage[]) {
  const batch = createMessageBatch<RunMessage>("cairn-runs", messages.map((body, i) => ({ id: `s${i}`, timestamp: new Date(), attempts: 1, body })));
  const ctx = createExecutionContext();
  await (worker as ExportedHandler<Env, RunMessage>).queue!(batch, env as Env, ctx);
  await waitOnExecutionContext(ctx);
  return getQueueResult(batch, ctx);
}

describe("stop signals for a contact in many runs", () => {
  it(`tell up to ${INLINE_SIGNAL_RUNS} runs directly and hand more to the queue, one message per run`, { timeout: 60_000 }, async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const runIds: string[] = [];
    for (let i = 0; i <= INLINE_SIGNAL_RUNS; i++) {
      const agent = await makeStepsAgent(key, [EMAIL_STEP]);
      runIds.push(await startRun(key, agent.id, [contact.id]));
    }
    // Observed, not replaced: the messages still go to the real Queue.
    const sent = vi.spyOn(env.RUN_QUEUE, "sendBatch");

    const res = await api(`/v1/contacts/${contact.id}`, { method: "PATCH", key, body: { unsubscribed: true } });
    expect(res.status).toBe(200);

    expect(sent).toHaveBeenCalledTimes(1);
    const messages = Array.from(sent.mock.calls[0]![0], (m) => m.body as SignalMessage);
    expect(messages.map((m) => m.run_id).sort()).toStrictEqual([...runIds].sort());
    expect(messages[0]).toStrictEqual({ kind: "signal", run_id: expect.any(String), stops: [{ contactId: contact.id, reason: "unsubscribe" }], changes: [] });
    sent.mockRestore();

    // The consumer delivers them (again, if the Queue already did: a stop applied twice changes nothing).
    expect((await consume(messages)).explicitAcks).toHaveLength(messages.length);
    for (const runId of runIds) {
      expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "unsubscribe", actions: [{ status: "invalidated" }] });
    }
  });
});

describe("a stop racing an execution", () => {
  it("leaves the contact stopped and the run finished, whichever lands first", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP, { id: "later", action: "email_message", wait: { days: 1 } }]);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id]);

    const [approved] = await Promise.all([
      approve(key, runId, contact.id, 0),
      api("/v1/events", { method: "POST", key, body: { events: [{ contact_id: contact.id, type: "email.replied" }] } }),
    ]);
    await drive(runId);

    const run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "reply", next_step_at: null });
    expect(run.status).toBe("completed");
    expect(contactOf(run, contact.id).actions).toHaveLength(1);
    // Sent if the approval got there first, and then reported done; otherwise not sent and not a success.
    const sent = (await deliveryRows(runId, contact.id, 0)).length;
    expect(approved.status).toBe(sent === 1 ? 200 : 409);
    expect(await runInDurableObject(runStub(runId), (_i, state) => state.storage.getAlarm())).toBeNull();
  });
});

describe("a crash in the middle of a 1000-contact run", () => {
  it("reaches the same end state as the same run without one", { timeout: 180_000 }, async () => {
    const { key } = await makeWorkspace();
    const made = await makeContacts(key, 1000);
    const ids = made.map((c) => c.id as string);
    const playbook = { playbook_md: "x", steps: [{ id: "note", action: "create_note", template: { note: "Hello {{email}}" } }] };
    const calm = await makeAgent(key, { capabilities: ["notes"], playbook });
    const crashing = await makeAgent(key, { capabilities: ["notes"], playbook });

    const calmRun = (await trigger(key, calm.id, { contact_ids: ids })).body.run_id as string;
    await drive(calmRun);

    const crashRun = (await trigger(key, crashing.id, { contact_ids: ids })).body.run_id as string;
    await deliverStart(crashRun);
    // One pass of proposals, then a pass that died after leasing its contacts, then the object is reset.
    await runInDurableObject(runStub(crashRun), async (instance, state) => {
      await state.storage.deleteAlarm();
      await instance.alarm();
      state.storage.sql.exec(
        "UPDATE contacts SET status = 'processing', lease_until = ?, next_step_at = NULL WHERE position IN (SELECT position FROM contacts WHERE status = 'pending' ORDER BY position LIMIT 50)",
        Date.now() - 1,
      );
    });
    await runInDurableObject(runStub(crashRun), (_i, state) => state.abort("crash")).catch(() => {});
    await drive(crashRun);

    const shape = async (runId: string) => {
      const run = await getRun(key, runId);
      return { status: run.status, counts: run.counts, contacts: (await allContacts(key, runId)).map((c: Json) => [c.contact_id, c.status, c.actions.map((a: Json) => [a.index, a.status, a.params])]) };
    };
    const [calmShape, crashShape] = [await shape(calmRun), await shape(crashRun)];
    expect(crashShape.counts.pending_approval).toBe(1000);
    expect(crashShape).toStrictEqual(calmShape);
  });
});
