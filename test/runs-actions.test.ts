import { describe, expect, it } from "vitest";
import { api, expectError, makeKey, makeWorkspace, type Json } from "./helpers";
import {
  EMAIL_STEP,
  ISO_MS,
  TWO_STEPS,
  advance,
  approve,
  contactOf,
  deliveryRows,
  digestOf,
  getRun,
  makeContact,
  makeStepsAgent,
  outbox,
  reject,
  startRun,
  waitForAction,
} from "./engine-helpers";

/** A workspace with one pending email for one contact (and a second step after a day's wait). */
async function pendingEmail(steps: Json[] = TWO_STEPS) {
  const { workspaceId, key, keyId } = await makeWorkspace();
  const agent = await makeStepsAgent(key, steps);
  const contact = await makeContact(key, { first_name: "Ada", company: "Acme" });
  const runId = await startRun(key, agent.id, [contact.id]);
  const action = contactOf(await getRun(key, runId), contact.id).actions[0] as Json;
  return { workspaceId, key, keyId, agent, contact, runId, action };
}

const currentAction = async (key: string, runId: string, contactId: string, index = 0) => contactOf(await getRun(key, runId), contactId).actions[index];
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);

describe("approving with edits", () => {
  it("merges the edits over the proposal, keeps the original, records the reason and sends the edited email", async () => {
    const { workspaceId, key, runId, contact, action } = await pendingEmail();
    const approver = await makeKey(workspaceId, ["agents:approve"]);

    const res = await approve(approver.key, runId, contact.id, 0, { params: { subject: "A better subject" }, reason: "Tighter subject" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const edited = { ...action.params, subject: "A better subject" };
    expect(res.body.action).toMatchObject({
      status: "completed",
      params: edited,
      original_params: action.params,
      digest: await digestOf(edited),
      decision: { type: "approve", by_key_id: approver.keyId, reason: "Tighter subject", edited: true },
      decided_at: expect.stringMatching(ISO_MS),
    });
    expect(res.body.action.digest).not.toBe(action.digest);
    const box = await outbox(key);
    expect(box.deliveries.map((d: Json) => d.params)).toStrictEqual([edited]);
  });

  it("leaves the fields the approver did not edit exactly as proposed, whitespace included", async () => {
    const step = { id: "intro", action: "email_message", template: { subject: "Hi {{first_name}}", body: "Hi {{first_name}},\n\n{{sender.role}}" } };
    const { key, runId, contact, action } = await pendingEmail([step]);
    expect(action.params.body).toBe("Hi Ada,\n\n"); // the sender has no role: the signature renders empty
    const res = await approve(key, runId, contact.id, 0, { params: { subject: "Hello Ada" } });
    expect(res.body.action.params).toStrictEqual({ to: contact.email, subject: "Hello Ada", body: "Hi Ada,\n\n" });
    expect((await outbox(key)).deliveries[0].params.body).toBe("Hi Ada,\n\n");
  });

  it("does not count edits that change nothing as edits", async () => {
    const { key, runId, contact, action } = await pendingEmail();
    const res = await approve(key, runId, contact.id, 0, { params: { subject: action.params.subject } });
    expect(res.status).toBe(200);
    expect(res.body.action.decision.edited).toBe(false);
    expect(res.body.action.digest).toBe(action.digest);
    expect(res.body.action).not.toHaveProperty("original_params");
  });

  it("rejects edited params that are not a valid email with 400 naming each field, and leaves the action pending", async () => {
    const { key, runId, contact, action } = await pendingEmail();
    const res = await approve(key, runId, contact.id, 0, { params: { subject: "   ", body: "" } });
    const body = expectError(res, 400, "validation_error");
    expect(paths(body)).toEqual(expect.arrayContaining(["params.subject", "params.body"]));
    expect(await currentAction(key, runId, contact.id)).toStrictEqual({ ...action, estimated_send_at: expect.stringMatching(ISO_MS) });
    expect((await outbox(key)).total).toBe(0);
  });

  it("rejects an edit with a param the action type does not have", async () => {
    const { key, runId, contact, action } = await pendingEmail();
    const res = await approve(key, runId, contact.id, 0, { params: { cc: "boss@acme.example" } });
    const body = expectError(res, 400, "validation_error");
    expect(paths(body)).toStrictEqual(["params.cc"]);
    expect(await currentAction(key, runId, contact.id)).toStrictEqual({ ...action, estimated_send_at: expect.stringMatching(ISO_MS) });
  });

  it("validates edits for the action's own type: a LinkedIn note over 300 characters is refused", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "connect", action: "linkedin_connection" }]);
    const contact = await makeContact(key, { linkedin_url: "https://www.linkedin.com/in/ada" });
    const runId = await startRun(key, agent.id, [contact.id]);
    const res = await approve(key, runId, contact.id, 0, { params: { message: "x".repeat(301) } });
    expect(paths(expectError(res, 400, "validation_error"))).toStrictEqual(["params.message"]);
    const ok = await approve(key, runId, contact.id, 0, { params: { message: "Short and sweet" } });
    expect(ok.body.action).toMatchObject({ status: "completed", params: { message: "Short and sweet" }, decision: { edited: true } });
  });

  it("approves when the digest sent matches the one reviewed", async () => {
    const { key, runId, contact, action } = await pendingEmail();
    const res = await approve(key, runId, contact.id, 0, { digest: action.digest, params: { body: "Edited body" } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.action).toMatchObject({ status: "completed", params: { body: "Edited body" } });
  });

  it("answers 409 digest_mismatch when the digest sent differs, and leaves the action pending", async () => {
    const { key, runId, contact, action } = await pendingEmail();
    const res = await approve(key, runId, contact.id, 0, { digest: `sha256:${"0".repeat(64)}` });
    expectError(res, 409, "digest_mismatch");
    expect(await currentAction(key, runId, contact.id)).toStrictEqual({ ...action, estimated_send_at: expect.stringMatching(ISO_MS) });
    expect((await outbox(key)).total).toBe(0);
  });
});

