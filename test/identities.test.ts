import { describe, expect, it } from "vitest";
import { SCOPES, type Scope } from "../src/lib/scopes";
import { api, expectError, makeAgent, makeKey, makeWorkspace, type Json } from "./helpers";

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const IDENTITY_ID = /^id_[0-9A-HJKMNP-TV-Z]{26}$/;
const IDENTITY_KEYS = [
  "created_at",
  "daily_limit",
  "email_address",
  "first_name",
  "id",
  "last_name",
  "linkedin_url",
  "role",
  "send_window",
  "updated_at",
];

async function makeIdentity(key: string, overrides: Json = {}): Promise<Json> {
  const res = await api("/v1/identities", { method: "POST", key, body: { first_name: "Sam", ...overrides } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.identity;
}

const create = (key: string, body: unknown) => api("/v1/identities", { method: "POST", key, body });
const getIdentity = (key: string, id: string) => api(`/v1/identities/${id}`, { key });
const patch = (key: string, id: string, body: unknown) => api(`/v1/identities/${id}`, { method: "PATCH", key, body });
const remove = (key: string, id: string) => api(`/v1/identities/${id}`, { method: "DELETE", key });
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);

describe("POST /v1/identities", () => {
  it("returns 201 with defaults: daily_limit 50, send_window null", async () => {
    const { key } = await makeWorkspace();
    const res = await create(key, { first_name: "Sam" });
    expect(res.status).toBe(201);
    expect(res.body).toStrictEqual({
      status: "success",
      identity: {
        id: expect.stringMatching(IDENTITY_ID),
        first_name: "Sam",
        last_name: null,
        role: null,
        email_address: null,
        linkedin_url: null,
        daily_limit: 50,
        send_window: null,
        created_at: expect.stringMatching(ISO_MS),
        updated_at: expect.stringMatching(ISO_MS),
      },
    });
  });

  it("echoes every field it was given", async () => {
    const { key } = await makeWorkspace();
    const body = {
      first_name: "Sam",
      last_name: "Reed",
      role: "Account Executive",
      email_address: "sam@acme.example",
      linkedin_url: "https://www.linkedin.com/in/sam",
      daily_limit: 120,
      send_window: { start: "08:30", end: "18:00", days: [1, 3, 5], timezone: "America/New_York" },
    };
    const res = await create(key, body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.identity).toStrictEqual({
      ...body,
      id: expect.stringMatching(IDENTITY_ID),
      created_at: expect.stringMatching(ISO_MS),
      updated_at: expect.stringMatching(ISO_MS),
    });
  });

  it("fills send_window defaults when sent {}", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key, { send_window: {} });
    expect(identity.send_window).toStrictEqual({ start: "09:00", end: "17:00", days: [1, 2, 3, 4, 5], timezone: "UTC" });
  });

  it("never returns credential-like fields, even when sent", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key, { email_address: "sam@acme.example" });
    expect(Object.keys(identity).sort()).toEqual(IDENTITY_KEYS);
    const sneaky = expectError(await create(key, { first_name: "Sam", smtp_password: "hunter2", api_token: "t" }), 400, "validation_error");
    expect(paths(sneaky).sort()).toEqual(["api_token", "smtp_password"]);
    expect(JSON.stringify(sneaky)).not.toContain("hunter2");
  });

  it.each([{}, { first_name: "" }, { first_name: "   " }, { first_name: null }])("requires first_name (%j)", async (body) => {
    const { key } = await makeWorkspace();
    const err = expectError(await create(key, body), 400, "validation_error");
    expect(paths(err)).toEqual(["first_name"]);
  });

  it.each([0, 10001, 1.5, "50"])("rejects daily_limit %j", async (daily_limit) => {
    const { key } = await makeWorkspace();
    const err = expectError(await create(key, { first_name: "Sam", daily_limit }), 400, "validation_error");
    expect(paths(err)).toEqual(["daily_limit"]);
  });

  it.each([1, 10000])("accepts daily_limit %d", async (daily_limit) => {
    const { key } = await makeWorkspace();
    expect((await makeIdentity(key, { daily_limit })).daily_limit).toBe(daily_limit);
  });

  it.each([
    ["start", { start: "9:00" }],
    ["start", { start: "24:00" }],
    ["start", { start: "12:60" }],
    ["end", { end: "9am" }],
    ["end", { start: "10:00", end: "10:00" }],
    ["end", { start: "17:00", end: "09:00" }],
    ["days.0", { days: [0] }],
    ["days.0", { days: [8] }],
    ["days", { days: [1, 1] }],
    ["days", { days: [] }],
    ["timezone", { timezone: "Mars/Olympus" }],
    ["timezone", { timezone: "+02:00" }],
    ["colour", { colour: "blue" }],
  ])("rejects send_window.%s for %j", async (path, window) => {
    const { key } = await makeWorkspace();
    const err = expectError(await create(key, { first_name: "Sam", send_window: window }), 400, "validation_error");
    expect(paths(err)).toEqual([`send_window.${path}`]);
    expect((await api("/v1/identities", { key })).body.total).toBe(0);
  });

  it.each([
    ["email_address", "not-an-email"],
    ["linkedin_url", "javascript:alert(1)"],
    ["role", "x".repeat(201)],
  ])("rejects an invalid %s", async (field, value) => {
    const { key } = await makeWorkspace();
    const err = expectError(await create(key, { first_name: "Sam", [field]: value }), 400, "validation_error");
    expect(paths(err)).toEqual([field]);
  });
});

