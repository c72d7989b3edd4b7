import { describe, expect, it } from "vitest";
import { api, expectError, makeAgent, makeWorkspace, type Json } from "./helpers";
import { approve, reject } from "./engine-helpers";
import { getRun, makeContacts, seedQueuedRun, triggerAndWait, proposed } from "./run-helpers";

async function notesRun(n: number, note = "Checked {{email}}") {
  const { key } = await makeWorkspace();
  const agent = await makeAgent(key, { capabilities: ["notes"], playbook: { playbook_md: "x", steps: [{ id: "note", action: "create_note", template: { note } }] } });
  const made = await makeContacts(key, n);
  const { runId } = await triggerAndWait(key, agent.id, { contact_ids: made.map((c) => c.id) }, proposed);
  return { key, runId, ids: made.map((c) => c.id as string) };
}

const view = (key: string, runId: string, query = "") => api(`/v1/agents/runs/${runId}${query}`, { key });

describe("GET /v1/agents/runs/:runId pages its contacts", () => {
  it("answers the first 100 contacts in trigger order by default, with the total and where the next page starts", async () => {
    const { key, runId, ids } = await notesRun(150);
    const run = await getRun(key, runId);
    expect(run.contacts.map((c: Json) => c.contact_id)).toStrictEqual(ids.slice(0, 100));
    expect(run).toMatchObject({ contact_count: 150, contacts_total: 150, contacts_limit: 100, contacts_offset: 0, contacts_next_offset: 100 });
    expect(run.contacts[0].contact).toMatchObject({ email: expect.any(String) });

    const rest = await getRun(key, runId, "?contacts_offset=100&contacts_limit=100");
    expect(rest.contacts.map((c: Json) => c.contact_id)).toStrictEqual(ids.slice(100));
    expect(rest.contacts_next_offset).toBeNull();
  });

  it("filters by contact_status and counts only the matches", async () => {
    const { key, runId, ids } = await notesRun(5);
    await approve(key, runId, ids[1]!, 0);
    await reject(key, runId, ids[3]!, 0);

    const stopped = await getRun(key, runId, "?contact_status=stopped");
    expect(stopped.contacts.map((c: Json) => c.contact_id)).toStrictEqual([ids[3]]);
    expect(stopped).toMatchObject({ contacts_total: 1, contact_count: 5 });
    const waiting = await getRun(key, runId, "?contact_status=awaiting_approval&contacts_limit=2&contacts_offset=1");
    expect(waiting.contacts.map((c: Json) => c.contact_id)).toStrictEqual([ids[2], ids[4]]);
    expect(waiting).toMatchObject({ contacts_total: 3, contacts_next_offset: null });
  });

  it("pages a run whose object has not started from its trigger list", async () => {
    const { key, runId, contactIds } = await seedQueuedRun({ contacts: 3 });
    const run = await getRun(key, runId, "?contacts_limit=2");
    expect(run).toMatchObject({ status: "queued", contacts_total: 3, contacts_next_offset: 2 });
    expect(run.contacts.map((c: Json) => [c.contact_id, c.status])).toStrictEqual([
      [contactIds[0], "pending"],
      [contactIds[1], "pending"],
    ]);
  });

  it.each(["contacts_limit=0", "contacts_limit=1001", "contacts_limit=01x", "contacts_offset=-1", "contact_status=sleeping", "other=1"])(
    "answers 400 to %s",
    async (query) => {
      const { key, runId } = await seedQueuedRun({ contacts: 1 });
      expectError(await view(key, runId, `?${query}`), 400, "validation_error");
    },
  );

  it("stays answerable and under 2 MB for 1000 contacts whose actions carry 20,000-character bodies", { timeout: 120_000 }, async () => {
    const { key, runId } = await notesRun(1000, "x".repeat(20_000));

    for (const query of ["", "?contacts_limit=1000"]) {
      const res = await view(key, runId, query);
      expect(res.status).toBe(200);
      const bytes = new TextEncoder().encode(JSON.stringify(res.body)).byteLength;
      expect(bytes).toBeLessThan(2 * 1024 * 1024);
      // The page ended at the byte budget, and says where to go on.
      const run = res.body.run;
      expect(run.contacts.length).toBeGreaterThan(0);
      expect(run.contacts.length).toBeLessThan(100);
      expect(run.contacts_next_offset).toBe(run.contacts.length);
      expect(run.contacts_total).toBe(1000);
      expect(run.counts.pending_approval).toBe(1000);
    }
  });
});