describe("rejecting", () => {
  it("records the rejection and ends the contact's sequence: no later step is proposed", async () => {
    const { workspaceId, key, runId, contact, action } = await pendingEmail();
    const reviewer = await makeKey(workspaceId, ["agents:approve"]);
    const res = await reject(reviewer.key, runId, contact.id, 0, { reason: "Wrong tone" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toStrictEqual({
      status: "success",
      action: { ...action, estimated_send_at: null, status: "rejected", decided_at: expect.stringMatching(ISO_MS), decision: { type: "reject", by_key_id: reviewer.keyId, reason: "Wrong tone", edited: false } },
    });

    let run = await getRun(key, runId);
    expect(contactOf(run, contact.id)).toMatchObject({ status: "stopped", stop_reason: "rejected", next_step_at: null });
    expect(run).toMatchObject({ status: "completed", counts: { rejected: 1, pending_approval: 0, completed: 0 } });

    await advance(runId);
    run = await getRun(key, runId);
    expect(contactOf(run, contact.id).actions).toHaveLength(1);
    expect((await outbox(key)).total).toBe(0);
  });
});

describe("deciding again", () => {
  it("answers a second approve with 200 and the same action, and delivers once", async () => {
    const { key, runId, contact } = await pendingEmail();
    const first = await approve(key, runId, contact.id, 0);
    const second = await approve(key, runId, contact.id, 0);
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.body).toStrictEqual(first.body);
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(1);
  });

  it("answers reject after approve with 409 action_not_pending", async () => {
    const { key, runId, contact } = await pendingEmail();
    const approved = await approve(key, runId, contact.id, 0);
    expectError(await reject(key, runId, contact.id, 0), 409, "action_not_pending");
    expect(await currentAction(key, runId, contact.id)).toStrictEqual(approved.body.action);
  });

  it("answers a second reject with 200 and the same action", async () => {
    const { key, runId, contact } = await pendingEmail();
    const first = await reject(key, runId, contact.id, 0, { reason: "No" });
    const second = await reject(key, runId, contact.id, 0);
    expect(second.status).toBe(200);
    expect(second.body).toStrictEqual(first.body);
  });

  it("answers approve after reject with 409 action_not_pending and sends nothing", async () => {
    const { key, runId, contact } = await pendingEmail();
    await reject(key, runId, contact.id, 0);
    expectError(await approve(key, runId, contact.id, 0), 409, "action_not_pending");
    expect(await currentAction(key, runId, contact.id)).toMatchObject({ status: "rejected" });
    expect((await outbox(key)).total).toBe(0);
  });

  it("treats an auto-approved action as approved: approve answers it, reject is a conflict", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "log", action: "create_note", require_approval: false }, EMAIL_STEP]);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id], "completed");
    const res = await approve(key, runId, contact.id, 0);
    expect(res.status).toBe(200);
    expect(res.body.action).toMatchObject({ status: "completed", decision: null });
    expectError(await reject(key, runId, contact.id, 0), 409, "action_not_pending");
  });

  it("answers 404 for a contact outside the run, an action index that does not exist, and an unknown run", async () => {
    const { key, runId, contact } = await pendingEmail();
    const stranger = await makeContact(key);
    expectError(await approve(key, runId, stranger.id, 0), 404, "not_found");
    expectError(await reject(key, runId, stranger.id, 0), 404, "not_found");
    expectError(await approve(key, runId, contact.id, 1), 404, "not_found");
    expectError(await reject(key, runId, contact.id, 7), 404, "not_found");
    expectError(await approve(key, runId, contact.id, "first" as unknown as number), 404, "not_found");
    expectError(await approve(key, "run_00000000000000000000000000", contact.id, 0), 404, "not_found");
    expect(await currentAction(key, runId, contact.id)).toMatchObject({ status: "pending_approval" });
  });
});

