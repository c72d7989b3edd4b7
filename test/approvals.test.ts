import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, expectError, makeKey, makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, approve, cancel, drive, getRun, makeContact, makeStepsAgent, reject, startRun } from "./engine-helpers";
import { sendEvents } from "./run-helpers";

const NOTE_STEP = { id: "note", action: "create_note", require_approval: true, template: { note: "Met {{first_name|them}}" } };

const inbox = async (key: string, query = "") => {
  const res = await api(`/v1/approvals${query}`, { key });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
};
const keysOf = (entries: Json[]) => entries.map((e) => `${e.run_id}/${e.contact_id}/${e.action_index}`).sort();

/** The truth: every pending action the run objects hold, read through each run's view. */
async function pendingInRuns(key: string, runIds: string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const runId of runIds) {
    const run = await getRun(key, runId, "?contacts_limit=100");
    for (const c of run.contacts as Json[]) for (const a of c.actions as Json[]) if (a.status === "pending_approval") keys.push(`${runId}/${c.contact_id}/${a.index}`);
  }
  return keys.sort();
}

/** A workspace with two agents (email, note), three contacts, and a run of each agent for all three. */
async function twoRuns() {
  const { key, workspaceId } = await makeWorkspace();
  const emailer = await makeStepsAgent(key, [EMAIL_STEP]);
  const noter = await makeStepsAgent(key, [NOTE_STEP], { identity_id: null, capabilities: ["notes"] });
  const contacts = [await makeContact(key, { first_name: "Ada" }), await makeContact(key, { first_name: "Bo" }), await makeContact(key, { first_name: "Cy" })];
  const ids = contacts.map((c) => c.id as string);
  const emails = await startRun(key, emailer.id, ids);
  const notes = await startRun(key, noter.id, ids);
  await drive(emails);
  await drive(notes);
  return { key, workspaceId, emailer, noter, contacts, ids, emails, notes };
}

