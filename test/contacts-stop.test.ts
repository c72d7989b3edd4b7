import { describe, expect, it } from "vitest";
import { api, makeAgent, makeWorkspace, type Json } from "./helpers";
import { drive } from "./run-helpers";

/** A contact with a pending first email in an active run. */
async function pendingRun() {
  const { key } = await makeWorkspace();
  const contact = (await api("/v1/contacts", { method: "POST", key, body: { email: "ann@example.com", first_name: "Ann" } })).body.contact;
  const agent = await makeAgent(key, { playbook: { playbook_md: "x", steps: [{ action: "email_message" }] } });
  const runId = (await api(`/v1/agents/${agent.id}/trigger`, { method: "POST", key, body: { contact_ids: [contact.id] } })).body.run_id;
  const run = async () => (await api(`/v1/agents/runs/${runId}`, { key })).body.run as Json;
  await drive(runId);
  expect((await run()).status).toBe("awaiting_approval");
  return { key, contact, run };
}

describe("unsubscribing through the contact", () => {
  it("stops the contact's sequence when PATCH sets unsubscribed", async () => {
    const { key, contact, run } = await pendingRun();

    await api(`/v1/contacts/${contact.id}`, { method: "PATCH", key, body: { unsubscribed: true } });

    const entry = (await run()).contacts[0];
    expect(entry).toMatchObject({ status: "stopped", stop_reason: "unsubscribe" });
    expect(entry.actions[0].status).toBe("invalidated");
  });

  it("stops the contact's sequence when a batch upsert sets unsubscribed", async () => {
    const { key, run } = await pendingRun();

    await api("/v1/contacts/batch", { method: "POST", key, body: { contacts: [{ email: "ANN@example.com", unsubscribed: true }] } });

    expect((await run()).contacts[0]).toMatchObject({ status: "stopped", stop_reason: "unsubscribe" });
  });
});
