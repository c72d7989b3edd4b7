import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SCOPES, type Scope } from "../src/lib/scopes";
import { api, expectError, makeKey, makeWorkspace, type Json } from "./helpers";

const RECEIVER = "https://hooks.example.com/cairn";
const ENDPOINT_ID = /^we_[0-9A-HJKMNP-TV-Z]{26}$/;
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const DAY_MS = 24 * 60 * 60 * 1000;

const create = (key: string, body: unknown) => api("/v1/webhook-endpoints", { method: "POST", key, body });
const getEndpoint = (key: string, id: string) => api(`/v1/webhook-endpoints/${id}`, { key });
const patch = (key: string, id: string, body: unknown) => api(`/v1/webhook-endpoints/${id}`, { method: "PATCH", key, body });
const remove = (key: string, id: string) => api(`/v1/webhook-endpoints/${id}`, { method: "DELETE", key });
const rotate = (key: string, id: string) => api(`/v1/webhook-endpoints/${id}/rotate-secret`, { method: "POST", key });
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);

/** The endpoint's D1 row, every column as stored. */
const endpointRow = (id: string) => env.DB.prepare("SELECT * FROM webhook_endpoints WHERE id = ?").bind(id).first<Json>();

async function makeEndpoint(key: string, body: Json = {}): Promise<Json> {
  const res = await create(key, { url: RECEIVER, ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.webhook_endpoint;
}

/** A `whsec_` secret whose key is 32 bytes (Standard Webhooks). */
function expectSecret(secret: unknown): void {
  expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  expect(atob((secret as string).slice("whsec_".length))).toHaveLength(32);
}

// Creating endpoints sends nothing, but a stray message would be delivered in the background.
beforeEach(() => void vi.spyOn(env.WEBHOOK_QUEUE, "sendBatch").mockResolvedValue(undefined as never));
afterEach(() => void vi.restoreAllMocks());

describe("POST /v1/webhook-endpoints", () => {
  it("returns 201 with the endpoint, its defaults and a whsec_ secret of 32 random bytes", async () => {
    const { key } = await makeWorkspace();
    const res = await create(key, { url: RECEIVER });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toStrictEqual({
      status: "success",
      webhook_endpoint: {
        id: expect.stringMatching(ENDPOINT_ID),
        url: RECEIVER,
        events: ["*"],
        enabled: true,
        description: null,
        disabled_reason: null,
        failing_since: null,
        secret_rotated_at: null,
        created_at: expect.stringMatching(ISO_MS),
        updated_at: expect.stringMatching(ISO_MS),
        secret: expect.any(String),
      },
    });
    expectSecret(res.body.webhook_endpoint.secret);
    expect((await makeEndpoint(key)).secret).not.toBe(res.body.webhook_endpoint.secret);
  });

  it("echoes events, description and enabled", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key, { events: ["run.completed", "action.proposed"], description: "  CRM sync  ", enabled: false });
    expect(endpoint).toMatchObject({ events: ["run.completed", "action.proposed"], description: "CRM sync", enabled: false });
  });

  it("shows the secret only on create, and D1 holds it sealed", async () => {
    const { key } = await makeWorkspace();
    const { secret, ...endpoint } = await makeEndpoint(key);

    const one = await getEndpoint(key, endpoint.id);
    expect(one.body.webhook_endpoint).toStrictEqual(endpoint);
    const list = await api("/v1/webhook-endpoints", { key });
    expect(list.body.webhook_endpoints).toStrictEqual([endpoint]);
    const patched = await patch(key, endpoint.id, { description: "renamed" });
    expect(patched.status).toBe(200);
    expect(patched.body.webhook_endpoint).not.toHaveProperty("secret");

    const row = (await endpointRow(endpoint.id))!;
    expect(row.secret).toEqual(expect.any(String));
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(secret);
    expect(stored).not.toContain(secret.slice("whsec_".length));
  });
});