describe("GET /v1/approvals", () => {
  it("lists every pending action of the workspace across runs, oldest first, with run, agent, contact and action", async () => {
    const { key, emailer, ids, emails, notes } = await twoRuns();
    const body = await inbox(key);
    expect(body.total).toBe(6);
    expect(keysOf(body.approvals)).toStrictEqual(await pendingInRuns(key, [emails, notes]));
    const times = (body.approvals as Json[]).map((e) => e.action.proposed_at);
    expect([...times].sort()).toStrictEqual(times);

    const first = (body.approvals as Json[]).find((e) => e.run_id === emails && e.contact_id === ids[0])!;
    expect(first).toMatchObject({
      agent_id: emailer.id,
      action_index: 0,
      contact: { id: ids[0], first_name: "Ada", email: expect.any(String) },
      action: { index: 0, type: "email_message", status: "pending_approval", params: { to: expect.any(String) }, digest: expect.stringMatching(/^sha256:/), reasoning: expect.any(String) },
    });
    // Emails say when they would go out if approved now; notes reach nobody.
    expect(first.action.estimated_send_at).toMatch(/Z$/);
    expect((body.approvals as Json[]).find((e) => e.run_id === notes)!.action.estimated_send_at).toBeNull();
  });

  it("filters by agent, run, type and proposal time, and pages", async () => {
    const { key, noter, emails } = await twoRuns();
    expect((await inbox(key, `?agent_id=${noter.id}`)).approvals.every((e: Json) => e.agent_id === noter.id)).toBe(true);
    expect((await inbox(key, `?run_id=${emails}`)).total).toBe(3);
    expect((await inbox(key, "?type=create_note")).total).toBe(3);
    expect((await inbox(key, "?proposed_before=2000-01-01T00:00:00.000Z")).total).toBe(0);
    const page = await inbox(key, "?limit=4&offset=4");
    expect(page).toMatchObject({ total: 6, limit: 4, offset: 4 });
    expect(page.approvals).toHaveLength(2);
    expectError(await api("/v1/approvals?type=fax", { key }), 400, "validation_error");
    expectError(await api("/v1/approvals?limit=0", { key }), 400, "validation_error");
  });

  it("shows nothing of another workspace, and needs agents:read", async () => {
    const { key } = await twoRuns();
    const other = await makeWorkspace();
    expect((await inbox(other.key)).total).toBe(0);
    expect((await inbox(key)).total).toBe(6);
    const writer = await makeKey(other.workspaceId, ["agents:write"]);
    expectError(await api("/v1/approvals", { key: writer.key }), 403, "insufficient_scope");
  });

  it("stays equal to the run objects' truth through decisions, races, stops, cancels and deletions", async () => {
    const { key, workspaceId, ids, emails, notes, noter } = await twoRuns();
    // The unfiltered total is the workspace's count, which triggers keep with each entry.
    const expectCounted = async () => {
      const counts = await env.DB.prepare("SELECT (SELECT pending FROM inboxes WHERE workspace_id = ?1) AS pending, (SELECT count(*) FROM approvals WHERE workspace_id = ?1) AS entries").bind(workspaceId).first<Json>();
      expect(counts!.pending).toBe(counts!.entries);
      expect((await inbox(key)).total).toBe(counts!.entries);
    };
    // Races: approve and reject the same action at once; one wins.
    await Promise.all([approve(key, emails, ids[0]!, 0), reject(key, emails, ids[0]!, 0), approve(key, notes, ids[0]!, 0)]);
    // A stop: Bo replies, which takes his pending actions back in both runs.
    await sendEvents(key, [{ contact_id: ids[1], type: "email.replied" }]);
    await drive(emails);
    await drive(notes);
    expect(keysOf((await inbox(key)).approvals)).toStrictEqual(await pendingInRuns(key, [emails, notes]));
    expect((await inbox(key)).total).toBe(2);
    await expectCounted();

    // A cancel empties its run's entries; deleting the agent takes the rest with its runs.
    expect((await cancel(key, emails)).status).toBe(200);
    await drive(emails);
    expect(keysOf((await inbox(key)).approvals)).toStrictEqual(await pendingInRuns(key, [notes]));
    expect((await api(`/v1/agents/${noter.id}`, { method: "DELETE", key })).status).toBe(200);
    expect((await inbox(key)).total).toBe(0);
    expect((await env.DB.prepare("SELECT count(*) AS n FROM approvals WHERE run_id IN (?, ?)").bind(emails, notes).first<Json>())!.n).toBe(0);
    await expectCounted();
  });
});

