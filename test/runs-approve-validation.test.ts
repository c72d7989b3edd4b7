import { describe, expect, it } from "vitest";
import { expectError, makeWorkspace } from "./helpers";
import { approve, contactOf, getRun, makeContact, makeStepsAgent, outbox, startRun } from "./engine-helpers";

describe("approving what a template rendered empty", () => {
  async function emptyBodyProposal() {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "hello", action: "email_message", template: { subject: "Hi", body: "{{company}}" } }]);
    const contact = await makeContact(key, { company: null });
    const runId = await startRun(key, agent.id, [contact.id]);
    return { key, contact, runId, action: contactOf(await getRun(key, runId), contact.id).actions[0] };
  }

  it("refuses to approve an unedited email whose body rendered empty, and sends nothing", async () => {
    const { key, contact, runId, action } = await emptyBodyProposal();
    expect(action.params.body).toBe("");

    const body = expectError(await approve(key, runId, contact.id, 0), 400, "validation_error");

    expect(body.details).toEqual([expect.objectContaining({ path: "params.body" })]);
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("pending_approval");
    expect((await outbox(key)).total).toBe(0);
  });

  it("approves it once the approver supplies the body", async () => {
    const { key, contact, runId } = await emptyBodyProposal();

    const res = await approve(key, runId, contact.id, 0, { params: { body: "Hello there" } });

    expect(res.status).toBe(200);
    expect(res.body.action).toMatchObject({ status: "completed", params: { body: "Hello there" }, decision: { edited: true } });
  });
});