describe("validation", () => {
  it.each([
    ["url is missing", { events: ["*"] }, ["url"]],
    ["a field is unknown", { url: RECEIVER, secret: "whsec_mine" }, ["secret"]],
    ["events is empty", { url: RECEIVER, events: [] }, ["events"]],
    ["an event type is unknown", { url: RECEIVER, events: ["run.exploded"] }, ["events.0"]],
    ["an event type repeats", { url: RECEIVER, events: ["run.failed", "run.failed"] }, ["events"]],
    ['"*" comes with other types', { url: RECEIVER, events: ["*", "run.started"] }, ["events"]],
    ["description is over 500 characters", { url: RECEIVER, description: "d".repeat(501) }, ["description"]],
  ])("refuses a create where %s", async (_, body, expected) => {
    const { key } = await makeWorkspace();
    expect(paths(expectError(await create(key, body), 400, "validation_error"))).toEqual(expected);
    expect((await api("/v1/webhook-endpoints", { key })).body.total).toBe(0);
  });

  // url-policy has its own exhaustive test (webhook-url.test.ts); these check the route applies it.
  it.each([
    "http://example.com",
    "https://localhost/x",
    "http://localhost:3000", // WEBHOOKS_ALLOW_HTTP is unset in tests
    "https://127.0.0.1",
    "https://10.1.2.3",
    "https://[::1]/",
    "https://169.254.169.254/latest",
    "https://2130706433/",
    "https://0x7f000001/",
  ])("refuses the URL %s on create and on PATCH, naming url", async (url) => {
    const { key } = await makeWorkspace();
    expect(paths(expectError(await create(key, { url }), 400, "validation_error"))).toEqual(["url"]);

    const endpoint = await makeEndpoint(key);
    expect(paths(expectError(await patch(key, endpoint.id, { url }), 400, "validation_error"))).toEqual(["url"]);
    expect((await getEndpoint(key, endpoint.id)).body.webhook_endpoint.url).toBe(RECEIVER);
    expect((await api("/v1/webhook-endpoints", { key })).body.total).toBe(1);
  });

  it("stores a public https URL as the URL parser normalises it", async () => {
    const { key } = await makeWorkspace();
    expect((await makeEndpoint(key, { url: "https://Hooks.Example.COM" })).url).toBe("https://hooks.example.com/");
  });
});

describe("GET /v1/webhook-endpoints", () => {
  it("lists the workspace's endpoints newest first with total, limit and offset", async () => {
    const { key } = await makeWorkspace();
    const made: string[] = [];
    for (let i = 0; i < 3; i++) made.push((await makeEndpoint(key, { description: `n${i}` })).id);
    await makeEndpoint((await makeWorkspace()).key);

    const all = await api("/v1/webhook-endpoints", { key });
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ status: "success", total: 3, limit: 20, offset: 0 });
    expect(all.body.webhook_endpoints.map((e: Json) => e.id)).toEqual([...made].reverse());

    const page = await api("/v1/webhook-endpoints?limit=1&offset=1", { key });
    expect(page.body).toMatchObject({ total: 3, limit: 1, offset: 1 });
    expect(page.body.webhook_endpoints.map((e: Json) => e.id)).toEqual([made[1]]);
  });

  it.each([
    ["limit=0", "limit"],
    ["limit=101", "limit"],
    ["offset=-1", "offset"],
  ])("refuses %s", async (query, path) => {
    const { key } = await makeWorkspace();
    expect(paths(expectError(await api(`/v1/webhook-endpoints?${query}`, { key }), 400, "validation_error"))).toEqual([path]);
  });
});

