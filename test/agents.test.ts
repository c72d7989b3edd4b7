import { describe, expect, it } from "vitest";
import type { Scope } from "../src/lib/scopes";
import { api, expectError, makeAgent, makeKey, makeWorkspace, type Json } from "./helpers";

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const AGENT_ID = /^agt_[0-9A-HJKMNP-TV-Z]{26}$/;
const DEFAULT_STOP_ON = ["reply", "unsubscribe", "bounce"];

const patch = (key: string, id: string, body: unknown) => api(`/v1/agents/${id}`, { method: "PATCH", key, body });
const getAgent = (key: string, id: string) => api(`/v1/agents/${id}`, { key });
const ids = (res: { body: Json }) => (res.body.agents as Json[]).map((a) => a.id);

async function makeIdentity(key: string): Promise<string> {
  const res = await api("/v1/identities", { method: "POST", key, body: { first_name: "Sam" } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.identity.id;
}

describe("POST /v1/agents", () => {
  it("returns 201 with the agent and every default filled in", async () => {
    const { key } = await makeWorkspace();
    const res = await api("/v1/agents", { method: "POST", key, body: { name: "Bare" } });
    expect(res.status).toBe(201);
    expect(res.body).toStrictEqual({
      status: "success",
      agent: {
        id: expect.stringMatching(AGENT_ID),
        name: "Bare",
        description: null,
        playbook_template: null,
        playbook: null,
        capabilities: [],
        identity_id: null,
        monitoring: { timezone: "UTC", max_contacts_per_run: 50, cooldown_days: 30 },
        llm_config: { provider: "builtin" },
        enabled: false,
        created_at: expect.stringMatching(ISO_MS),
        updated_at: expect.stringMatching(ISO_MS),
        last_run_at: null,
      },
    });
    expect(res.body.agent.updated_at).toBe(res.body.agent.created_at);
  });

  it("echoes every field it was given, with nested defaults filled", async () => {
    const { key } = await makeWorkspace();
    const body = {
      name: "Full",
      description: "Does everything",
      capabilities: ["email", "notes"],
      identity_id: await makeIdentity(key),
      playbook: {
        playbook_md: "# Plan",
        steps: [
          { id: "hello", action: "email_message", template: { subject: "Hi {{first_name}}", body: "Hello" } },
          { action: "create_note", wait: { hours: 4 }, require_approval: false, instructions: "Summarise", template: { note: "Sent" } },
        ],
        stop_on: ["reply"],
      },
      monitoring: {
        filter: { lifecycle_stage: ["lead", "mql"], properties: { country: "US" }, event: { type: "page_view" }, not_contacted_within_days: 3 },
        schedule_cron: "0 9 * * 1-5",
        timezone: "Europe/Berlin",
        max_contacts_per_run: 10,
      },
      llm_config: { provider: "anthropic", model: "claude", temperature: 0.2, max_tokens: 512 },
      enabled: true,
    };
    const res = await api("/v1/agents", { method: "POST", key, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.agent).toStrictEqual({
      ...body,
      id: expect.stringMatching(AGENT_ID),
      playbook_template: null,
      playbook: {
        ...body.playbook,
        steps: [
          { ...body.playbook.steps[0], require_approval: true },
          { ...body.playbook.steps[1], id: "step_2" },
        ],
      },
      monitoring: { ...body.monitoring, filter: { ...body.monitoring.filter, event: { type: "page_view", min_count: 1 } }, cooldown_days: 30 },
      created_at: expect.stringMatching(ISO_MS),
      updated_at: expect.stringMatching(ISO_MS),
      last_run_at: null,
    });
  });
});

describe("GET /v1/agents/:id", () => {
  it("returns the agent exactly as it was created", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { playbook_template: "cold_outreach", capabilities: undefined });
    const res = await getAgent(key, agent.id);
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", agent });
  });

  it("returns 404 for an unknown or malformed id", async () => {
    const { key } = await makeWorkspace();
    expectError(await getAgent(key, "agt_01JABCDEFGHJKMNPQRSTVWXYZ0"), 404, "not_found");
    expectError(await getAgent(key, "nope"), 404, "not_found");
    expectError(await getAgent(key, "x".repeat(200)), 404, "not_found");
  });
});

describe("GET /v1/agents", () => {
  it("lists the workspace's agents newest first in the list envelope", async () => {
    const { key } = await makeWorkspace();
    const first = await makeAgent(key, { name: "one" });
    const second = await makeAgent(key, { name: "two" });
    const third = await makeAgent(key, { name: "three" });
    const res = await api("/v1/agents", { key });
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", agents: [third, second, first], total: 3, limit: 20, offset: 0 });
  });

  it("filters by enabled", async () => {
    const { key } = await makeWorkspace();
    const on = await makeAgent(key, { enabled: true });
    const off = await makeAgent(key, { enabled: false });
    const unset = await makeAgent(key);
    const enabled = await api("/v1/agents?enabled=true", { key });
    expect(ids(enabled)).toEqual([on.id]);
    expect(enabled.body.total).toBe(1);
    const disabled = await api("/v1/agents?enabled=false", { key });
    expect(ids(disabled)).toEqual([unset.id, off.id]);
    expect(disabled.body.total).toBe(2);
  });

  it("filters by playbook_template", async () => {
    const { key } = await makeWorkspace();
    const cold = await makeAgent(key, { playbook_template: "cold_outreach", capabilities: undefined });
    const pricing = await makeAgent(key, { playbook_template: "pricing_visitor_followup" });
    await makeAgent(key);
    const res = await api("/v1/agents?playbook_template=cold_outreach", { key });
    expect(ids(res)).toEqual([cold.id]);
    expect(res.body.total).toBe(1);
    expect(ids(await api("/v1/agents?playbook_template=pricing_visitor_followup", { key }))).toEqual([pricing.id]);
  });

  it.each(["enabled=yes", "enabled=1", "playbook_template=nope", "limit=0", "limit=101", "limit=abc", "offset=-1"])(
    "rejects the query %s with 400",
    async (query) => {
      const { key } = await makeWorkspace();
      const body = expectError(await api(`/v1/agents?${query}`, { key }), 400, "validation_error");
      expect(body.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: query.split("=")[0] })]));
    },
  );

  it("pages with limit and offset and reports the full total", async () => {
    const { key } = await makeWorkspace();
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.unshift((await makeAgent(key, { name: `agent ${i}` })).id);

    const page1 = await api("/v1/agents?limit=2", { key });
    expect(page1.body).toMatchObject({ total: 5, limit: 2, offset: 0 });
    const page2 = await api("/v1/agents?limit=2&offset=2", { key });
    expect(page2.body).toMatchObject({ total: 5, limit: 2, offset: 2 });
    const page3 = await api("/v1/agents?limit=2&offset=4", { key });
    expect(page3.body).toMatchObject({ total: 5, limit: 2, offset: 4 });
    expect([...ids(page1), ...ids(page2), ...ids(page3)]).toEqual(made);

    const past = await api("/v1/agents?offset=10", { key });
    expect(past.body).toMatchObject({ agents: [], total: 5, offset: 10 });
  });
});

