import { describe, expect, it } from "vitest";
import { SCOPES, type Scope } from "../src/lib/scopes";
import { api, expectError, makeAgent, makeKey, makeWorkspace, type ApiResponse, type Json } from "./helpers";
import { getRun, makeContacts, proposed, triggerAndWait } from "./run-helpers";


/** A workspace with an email agent and a run whose one contact has a pending email (action 0). */
async function ownedRun() {
  const owner = await makeWorkspace();
  const agent = await makeAgent(owner.key, { capabilities: ["email"] });
  const [contact] = await makeContacts(owner.key, 1);
  const { runId } = await triggerAndWait(owner.key, agent.id, { contact_ids: [contact!.id] }, proposed);
  return { owner, agentId: agent.id as string, contactId: contact!.id as string, runId };
}
type Fixture = Awaited<ReturnType<typeof ownedRun>>;

const actionPath = (f: Fixture, index: number | string = 0) => `/v1/agents/runs/${f.runId}/contacts/${f.contactId}/actions/${index}`;
const actionStatus = async (f: Fixture) => (await getRun(f.owner.key, f.runId)).contacts[0].actions[0].status as string;
const deliveryCount = async (key: string) => (await api("/v1/outbox", { key })).body.total as number;
const runTotal = async (f: Fixture) => (await api(`/v1/agents/${f.agentId}/runs`, { key: f.owner.key })).body.total as number;

type Route = {
  name: string;
  scope: Scope;
  call: (f: Fixture, key?: string) => Promise<ApiResponse>;
  /** Asserts the owner's run is as the fixture left it. */
  unchanged: (f: Fixture) => Promise<void>;
};

async function untouched(f: Fixture) {
  const run = await getRun(f.owner.key, f.runId);
  expect(run.status).toBe("awaiting_approval");
  expect(run.contacts[0].actions).toHaveLength(1);
  expect(run.contacts[0].actions[0].status).toBe("pending_approval");
  expect(await deliveryCount(f.owner.key)).toBe(0);
  expect(await runTotal(f)).toBe(1);
}

const ROUTES: Route[] = [
  {
    name: "POST /v1/agents/:id/trigger",
    scope: "agents:trigger",
    // A contact of its own: the fixture's is in the fixture's run, so not eligible again.
    call: async (f, key) => {
      const [fresh] = await makeContacts(f.owner.key, 1);
      return api(`/v1/agents/${f.agentId}/trigger`, { method: "POST", key, body: { contact_ids: [fresh!.id] } });
    },
    unchanged: untouched,
  },
  { name: "GET /v1/agents/:id/runs", scope: "agents:read", call: (f, key) => api(`/v1/agents/${f.agentId}/runs`, { key }), unchanged: untouched },
  { name: "GET /v1/agents/runs/:runId", scope: "agents:read", call: (f, key) => api(`/v1/agents/runs/${f.runId}`, { key }), unchanged: untouched },
  {
    name: "POST /v1/agents/runs/:runId/cancel",
    scope: "agents:trigger",
    call: (f, key) => api(`/v1/agents/runs/${f.runId}/cancel`, { method: "POST", key }),
    unchanged: untouched,
  },
  {
    name: "POST .../actions/:actionIndex/approve",
    scope: "agents:approve",
    call: (f, key) => api(`${actionPath(f)}/approve`, { method: "POST", key, body: {} }),
    unchanged: untouched,
  },
  {
    name: "POST .../actions/:actionIndex/reject",
    scope: "agents:approve",
    call: (f, key) => api(`${actionPath(f)}/reject`, { method: "POST", key, body: { reason: "not mine" } }),
    unchanged: untouched,
  },
  { name: "GET /v1/outbox", scope: "agents:read", call: (_f, key) => api("/v1/outbox", { key }), unchanged: untouched },
];

describe.each(ROUTES)("$name", (route) => {
  it("answers 401 without a key and changes nothing", async () => {
    const f = await ownedRun();
    expectError(await route.call(f), 401, "unauthorized");
    await route.unchanged(f);
  });

  it(`answers 403 insufficient_scope to a key without ${route.scope} and changes nothing`, async () => {
    const f = await ownedRun();
    const { key } = await makeKey(f.owner.workspaceId, SCOPES.filter((s) => s !== route.scope));
    const body = expectError(await route.call(f, key), 403, "insufficient_scope");
    expect(body.details).toEqual([{ path: "scope", message: expect.stringContaining(route.scope) }]);
    await route.unchanged(f);
  });

  it(`answers to a key with only ${route.scope}`, async () => {
    const f = await ownedRun();
    const { key } = await makeKey(f.owner.workspaceId, [route.scope]);
    const res = await route.call(f, key);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });
});