describe("PATCH /v1/webhook-endpoints/:id", () => {
  it("changes events, description and enabled, and GET shows the change", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key, { description: "old" });
    const res = await patch(key, endpoint.id, { events: ["contact.unsubscribed"], description: "new", enabled: false });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.webhook_endpoint).toMatchObject({ id: endpoint.id, url: RECEIVER, events: ["contact.unsubscribed"], description: "new", enabled: false });
    expect((await getEndpoint(key, endpoint.id)).body.webhook_endpoint).toStrictEqual(res.body.webhook_endpoint);

    const cleared = await patch(key, endpoint.id, { description: null, url: "https://other.example.com/in" });
    expect(cleared.body.webhook_endpoint).toMatchObject({ description: null, url: "https://other.example.com/in", enabled: false });
  });

  it("clears disabled_reason and failing_since when enabled again, and only then", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const failingSince = Date.parse("2026-11-20T08:00:00.000Z");
    await env.DB.prepare("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, failing_since = ? WHERE id = ?")
      .bind("The receiver answered 410 Gone", failingSince, endpoint.id)
      .run();

    const other = await patch(key, endpoint.id, { description: "still off" });
    expect(other.body.webhook_endpoint).toMatchObject({
      enabled: false,
      disabled_reason: "The receiver answered 410 Gone",
      failing_since: "2026-11-20T08:00:00.000Z",
    });

    const res = await patch(key, endpoint.id, { enabled: true });
    expect(res.body.webhook_endpoint).toMatchObject({ enabled: true, disabled_reason: null, failing_since: null });
    expect(await endpointRow(endpoint.id)).toMatchObject({ enabled: 1, disabled_reason: null, failing_since: null });
  });

  it("refuses an empty body and unknown fields", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    expectError(await patch(key, endpoint.id, {}), 400, "validation_error");
    expect(paths(expectError(await patch(key, endpoint.id, { secret: "x" }), 400, "validation_error"))).toContain("secret");
    expect(paths(expectError(await patch(key, endpoint.id, { events: [] }), 400, "validation_error"))).toEqual(["events"]);
  });
});

describe("DELETE /v1/webhook-endpoints/:id", () => {
  it("deletes the endpoint with its deliveries, then answers 404", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const test = await api(`/v1/webhook-endpoints/${endpoint.id}/test`, { method: "POST", key });
    expect(test.status, JSON.stringify(test.body)).toBe(202);
    const deliveries = () => env.DB.prepare("SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = ?").bind(endpoint.id).first<number>("n");
    expect(await deliveries()).toBe(1);

    const res = await remove(key, endpoint.id);
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", deleted: true, id: endpoint.id });
    expect(await deliveries()).toBe(0);
    expectError(await getEndpoint(key, endpoint.id), 404, "not_found");
    expectError(await remove(key, endpoint.id), 404, "not_found");
  });
});

describe("POST /v1/webhook-endpoints/:id/rotate-secret", () => {
  it("answers a new secret once, and keeps the sealed old one signing for 24 hours", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const before = (await endpointRow(endpoint.id))!;
    const sentAt = Date.now();

    const res = await rotate(key, endpoint.id);
    const answeredAt = Date.now();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const rotated = res.body.webhook_endpoint;
    expectSecret(rotated.secret);
    expect(rotated.secret).not.toBe(endpoint.secret);
    expect(rotated.secret_rotated_at).toMatch(ISO_MS);
    expect(Date.parse(rotated.secret_rotated_at)).toBeGreaterThanOrEqual(sentAt - 60_000);
    expect(Date.parse(rotated.secret_rotated_at)).toBeLessThanOrEqual(answeredAt + 60_000);

    const row = (await endpointRow(endpoint.id))!;
    expect(row.secret).not.toBe(before.secret);
    expect(row.previous_secret).toBe(before.secret);
    const expiresAt = row.previous_secret_expires_at as number;
    expect(expiresAt).toBeGreaterThanOrEqual(sentAt + DAY_MS - 60_000);
    expect(expiresAt).toBeLessThanOrEqual(answeredAt + DAY_MS + 60_000);
    expect(expiresAt - (row.updated_at as number)).toBe(DAY_MS);
    expect(JSON.stringify(row)).not.toContain(rotated.secret.slice("whsec_".length));

    const after = await getEndpoint(key, endpoint.id);
    expect(after.body.webhook_endpoint).not.toHaveProperty("secret");
    expect(after.body.webhook_endpoint.secret_rotated_at).toBe(rotated.secret_rotated_at);
  });
});