describe("scopes", () => {
  type Route = { method: string; path: (id: string) => string; scope: Scope; body?: Json; ok: number };
  const routes: Route[] = [
    { method: "GET", path: () => "/v1/agents", scope: "agents:read", ok: 200 },
    { method: "POST", path: () => "/v1/agents", scope: "agents:write", body: { name: "Scoped" }, ok: 201 },
    { method: "GET", path: (id) => `/v1/agents/${id}`, scope: "agents:read", ok: 200 },
    { method: "PATCH", path: (id) => `/v1/agents/${id}`, scope: "agents:write", body: { name: "Renamed" }, ok: 200 },
    { method: "DELETE", path: (id) => `/v1/agents/${id}`, scope: "agents:write", ok: 200 },
  ];
  const ALL_AGENT_SCOPES: Scope[] = ["agents:read", "agents:write", "agents:trigger", "agents:approve"];

  describe.each(routes)("$method $scope", (route) => {
    it("returns 401 without a key", async () => {
      const { key } = await makeWorkspace();
      const agent = await makeAgent(key);
      expectError(await api(route.path(agent.id), { method: route.method, body: route.body }), 401, "unauthorized");
    });

    it("returns 403 insufficient_scope naming the scope when the key lacks it", async () => {
      const { key, workspaceId } = await makeWorkspace();
      const agent = await makeAgent(key);
      const { key: weak } = await makeKey(workspaceId, ALL_AGENT_SCOPES.filter((s) => s !== route.scope));
      const res = await api(route.path(agent.id), { method: route.method, key: weak, body: route.body });
      const body = expectError(res, 403, "insufficient_scope");
      expect(body.details).toEqual([expect.objectContaining({ message: expect.stringContaining(route.scope) })]);
      expect(body.error).toContain(route.scope);
      // Nothing happened: the agent is still there, unchanged.
      expect((await getAgent(key, agent.id)).body.agent).toEqual(agent);
    });

    it("succeeds with a key holding only that scope", async () => {
      const { key, workspaceId } = await makeWorkspace();
      const agent = await makeAgent(key);
      const { key: narrow } = await makeKey(workspaceId, [route.scope]);
      const res = await api(route.path(agent.id), { method: route.method, key: narrow, body: route.body });
      expect(res.status, JSON.stringify(res.body)).toBe(route.ok);
      expect(res.body.status).toBe("success");
    });
  });
});