describe("GET /v1/identities", () => {
  it("lists the workspace's identities newest first", async () => {
    const { key } = await makeWorkspace();
    const other = await makeWorkspace();
    const a = await makeIdentity(key, { first_name: "A" });
    const b = await makeIdentity(key, { first_name: "B" });
    await makeIdentity(other.key);
    const res = await api("/v1/identities", { key });
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", identities: [b, a], total: 2, limit: 20, offset: 0 });
    for (const identity of res.body.identities) expect(Object.keys(identity).sort()).toEqual(IDENTITY_KEYS);
  });

  it("pages and rejects out-of-range limits", async () => {
    const { key } = await makeWorkspace();
    const a = await makeIdentity(key);
    await makeIdentity(key);
    const res = await api("/v1/identities?limit=1&offset=1", { key });
    expect(res.body).toMatchObject({ identities: [a], total: 2, limit: 1, offset: 1 });
    expectError(await api("/v1/identities?limit=0", { key }), 400, "validation_error");
    expectError(await api("/v1/identities?limit=101", { key }), 400, "validation_error");
  });

  it("GET /:id returns the identity with exactly its public keys", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key, { send_window: {} });
    const res = await getIdentity(key, identity.id);
    expect(res.body).toStrictEqual({ status: "success", identity });
    expect(Object.keys(res.body.identity).sort()).toEqual(IDENTITY_KEYS);
  });

  it("GET /:id of an unknown id is 404", async () => {
    const { key } = await makeWorkspace();
    expectError(await getIdentity(key, "id_01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "not_found");
    expectError(await getIdentity(key, "nope"), 404, "not_found");
  });
});

describe("PATCH /v1/identities/:id", () => {
  it("merges: fields it leaves out keep their values", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key, { last_name: "Reed", role: "AE", daily_limit: 80 });
    const res = await patch(key, identity.id, { role: "VP Sales" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toStrictEqual({
      status: "success",
      identity: { ...identity, role: "VP Sales", updated_at: expect.stringMatching(ISO_MS) },
    });
  });

  it("replaces send_window whole, filling its defaults, and null clears it", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key, { send_window: { start: "07:00", end: "12:00", days: [6, 7], timezone: "Asia/Tokyo" } });
    const replaced = await patch(key, identity.id, { send_window: { end: "20:00" } });
    expect(replaced.body.identity.send_window).toStrictEqual({ start: "09:00", end: "20:00", days: [1, 2, 3, 4, 5], timezone: "UTC" });
    const cleared = await patch(key, identity.id, { send_window: null, last_name: null });
    expect(cleared.body.identity).toMatchObject({ send_window: null, last_name: null, first_name: "Sam" });
  });

  it("rejects an empty body, a null first_name and an invalid window, changing nothing", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key);
    expectError(await patch(key, identity.id, {}), 400, "validation_error");
    expect(paths(expectError(await patch(key, identity.id, { first_name: null }), 400, "validation_error"))).toEqual(["first_name"]);
    const err = expectError(await patch(key, identity.id, { send_window: { start: "18:00", end: "08:00" } }), 400, "validation_error");
    expect(paths(err)).toEqual(["send_window.end"]);
    expect(paths(expectError(await patch(key, identity.id, { daily_limit: 0 }), 400, "validation_error"))).toEqual(["daily_limit"]);
    expect((await getIdentity(key, identity.id)).body.identity).toStrictEqual(identity);
  });
});

describe("DELETE /v1/identities/:id", () => {
  it("deletes an unused identity; GET is then 404", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key);
    const res = await remove(key, identity.id);
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", deleted: true, id: identity.id });
    expectError(await getIdentity(key, identity.id), 404, "not_found");
    expectError(await remove(key, identity.id), 404, "not_found");
  });

  it("is 409 in_use while an agent sends as it, and 200 once the agent lets go", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key);
    const agent = await makeAgent(key, { identity_id: identity.id });
    expect(agent.identity_id).toBe(identity.id);

    const body = expectError(await remove(key, identity.id), 409, "in_use");
    expect(JSON.stringify(body.details)).toContain(agent.id);
    expect((await getIdentity(key, identity.id)).status).toBe(200);

    const released = await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { identity_id: null } });
    expect(released.status, JSON.stringify(released.body)).toBe(200);
    expect(released.body.agent.identity_id).toBeNull();
    expect((await remove(key, identity.id)).status).toBe(200);
    expectError(await getIdentity(key, identity.id), 404, "not_found");
  });
});