describe("the endpoint limit", () => {
  it("refuses the 21st endpoint with 409 limit_reached, also when creates race", async () => {
    const { key } = await makeWorkspace();
    const results = await Promise.all(Array.from({ length: 22 }, () => create(key, { url: RECEIVER })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(20);
    for (const refused of results.filter((r) => r.status !== 201)) expectError(refused, 409, "limit_reached");
    expect((await api("/v1/webhook-endpoints", { key })).body.total).toBe(20);

    expectError(await create(key, { url: RECEIVER }), 409, "limit_reached");
    await remove(key, results.find((r) => r.status === 201)!.body.webhook_endpoint.id);
    await makeEndpoint(key);
    // The limit is per workspace.
    await makeEndpoint((await makeWorkspace()).key);
  });
});

const MSG_ID = /^msg_[0-9A-F]{32}$/;
const sendTest = (key: string, id: string, body?: Json) => api(`/v1/webhook-endpoints/${id}/test`, { method: "POST", key, body });
const listDeliveries = (key: string, id: string, query = "") => api(`/v1/webhook-endpoints/${id}/deliveries${query}`, { key });
const redeliver = (key: string, id: string, deliveryId: string) =>
  api(`/v1/webhook-endpoints/${id}/deliveries/${deliveryId}/redeliver`, { method: "POST", key });
const failDelivery = (deliveryId: string) =>
  env.DB.prepare("UPDATE webhook_deliveries SET status = 'failed', attempts = 9, last_error = 'HTTP 500' WHERE event_id = ?").bind(deliveryId).run();
const sent = () => vi.mocked(env.WEBHOOK_QUEUE.sendBatch);

describe("POST /v1/webhook-endpoints/:id/test", () => {
  it("answers 202 with a pending delivery of an example event, queued for that endpoint only", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const endpoint = await makeEndpoint(key, { events: ["action.approved", "run.failed"] });
    const bystander = await makeEndpoint(key, { events: ["*"] });

    const res = await sendTest(key, endpoint.id);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const delivery = res.body.delivery;
    expect(delivery).toStrictEqual({
      id: expect.stringMatching(MSG_ID),
      endpoint_id: endpoint.id,
      event_type: "action.approved",
      status: "pending",
      attempt_count: 0,
      next_attempt_at: expect.stringMatching(ISO_MS),
      last_error: null,
      created_at: expect.stringMatching(ISO_MS),
      updated_at: expect.stringMatching(ISO_MS),
      event: { id: delivery.id, type: "action.approved", created_at: expect.stringMatching(ISO_MS), workspace_id: workspaceId, data: expect.any(Object) },
      attempts: [],
    });
    expect(delivery.event.data).toMatchObject({ run_id: expect.any(String), agent_id: expect.any(String), contact_id: expect.any(String) });
    expect(sent()).toHaveBeenCalledTimes(1);
    expect(sent()).toHaveBeenCalledWith([{ body: { endpoint_id: endpoint.id, event_id: delivery.id } }]);
    expect((await listDeliveries(key, bystander.id)).body.total).toBe(0);
  });

  it("sends run.completed to an endpoint of every type, and the type asked for", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    expect((await sendTest(key, endpoint.id)).body.delivery).toMatchObject({ event_type: "run.completed", event: { type: "run.completed" } });
    const asked = await sendTest(key, endpoint.id, { type: "action.proposed" });
    expect(asked.status).toBe(202);
    expect(asked.body.delivery).toMatchObject({ event_type: "action.proposed", event: { type: "action.proposed" } });
  });

  it("refuses an unknown type and a disabled endpoint, sending nothing", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    expect(paths(expectError(await sendTest(key, endpoint.id, { type: "run.exploded" }), 400, "validation_error"))).toEqual(["type"]);
    await patch(key, endpoint.id, { enabled: false });
    expectError(await sendTest(key, endpoint.id), 409, "endpoint_disabled");
    expect(sent()).not.toHaveBeenCalled();
    expect((await listDeliveries(key, endpoint.id)).body.total).toBe(0);
  });
});