describe("another workspace's agent", () => {
  it("is 404 on GET, PATCH and DELETE, stays unchanged and is not listed", async () => {
    const owner = await makeWorkspace();
    const other = await makeWorkspace();
    const agent = await makeAgent(owner.key, { description: "mine" });

    expectError(await getAgent(other.key, agent.id), 404, "not_found");
    expectError(await patch(other.key, agent.id, { name: "stolen", description: null }), 404, "not_found");
    expectError(await api(`/v1/agents/${agent.id}`, { method: "DELETE", key: other.key }), 404, "not_found");

    const list = await api("/v1/agents", { key: other.key });
    expect(list.body).toMatchObject({ agents: [], total: 0 });
    const after = await getAgent(owner.key, agent.id);
    expect(after.status).toBe(200);
    expect(after.body.agent).toStrictEqual(agent);
  });
});

describe("playbook templates", () => {
  it("cold_outreach fills a three-step email and LinkedIn playbook, capabilities and monitoring", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { playbook_template: "cold_outreach", capabilities: undefined });
    expect(agent.playbook_template).toBe("cold_outreach");
    expect(agent.capabilities).toEqual(["email", "linkedin"]);
    expect(agent.playbook.playbook_md).toEqual(expect.any(String));
    expect(agent.playbook.stop_on).toEqual(DEFAULT_STOP_ON);
    const steps = agent.playbook.steps as Json[];
    expect(steps.map((s) => s.action)).toEqual(["email_message", "linkedin_connection", "email_message"]);
    expect(steps[0]!.wait).toBeUndefined();
    expect(steps[1]!.wait).toEqual(expect.any(Object));
    expect(steps[2]!.wait).toEqual(expect.any(Object));
    for (const step of steps) {
      expect(step.id).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(step.require_approval).toBe(true);
    }
    expect(new Set(steps.map((s) => s.id)).size).toBe(3);
    expect(agent.monitoring).toMatchObject({ timezone: "UTC", max_contacts_per_run: 50, cooldown_days: 30 });
  });

  it("pricing_visitor_followup fills one email step and a pricing page-view filter", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { playbook_template: "pricing_visitor_followup", capabilities: undefined });
    expect(agent.capabilities).toEqual(["email"]);
    expect(agent.playbook.steps).toHaveLength(1);
    expect(agent.playbook.steps[0]).toMatchObject({ action: "email_message", require_approval: true });
    expect(agent.monitoring).toMatchObject({
      filter: { event: { type: "page_view", url_contains: "/pricing", min_count: 2, within_days: 7 } },
      timezone: "UTC",
      max_contacts_per_run: 50,
      cooldown_days: 30,
    });
  });

  it("lets explicit fields override the template's, nested objects whole", async () => {
    const { key } = await makeWorkspace();
    const playbook = { playbook_md: "# Mine", steps: [{ id: "only", action: "create_note" }] };
    const agent = await makeAgent(key, {
      playbook_template: "pricing_visitor_followup",
      capabilities: ["email", "notes"],
      playbook,
      monitoring: { max_contacts_per_run: 10 },
    });
    expect(agent.playbook_template).toBe("pricing_visitor_followup");
    expect(agent.capabilities).toEqual(["email", "notes"]);
    expect(agent.playbook).toEqual({
      playbook_md: "# Mine",
      steps: [{ id: "only", action: "create_note", require_approval: true }],
      stop_on: DEFAULT_STOP_ON,
    });
    expect(agent.monitoring).toStrictEqual({ timezone: "UTC", max_contacts_per_run: 10, cooldown_days: 30 });
  });

  it("keeps the template's playbook under explicit capabilities that cover it", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { playbook_template: "cold_outreach", capabilities: ["email", "linkedin", "notes"] });
    expect(agent.capabilities).toEqual(["email", "linkedin", "notes"]);
    expect(agent.playbook.steps).toHaveLength(3);
  });

  it("rejects explicit capabilities that lack a template step's capability", async () => {
    const { key } = await makeWorkspace();
    const res = await api("/v1/agents", { method: "POST", key, body: { name: "x", playbook_template: "cold_outreach", capabilities: ["email"] } });
    const body = expectError(res, 400, "validation_error");
    expect(body.details).toEqual([expect.objectContaining({ path: "playbook.steps.1.action", message: expect.stringContaining("linkedin") })]);
    expect((await api("/v1/agents", { key })).body.total).toBe(0);
  });
});