describe("POST /v1/approvals/decide", () => {
  it("approves named actions, each by the single decision's rules, with per-item results", async () => {
    const { key, ids, emails, notes } = await twoRuns();
    const run = await getRun(key, emails);
    const digestOf = (contactId: string) => (run.contacts as Json[]).find((c) => c.contact_id === contactId)!.actions[0].digest;
    expect((await reject(key, emails, ids[2]!, 0)).status).toBe(200);
    const res = await api("/v1/approvals/decide", {
      method: "POST",
      key,
      body: {
        decision: "approve",
        reason: "Looks right",
        items: [
          { run_id: emails, contact_id: ids[0], action_index: 0, digest: digestOf(ids[0]!) },
          { run_id: emails, contact_id: ids[1], action_index: 0, digest: "sha256:stale" },
          { run_id: emails, contact_id: ids[2], action_index: 0 },
          { run_id: notes, contact_id: ids[0], action_index: 0 },
          { run_id: notes, contact_id: ids[0], action_index: 7 },
          { run_id: "run_nope", contact_id: ids[0], action_index: 0 },
        ],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ status: "success", decided: 2, dry_run: false });
    expect(res.body.results).toStrictEqual([
      { run_id: emails, contact_id: ids[0], action_index: 0, status: "completed" },
      { run_id: emails, contact_id: ids[1], action_index: 0, status: "pending_approval", code: "digest_mismatch", message: expect.any(String) },
      { run_id: emails, contact_id: ids[2], action_index: 0, status: "rejected", code: "action_not_pending", message: expect.any(String) },
      { run_id: notes, contact_id: ids[0], action_index: 0, status: "completed" },
      { run_id: notes, contact_id: ids[0], action_index: 7, status: "not_found", code: "not_found", message: "No such action" },
      { run_id: "run_nope", contact_id: ids[0], action_index: 0, status: "not_found", code: "not_found", message: expect.any(String) },
    ]);
    // Carried out as a single approval is: one delivery, the decision recorded with its reason.
    const decided = (await getRun(key, emails)).contacts.find((c: Json) => c.contact_id === ids[0]).actions[0];
    expect(decided).toMatchObject({ status: "completed", decision: { type: "approve", reason: "Looks right", edited: false } });
    const outbox = await api(`/v1/outbox?run_id=${emails}`, { key });
    expect(outbox.body.total).toBe(1);

    // The same decision again answers the same, and sends nothing more.
    const again = await api("/v1/approvals/decide", { method: "POST", key, body: { decision: "approve", items: [{ run_id: emails, contact_id: ids[0], action_index: 0 }] } });
    expect(again.body.results).toStrictEqual([{ run_id: emails, contact_id: ids[0], action_index: 0, status: "completed" }]);
    expect((await api(`/v1/outbox?run_id=${emails}`, { key })).body.total).toBe(1);
  });

  it("decides by filter, oldest first; a dry run decides nothing and says what would be", async () => {
    const { key, noter, notes } = await twoRuns();
    const dry = await api("/v1/approvals/decide", { method: "POST", key, body: { decision: "reject", filter: { agent_id: noter.id }, dry_run: true } });
    expect(dry.body).toMatchObject({ decided: 3, dry_run: true });
    expect(dry.body.results.map((r: Json) => r.status)).toStrictEqual(["rejected", "rejected", "rejected"]);
    await drive(notes);
    expect((await inbox(key, `?agent_id=${noter.id}`)).total).toBe(3);

    const res = await api("/v1/approvals/decide", { method: "POST", key, body: { decision: "reject", filter: { agent_id: noter.id }, reason: "Not this week" } });
    expect(res.body).toMatchObject({ decided: 3, dry_run: false });
    await drive(notes);
    expect((await inbox(key, `?agent_id=${noter.id}`)).total).toBe(0);
    const run = await getRun(key, notes);
    expect(run.status).toBe("completed");
    expect((run.contacts as Json[]).every((c) => c.status === "stopped" && c.stop_reason === "rejected")).toBe(true);
  });

  it("validates: one of items or filter, at most 1000 items, a known decision; needs agents:approve", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const item = { run_id: "run_x", contact_id: "ct_x", action_index: 0 };
    expectError(await api("/v1/approvals/decide", { method: "POST", key, body: { decision: "approve" } }), 400, "validation_error");
    expectError(await api("/v1/approvals/decide", { method: "POST", key, body: { decision: "approve", items: [item], filter: {} } }), 400, "validation_error");
    expectError(await api("/v1/approvals/decide", { method: "POST", key, body: { decision: "maybe", items: [item] } }), 400, "validation_error");
    expectError(await api("/v1/approvals/decide", { method: "POST", key, body: { decision: "approve", items: Array(1001).fill(item) } }), 400, "validation_error");
    const reader = await makeKey(workspaceId, ["agents:read"]);
    expectError(await api("/v1/approvals/decide", { method: "POST", key: reader.key, body: { decision: "approve", items: [item] } }), 403, "insufficient_scope");
  });

  it("honours Idempotency-Key: the repeat replays the first answer and decides nothing again", async () => {
    const { key, ids, emails } = await twoRuns();
    const request = { method: "POST", key, headers: { "Idempotency-Key": "bulk-1" }, body: { decision: "approve", items: [{ run_id: emails, contact_id: ids[1], action_index: 0 }] } };
    const first = await api("/v1/approvals/decide", request);
    const second = await api("/v1/approvals/decide", request);
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body).toStrictEqual(first.body);
    expect((await api(`/v1/outbox?run_id=${emails}`, { key })).body.total).toBe(1);
  });
});