describe("GET /v1/webhook-endpoints/:id/deliveries", () => {
  it("lists deliveries newest first with their events and attempts, filtered by status and event_type", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const first = (await sendTest(key, endpoint.id, { type: "run.started" })).body.delivery;
    const second = (await sendTest(key, endpoint.id, { type: "contact.stopped" })).body.delivery;
    await failDelivery(first.id);

    const all = await listDeliveries(key, endpoint.id);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ status: "success", total: 2, limit: 20, offset: 0 });
    const ids = all.body.deliveries.map((d: Json) => d.id);
    expect(ids).toEqual([first.id, second.id].sort().reverse());
    expect(all.body.deliveries.find((d: Json) => d.id === second.id)).toStrictEqual(second);

    const pending = await listDeliveries(key, endpoint.id, "?status=pending");
    expect(pending.body).toMatchObject({ total: 1, deliveries: [{ id: second.id, status: "pending", attempts: [] }] });
    const failed = await listDeliveries(key, endpoint.id, "?status=failed");
    expect(failed.body).toMatchObject({ total: 1, deliveries: [{ id: first.id, status: "failed", attempt_count: 9, last_error: "HTTP 500", next_attempt_at: null }] });
    const typed = await listDeliveries(key, endpoint.id, "?event_type=contact.stopped");
    expect(typed.body.deliveries.map((d: Json) => d.id)).toEqual([second.id]);
    const paged = await listDeliveries(key, endpoint.id, "?limit=1&offset=1");
    expect(paged.body).toMatchObject({ total: 2, limit: 1, offset: 1, deliveries: [{ id: ids[1] }] });
  });

  it.each([
    ["status=sent", "status"],
    ["event_type=run.exploded", "event_type"],
    ["limit=0", "limit"],
    ["offset=-1", "offset"],
  ])("refuses %s", async (query, path) => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    expect(paths(expectError(await listDeliveries(key, endpoint.id, `?${query}`), 400, "validation_error"))).toEqual([path]);
  });
});

describe("POST /v1/webhook-endpoints/:id/deliveries/:deliveryId/redeliver", () => {
  it("refuses a delivery still pending with 409 delivery_pending", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const delivery = (await sendTest(key, endpoint.id)).body.delivery;
    sent().mockClear();
    expectError(await redeliver(key, endpoint.id, delivery.id), 409, "delivery_pending");
    expect(sent()).not.toHaveBeenCalled();
  });

  it("queues a failed delivery once more: 202, pending again, one message", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const delivery = (await sendTest(key, endpoint.id)).body.delivery;
    await failDelivery(delivery.id);
    sent().mockClear();

    const res = await redeliver(key, endpoint.id, delivery.id);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.delivery).toMatchObject({ id: delivery.id, status: "pending", attempt_count: 9, next_attempt_at: expect.stringMatching(ISO_MS) });
    expect(sent()).toHaveBeenCalledTimes(1);
    expect(sent()).toHaveBeenCalledWith([{ body: { endpoint_id: endpoint.id, event_id: delivery.id } }]);
    const row = await env.DB.prepare("SELECT status, manual FROM webhook_deliveries WHERE event_id = ?").bind(delivery.id).first<Json>();
    expect(row).toEqual({ status: "pending", manual: 1 });
    // Now it is pending: a second redeliver waits for this one.
    expectError(await redeliver(key, endpoint.id, delivery.id), 409, "delivery_pending");
  });

  it("is 404 for an unknown delivery and for another endpoint's", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const other = await makeEndpoint(key);
    const delivery = (await sendTest(key, other.id)).body.delivery;
    await failDelivery(delivery.id);
    expectError(await redeliver(key, endpoint.id, "msg_0000000000000000000000000000DEAD"), 404, "not_found");
    expectError(await redeliver(key, endpoint.id, delivery.id), 404, "not_found");
  });

  it("refuses a disabled endpoint with 409 endpoint_disabled", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const delivery = (await sendTest(key, endpoint.id)).body.delivery;
    await failDelivery(delivery.id);
    await patch(key, endpoint.id, { enabled: false });
    sent().mockClear();
    expectError(await redeliver(key, endpoint.id, delivery.id), 409, "endpoint_disabled");
    expect(sent()).not.toHaveBeenCalled();
    expect((await listDeliveries(key, endpoint.id)).body.deliveries[0].status).toBe("failed");
  });
});

