import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, expectError, makeAgent, makeKey, makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, drive, getRun, makeContact, makeStepsAgent, waitForAction } from "./engine-helpers";

const MCP_URL = "https://cairn.test/mcp";
const TOOLS = [
  "approve_action",
  "get_agent",
  "get_run",
  "list_agents",
  "list_contacts",
  "list_identities",
  "list_runs",
  "record_events",
  "reject_action",
  "review_pending_actions",
  "trigger_agent",
  "upsert_contacts",
].sort();

/** The official MCP client, speaking to the Worker's own fetch with `key`; `modern` negotiates the 2026 revision. */
async function connect(key: string, modern = false): Promise<Client> {
  const client = new Client({ name: "cairn-test", version: "1.0.0" }, modern ? { versionNegotiation: { mode: "auto" } } : {});
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    fetch: (input, init) => exports.default.fetch(input instanceof Request ? input : String(input), init),
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  await client.connect(transport);
  return client;
}

/** Calls a tool and answers its JSON (the route's body) and whether it is a tool error. */
async function call(client: Client, name: string, args: Json = {}): Promise<{ isError: boolean; body: Json; text: string }> {
  const result = await client.callTool({ name, arguments: args });
  const text = (result.content as { type: string; text: string }[])[0]!.text;
  return { isError: result.isError === true, body: result.structuredContent as Json, text };
}

describe("POST /mcp", () => {
  it("lists exactly Cairn's twelve tools, each with an object input schema", async () => {
    const { key } = await makeWorkspace();
    for (const modern of [false, true]) {
      const client = await connect(key, modern);
      expect(client.getProtocolEra()).toBe(modern ? "modern" : "legacy");
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toStrictEqual(TOOLS);
      for (const tool of tools) expect(tool.inputSchema.type, tool.name).toBe("object");
      const approve = tools.find((t) => t.name === "approve_action")!;
      expect(Object.keys(approve.inputSchema.properties ?? {})).toEqual(expect.arrayContaining(["run_id", "contact_id", "action_index", "digest", "params"]));
      await client.close();
    }
  });

  it("answers list_agents with the key's workspace's agents only", async () => {
    const mine = await makeWorkspace();
    const other = await makeWorkspace();
    const agent = await makeAgent(mine.key, { name: "Mine" });
    await makeAgent(other.key, { name: "Theirs" });
    const client = await connect(mine.key);
    const { isError, body } = await call(client, "list_agents", { limit: 10 });
    expect(isError).toBe(false);
    expect(body).toMatchObject({ status: "success", total: 1, limit: 10, offset: 0 });
    expect(body.agents.map((a: Json) => a.id)).toStrictEqual([agent.id]);
    expect((await call(client, "get_agent", { agent_id: agent.id })).body.agent.name).toBe("Mine");
    // Another workspace's agent is not found, as over REST: a tool error, not a protocol error.
    const theirs = (await api("/v1/agents", { key: other.key })).body.agents[0];
    const missing = await call(client, "get_agent", { agent_id: theirs.id });
    expect(missing).toMatchObject({ isError: true, body: { code: "not_found" } });
  });

  it("triggers an agent, reviews its pending email grouped by agent, and approves it", async () => {
    const { workspaceId, key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP], { name: "Emailer" });
    const contact = await makeContact(key, { first_name: "Dana", company: "Globex" });
    const client = await connect(key);

    const triggered = await call(client, "trigger_agent", { agent_id: agent.id, contact_ids: [contact.id] });
    expect(triggered.isError, triggered.text).toBe(false);
    const runId = triggered.body.run_id as string;
    // The queue and the run object propose without timers in tests: drive them.
    await waitForAction(key, runId, contact.id, 0, "pending_approval");
    const { body: runBody } = await call(client, "get_run", { run_id: runId });
    expect(runBody.run.id).toBe(runId);

    const review = await call(client, "review_pending_actions", { run_id: runId });
    expect(review.isError, review.text).toBe(false);
    expect(review.body.total).toBe(1);
    expect(review.body.agents).toHaveLength(1);
    const group = review.body.agents[0];
    expect(group).toMatchObject({ agent_id: agent.id, name: "Emailer" });
    expect(group.pending).toHaveLength(1);
    const entry = group.pending[0];
    expect(entry).toMatchObject({
      run_id: runId,
      contact_id: contact.id,
      action_index: 0,
      contact: { id: contact.id, first_name: "Dana" },
      type: "email_message",
      params: { subject: "Hello Dana at Globex" },
      digest: expect.stringMatching(/^sha256:/),
      reasoning: expect.any(String),
      estimated_send_at: expect.stringMatching(/Z$/),
    });

    // A key without agents:approve is refused by the route, and the tool says so.
    const reader = await makeKey(workspaceId, ["agents:read"]);
    const readerClient = await connect(reader.key);
    const refused = await call(readerClient, "approve_action", { run_id: runId, contact_id: contact.id, action_index: 0 });
    expect(refused).toMatchObject({ isError: true, body: { status: "error", code: "insufficient_scope" } });
    expect(refused.text).toContain("agents:approve");
    expect(refused.text).toContain("insufficient_scope");

    const approved = await call(client, "approve_action", { run_id: runId, contact_id: contact.id, action_index: 0, digest: entry.digest });
    expect(approved.isError, approved.text).toBe(false);
    expect(approved.body.action.status).toBe("completed");
    const run = await getRun(key, runId);
    expect(run.contacts[0].actions[0].status).toBe("completed");
    await drive(runId); // the run object updates the inbox index as it goes on
    expect((await call(client, "review_pending_actions")).body).toMatchObject({ agents: [], total: 0 });
  });

  it("refuses arguments the route's schema refuses as a tool error, and creates through the routes", async () => {
    const { key } = await makeWorkspace();
    const client = await connect(key);
    const bad = await call(client, "list_contacts", { limit: 500 });
    expect(bad.isError).toBe(true);
    expect(bad.text).toMatch(/limit/);
    const upserted = await call(client, "upsert_contacts", { contacts: [{ email: "ada@example.com", first_name: "Ada" }] });
    expect(upserted.isError, upserted.text).toBe(false);
    expect((await call(client, "list_contacts", { search: "ada@example" })).body.contacts.map((c: Json) => c.first_name)).toStrictEqual(["Ada"]);
    const recorded = await call(client, "record_events", { events: [{ email: "ada@example.com", type: "page_view" }] });
    expect(recorded.isError, recorded.text).toBe(false);
    expect((await call(client, "list_identities")).body).toMatchObject({ status: "success", total: 0 });
    const missing = await call(client, "trigger_agent", { agent_id: "agt_nope" });
    expect(missing).toMatchObject({ isError: true, body: { code: "not_found" } });
  });

  it("is 401 without a valid key and 405 for GET and DELETE, in Cairn's error envelope", async () => {
    const init = { method: "POST", body: { jsonrpc: "2.0", id: 1, method: "tools/list" } };
    expectError(await api("/mcp", init), 401, "unauthorized");
    expectError(await api("/mcp", { ...init, key: "cairn_sk_not_a_key" }), 401, "unauthorized");
    const { key } = await makeWorkspace();
    for (const method of ["GET", "DELETE"]) {
      const res = await api("/mcp", { method, key });
      expectError(res, 405, "method_not_allowed");
      expect(res.headers.get("Allow")).toBe("POST");
    }
  });
});