describe("concurrent decisions", () => {
  it("lets exactly one of a racing approve and reject win, and delivers at most once", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contacts = [await makeContact(key), await makeContact(key), await makeContact(key)];
    const runId = await startRun(key, agent.id, contacts.map((c) => c.id));

    for (const contact of contacts) {
      const [approved, rejected] = await Promise.all([approve(key, runId, contact.id, 0), reject(key, runId, contact.id, 0)]);
      expect([approved.status, rejected.status].sort()).toStrictEqual([200, 409]);
      const loser = approved.status === 409 ? approved : rejected;
      expectError(loser, 409, "action_not_pending");

      const action = await currentAction(key, runId, contact.id);
      const rows = await deliveryRows(runId, contact.id, 0);
      if (approved.status === 200) {
        expect(action).toMatchObject({ status: "completed", decision: { type: "approve" } });
        expect(rows).toHaveLength(1);
      } else {
        expect(action).toMatchObject({ status: "rejected", decision: { type: "reject" } });
        expect(rows).toHaveLength(0);
      }
    }
  });

  it("answers two racing approves both with 200 and delivers once", async () => {
    const { key, runId, contact } = await pendingEmail([EMAIL_STEP]);
    const results = await Promise.all([approve(key, runId, contact.id, 0), approve(key, runId, contact.id, 0, { reason: "me too" })]);
    for (const res of results) {
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.action.decision.type).toBe("approve");
    }
    await waitForAction(key, runId, contact.id, 0, "completed");
    expect(await deliveryRows(runId, contact.id, 0)).toHaveLength(1);
    expect((await outbox(key)).total).toBe(1);
  });
});

describe("who may decide", () => {
  it("answers 404 for another workspace's run", async () => {
    const { runId, contact } = await pendingEmail();
    const other = await makeWorkspace();
    expectError(await approve(other.key, runId, contact.id, 0), 404, "not_found");
    expectError(await api(`/v1/agents/runs/${runId}`, { key: other.key }), 404, "not_found");
  });
});