describe("scopes", () => {
  type Route = { method: string; path: string; scope: Scope; body?: Json; ok: number };
  /** Every route, for an endpoint `:id` with one failed delivery `:deliveryId`. */
  const routes: Route[] = [
    { method: "GET", path: "/v1/webhook-endpoints", scope: "webhooks:read", ok: 200 },
    { method: "POST", path: "/v1/webhook-endpoints", scope: "webhooks:write", body: { url: RECEIVER }, ok: 201 },
    { method: "GET", path: "/v1/webhook-endpoints/:id", scope: "webhooks:read", ok: 200 },
    { method: "PATCH", path: "/v1/webhook-endpoints/:id", scope: "webhooks:write", body: { description: "x" }, ok: 200 },
    { method: "DELETE", path: "/v1/webhook-endpoints/:id", scope: "webhooks:write", ok: 200 },
    { method: "POST", path: "/v1/webhook-endpoints/:id/rotate-secret", scope: "webhooks:write", ok: 200 },
    { method: "POST", path: "/v1/webhook-endpoints/:id/test", scope: "webhooks:write", ok: 202 },
    { method: "GET", path: "/v1/webhook-endpoints/:id/deliveries", scope: "webhooks:read", ok: 200 },
    { method: "POST", path: "/v1/webhook-endpoints/:id/deliveries/:deliveryId/redeliver", scope: "webhooks:write", ok: 202 },
  ];

  async function setUp(): Promise<{ key: string; workspaceId: string; endpoint: Json; fill: (path: string) => string }> {
    const { key, workspaceId } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const test = await api(`/v1/webhook-endpoints/${endpoint.id}/test`, { method: "POST", key });
    const deliveryId = test.body.delivery.id as string;
    await env.DB.prepare("UPDATE webhook_deliveries SET status = 'failed' WHERE endpoint_id = ?").bind(endpoint.id).run();
    vi.mocked(env.WEBHOOK_QUEUE.sendBatch).mockClear();
    return { key, workspaceId, endpoint, fill: (path) => path.replace(":id", endpoint.id).replace(":deliveryId", deliveryId) };
  }

  describe.each(routes)("$method $path", (route) => {
    it("returns 401 without a key", async () => {
      const { fill } = await setUp();
      expectError(await api(fill(route.path), { method: route.method, body: route.body }), 401, "unauthorized");
    });

    it("returns 403 insufficient_scope naming the scope when the key lacks it, and does nothing", async () => {
      const { key, workspaceId, endpoint, fill } = await setUp();
      const { key: weak } = await makeKey(workspaceId, SCOPES.filter((s) => s !== route.scope));
      const body = expectError(await api(fill(route.path), { method: route.method, key: weak, body: route.body }), 403, "insufficient_scope");
      expect(body.error).toContain(route.scope);
      expect(body.details).toEqual([expect.objectContaining({ message: expect.stringContaining(route.scope) })]);
      const { secret: _, ...shown } = endpoint;
      expect((await getEndpoint(key, endpoint.id)).body.webhook_endpoint).toStrictEqual(shown);
      expect((await api("/v1/webhook-endpoints", { key })).body.total).toBe(1);
      expect(env.WEBHOOK_QUEUE.sendBatch).not.toHaveBeenCalled();
    });

    it("succeeds with a key holding only that scope", async () => {
      const { workspaceId, fill } = await setUp();
      const { key: narrow } = await makeKey(workspaceId, [route.scope]);
      const res = await api(fill(route.path), { method: route.method, key: narrow, body: route.body });
      expect(res.status, JSON.stringify(res.body)).toBe(route.ok);
      expect(res.body.status).toBe("success");
    });
  });

  const idRoutes = routes.filter((r) => r.path.includes(":id"));

  it.each(idRoutes)("$method $path is 404 for another workspace's endpoint, which stays unchanged", async (route) => {
    const { key, endpoint, fill } = await setUp();
    const other = await makeWorkspace();
    expectError(await api(fill(route.path), { method: route.method, key: other.key, body: route.body }), 404, "not_found");
    const { secret: _, ...shown } = endpoint;
    expect((await getEndpoint(key, endpoint.id)).body.webhook_endpoint).toStrictEqual(shown);
    expect(env.WEBHOOK_QUEUE.sendBatch).not.toHaveBeenCalled();
  });

  it.each(idRoutes)("$method $path is 404 for malformed ids", async (route) => {
    const { key, fill } = await setUp();
    for (const id of ["nope", "we_", `we_${"A".repeat(80)}`, "we_01KAXBZ7Q4W6N2C8D5F3H9J0M1"]) {
      const path = fill(route.path.replace(":id", id));
      expectError(await api(path, { method: route.method, key, body: route.body }), 404, "not_found");
    }
  });
});