describe("agents' identity_id", () => {
  it("accepts the workspace's own identity on create and PATCH", async () => {
    const { key } = await makeWorkspace();
    const first = await makeIdentity(key);
    const second = await makeIdentity(key);
    const agent = await makeAgent(key, { identity_id: first.id });
    const res = await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { identity_id: second.id } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.agent.identity_id).toBe(second.id);
  });

  it.each(["unknown", "another workspace's"])("rejects an %s identity on create with 400 at identity_id", async (kind) => {
    const { key } = await makeWorkspace();
    const identityId =
      kind === "unknown" ? "id_01ARZ3NDEKTSV4RRFFQ69G5FAV" : (await makeIdentity((await makeWorkspace()).key)).id;
    const res = await api("/v1/agents", { method: "POST", key, body: { name: "A", identity_id: identityId } });
    expect(paths(expectError(res, 400, "validation_error"))).toEqual(["identity_id"]);
    expect((await api("/v1/agents", { key })).body.total).toBe(0);
  });

  it.each(["unknown", "another workspace's"])("rejects an %s identity on PATCH with 400 at identity_id", async (kind) => {
    const { key } = await makeWorkspace();
    const mine = await makeIdentity(key);
    const agent = await makeAgent(key, { identity_id: mine.id });
    const identityId =
      kind === "unknown" ? "id_01ARZ3NDEKTSV4RRFFQ69G5FAV" : (await makeIdentity((await makeWorkspace()).key)).id;
    const res = await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { identity_id: identityId } });
    expect(paths(expectError(res, 400, "validation_error"))).toEqual(["identity_id"]);
    expect((await api(`/v1/agents/${agent.id}`, { key })).body.agent.identity_id).toBe(mine.id);
  });

  it("rejects an identity deleted after the agent stopped using it", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key);
    await remove(key, identity.id);
    const res = await api("/v1/agents", { method: "POST", key, body: { name: "A", identity_id: identity.id } });
    expect(paths(expectError(res, 400, "validation_error"))).toEqual(["identity_id"]);
  });
});

describe("identities: authentication, scopes and workspaces", () => {
  const routes: { name: string; scope: Scope; call: (key: string | undefined, id: string) => ReturnType<typeof api> }[] = [
    { name: "GET /v1/identities", scope: "identities:read", call: (key) => api("/v1/identities", { key }) },
    { name: "GET /v1/identities/:id", scope: "identities:read", call: (key, id) => api(`/v1/identities/${id}`, { key }) },
    { name: "POST /v1/identities", scope: "identities:write", call: (key) => api("/v1/identities", { method: "POST", key, body: { first_name: "X" } }) },
    { name: "PATCH /v1/identities/:id", scope: "identities:write", call: (key, id) => api(`/v1/identities/${id}`, { method: "PATCH", key, body: { first_name: "Hacked" } }) },
    { name: "DELETE /v1/identities/:id", scope: "identities:write", call: (key, id) => api(`/v1/identities/${id}`, { method: "DELETE", key }) },
  ];

  it.each(routes)("$name without a key is 401", async ({ call }) => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key);
    expectError(await call(undefined, identity.id), 401, "unauthorized");
    expect((await getIdentity(key, identity.id)).body.identity).toStrictEqual(identity);
  });

  it.each(routes)("$name without $scope is 403 insufficient_scope", async ({ call, scope }) => {
    const { key, workspaceId } = await makeWorkspace();
    const identity = await makeIdentity(key);
    const limited = await makeKey(workspaceId, SCOPES.filter((s) => s !== scope));
    const body = expectError(await call(limited.key, identity.id), 403, "insufficient_scope");
    expect(JSON.stringify(body.details)).toContain(scope);
    expect((await getIdentity(key, identity.id)).body.identity).toStrictEqual(identity);
    expect((await api("/v1/identities", { key })).body.total).toBe(1);
  });

  it("another workspace's identity is 404 on GET, PATCH and DELETE and stays unchanged", async () => {
    const owner = await makeWorkspace();
    const stranger = await makeWorkspace();
    const identity = await makeIdentity(owner.key, { role: "AE" });
    expectError(await getIdentity(stranger.key, identity.id), 404, "not_found");
    expectError(await patch(stranger.key, identity.id, { role: "Hacked" }), 404, "not_found");
    expectError(await remove(stranger.key, identity.id), 404, "not_found");
    expect((await getIdentity(owner.key, identity.id)).body.identity).toStrictEqual(identity);
  });

  it("another workspace's DELETE of an in-use identity is 404, not 409", async () => {
    const owner = await makeWorkspace();
    const stranger = await makeWorkspace();
    const identity = await makeIdentity(owner.key);
    await makeAgent(owner.key, { identity_id: identity.id });
    expectError(await remove(stranger.key, identity.id), 404, "not_found");
  });
});