describe("another workspace's key", () => {
  const stranger = async () => (await makeWorkspace()).key;

  it.each(ROUTES.filter((r) => r.name !== "GET /v1/outbox"))("gets 404 from $name and changes nothing", async (route) => {
    const f = await ownedRun();
    expectError(await route.call(f, await stranger()), 404, "not_found");
    await route.unchanged(f);
  });

  it("cannot approve the owner's action: 404, the action stays pending and nothing is delivered", async () => {
    const f = await ownedRun();
    const key = await stranger();
    expectError(await api(`${actionPath(f)}/approve`, { method: "POST", key, body: { reason: "sure" } }), 404, "not_found");
    expect(await actionStatus(f)).toBe("pending_approval");
    expect(await deliveryCount(f.owner.key)).toBe(0);
    expect(await deliveryCount(key)).toBe(0);
  });

  it("does not see the owner's deliveries in its own outbox", async () => {
    const f = await ownedRun();
    const approved = await api(`${actionPath(f)}/approve`, { method: "POST", key: f.owner.key, body: {} });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(await deliveryCount(f.owner.key)).toBe(1);

    const theirs = await api("/v1/outbox", { key: await stranger() });
    expect(theirs.status).toBe(200);
    expect(theirs.body).toMatchObject({ deliveries: [], total: 0 });
    const filtered = await api(`/v1/outbox?run_id=${f.runId}`, { key: await stranger() });
    expect(filtered.body).toMatchObject({ deliveries: [], total: 0 });
  });
});

describe("malformed and unknown ids", () => {
  it.each(["abc", "run_", "run_00000000000000000000000000", "-1", "%20"])("answers 404 for run id %j on every run route", async (runId) => {
    const f = await ownedRun();
    const key = f.owner.key;
    const id = encodeURIComponent(decodeURIComponent(runId));
    expectError(await api(`/v1/agents/runs/${id}`, { key }), 404, "not_found");
    expectError(await api(`/v1/agents/runs/${id}/cancel`, { method: "POST", key }), 404, "not_found");
    for (const decision of ["approve", "reject"]) {
      expectError(await api(`/v1/agents/runs/${id}/contacts/${f.contactId}/actions/0/${decision}`, { method: "POST", key, body: {} }), 404, "not_found");
    }
    await untouched(f);
  });

  it.each(["abc", "-1", "1.5", "1e0", "99999", "7"])("answers 404 for action index %j", async (index) => {
    const f = await ownedRun();
    for (const decision of ["approve", "reject"]) {
      expectError(await api(`${actionPath(f, index)}/${decision}`, { method: "POST", key: f.owner.key, body: {} }), 404, "not_found");
    }
    await untouched(f);
  });

  it("answers 404 for a contact that is not in the run", async () => {
    const f = await ownedRun();
    const [other] = await makeContacts(f.owner.key, 1);
    for (const contactId of [other!.id, "ct_00000000000000000000000000", "abc"]) {
      for (const decision of ["approve", "reject"]) {
        const res = await api(`/v1/agents/runs/${f.runId}/contacts/${contactId}/actions/0/${decision}`, { method: "POST", key: f.owner.key, body: {} });
        expectError(res, 404, "not_found");
      }
    }
    await untouched(f);
  });

  it("answers 404 for a malformed or unknown agent id on trigger and list", async () => {
    const { key } = await makeWorkspace();
    const [contact] = await makeContacts(key, 1);
    for (const agentId of ["abc", "agt_00000000000000000000000000", "-1"]) {
      expectError(await api(`/v1/agents/${agentId}/trigger`, { method: "POST", key, body: { contact_ids: [contact!.id] } }), 404, "not_found");
      expectError(await api(`/v1/agents/${agentId}/runs`, { key }), 404, "not_found");
    }
  });
});

describe("a key of the owner with every scope", () => {
  it("reads the run and rejects its action: the control for the 404s above", async () => {
    const f = await ownedRun();
    const run: Json = await getRun(f.owner.key, f.runId);
    expect(run.contacts[0].actions[0]).toMatchObject({ index: 0, type: "email_message", status: "pending_approval" });
    const rejected = await api(`${actionPath(f)}/reject`, { method: "POST", key: f.owner.key, body: {} });
    expect(rejected.status, JSON.stringify(rejected.body)).toBe(200);
    expect(rejected.body.action.status).toBe("rejected");
  });
});