describe("PATCH /v1/agents/:id", () => {
  it("merges top-level fields and leaves the others unchanged", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { description: "before", llm_config: { provider: "anthropic", temperature: 1 } });
    const res = await patch(key, agent.id, { name: "After", enabled: true });
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({
      status: "success",
      agent: { ...agent, name: "After", enabled: true, updated_at: expect.stringMatching(ISO_MS) },
      // No Anthropic key in this deployment: the answer says so.
      warnings: [{ code: "provider_not_configured", message: expect.stringContaining("anthropic") }],
    });
    expect(Date.parse(res.body.agent.updated_at)).toBeGreaterThanOrEqual(Date.parse(agent.updated_at));
    expect(Date.parse(res.body.agent.updated_at)).toBeGreaterThanOrEqual(Date.parse(agent.created_at));
    expect((await getAgent(key, agent.id)).body.agent).toStrictEqual(res.body.agent);
  });

  it("replaces monitoring whole, so unsent members return to their defaults", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, {
      monitoring: { filter: { lifecycle_stage: ["lead"] }, schedule_cron: "0 * * * *", timezone: "Europe/Berlin", max_contacts_per_run: 20 },
    });
    const res = await patch(key, agent.id, { monitoring: { max_contacts_per_run: 5 } });
    expect(res.status).toBe(200);
    expect(res.body.agent.monitoring).toStrictEqual({ timezone: "UTC", max_contacts_per_run: 5, cooldown_days: 30 });
  });

  it("replaces llm_config whole", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { llm_config: { provider: "anthropic", temperature: 0.5, max_tokens: 100 } });
    const res = await patch(key, agent.id, { llm_config: { provider: "openai" } });
    expect(res.body.agent.llm_config).toStrictEqual({ provider: "openai" });
  });

  it("replaces playbook whole", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { playbook: { playbook_md: "# A", steps: [{ action: "email_message" }], stop_on: ["reply"] } });
    const res = await patch(key, agent.id, { playbook: { playbook_md: "# B" } });
    expect(res.body.agent.playbook).toStrictEqual({ playbook_md: "# B", stop_on: DEFAULT_STOP_ON });
  });

  it("clears description and identity_id with null", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { description: "text", identity_id: await makeIdentity(key) });
    const res = await patch(key, agent.id, { description: null, identity_id: null });
    expect(res.status).toBe(200);
    expect(res.body.agent).toMatchObject({ description: null, identity_id: null, name: agent.name });
  });

  it("rejects an empty body with 400", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    expectError(await patch(key, agent.id, {}), 400, "validation_error");
  });

  it("rejects a change that leaves steps without their capability and changes nothing", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { playbook_template: "cold_outreach", capabilities: undefined });
    const res = await patch(key, agent.id, { name: "Renamed", capabilities: ["email"] });
    const body = expectError(res, 400, "validation_error");
    expect(body.details).toEqual([expect.objectContaining({ path: "playbook.steps.1.action" })]);
    expect((await getAgent(key, agent.id)).body.agent).toStrictEqual(agent);
  });

  it("fills a newly set playbook_template's fields that the request does not send", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["email"] });
    const res = await patch(key, agent.id, { playbook_template: "cold_outreach", monitoring: { max_contacts_per_run: 7 } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.agent.playbook_template).toBe("cold_outreach");
    expect(res.body.agent.capabilities).toEqual(["email", "linkedin"]);
    expect(res.body.agent.playbook.steps.map((s: Json) => s.action)).toEqual(["email_message", "linkedin_connection", "email_message"]);
    expect(res.body.agent.monitoring).toStrictEqual({ timezone: "UTC", max_contacts_per_run: 7, cooldown_days: 30 });
  });

  it("validates the body like create does", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const body = expectError(await patch(key, agent.id, { name: "", llm_config: { provider: "openai", foo: 1 } }), 400, "validation_error");
    expect(body.details.map((d: Json) => d.path).sort()).toEqual(["llm_config.foo", "name"]);
  });

  it("returns 404 for an unknown agent", async () => {
    const { key } = await makeWorkspace();
    expectError(await patch(key, "agt_01JABCDEFGHJKMNPQRSTVWXYZ0", { name: "x" }), 404, "not_found");
  });
});

describe("DELETE /v1/agents/:id", () => {
  it("returns 200, after which the agent is 404 and a second delete is 404", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const keep = await makeAgent(key);
    const res = await api(`/v1/agents/${agent.id}`, { method: "DELETE", key });
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", deleted: true, id: agent.id });

    expectError(await getAgent(key, agent.id), 404, "not_found");
    expectError(await api(`/v1/agents/${agent.id}`, { method: "DELETE", key }), 404, "not_found");
    expect(ids(await api("/v1/agents", { key }))).toEqual([keep.id]);
  });
});
