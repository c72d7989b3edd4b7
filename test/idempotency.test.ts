import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { app } from "../src/app";
import { LOCK_MS } from "../src/lib/idempotency";
import { admin, api, expectError, makeAgent, makeWorkspace } from "./helpers";

const DAY_MS = 24 * 60 * 60 * 1000;

const post = (key: string, idempotencyKey: string, body: unknown) =>
  api("/v1/agents", { method: "POST", key, body, headers: { "Idempotency-Key": idempotencyKey } });

const total = async (key: string) => (await api("/v1/agents", { key })).body.total as number;

/** Moves a stored key's creation time back, as if it had been made `ms` ago. */
const age = (idempotencyKey: string, ms: number) =>
  env.DB.prepare("UPDATE idempotency_keys SET created_at = ?, locked_until = ? WHERE key = ?")
    .bind(Date.now() - ms, Date.now() - ms + LOCK_MS, idempotencyKey)
    .run();

describe("Idempotency-Key on POST", () => {
  it("replays the first response for a repeat and creates nothing new", async () => {
    const { key } = await makeWorkspace();
    const first = await post(key, "create-1", { name: "Once" });
    expect(first.status).toBe(201);
    expect(first.headers.get("Idempotent-Replayed")).toBeNull();

    const second = await post(key, "create-1", { name: "Once" });
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.headers.get("Content-Type")).toMatch(/^application\/json/);
    expect(second.headers.get("Request-Id")).toMatch(/^req_/);
    expect(await total(key)).toBe(1);
  });

  it("answers 422 when the key comes back with a different body", async () => {
    const { key } = await makeWorkspace();
    expect((await post(key, "k", { name: "A" })).status).toBe(201);
    const res = await post(key, "k", { name: "B" });
    expectError(res, 422, "idempotency_key_reused");
    expect(res.headers.get("Idempotent-Replayed")).toBeNull();
    expect(await total(key)).toBe(1);
  });

  it("answers 422 when the key comes back on another method or path", async () => {
    const { key } = await makeWorkspace();
    const created = await post(key, "k", { name: "A" });
    const id = created.body.agent.id as string;
    const patch = await api(`/v1/agents/${id}`, { method: "PATCH", key, body: { name: "A" }, headers: { "Idempotency-Key": "k" } });
    expectError(patch, 422, "idempotency_key_reused");
    const query = await api("/v1/agents?x=1", { method: "POST", key, body: { name: "A" }, headers: { "Idempotency-Key": "k" } });
    expectError(query, 422, "idempotency_key_reused");
  });

  it("lets only one of two concurrent repeats run", async () => {
    const { key } = await makeWorkspace();
    const results = await Promise.all([post(key, "race", { name: "Race" }), post(key, "race", { name: "Race" })]);
    for (const res of results) expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);

    const created = results.filter((r) => r.status === 201 && r.headers.get("Idempotent-Replayed") === null);
    expect(created).toHaveLength(1);
    const other = results.find((r) => r !== created[0])!;
    if (other.status === 409) {
      expectError(other, 409, "idempotency_key_in_use");
    } else {
      expect(other.status).toBe(201);
      expect(other.headers.get("Idempotent-Replayed")).toBe("true");
      expect(other.body).toEqual(created[0]!.body);
    }
    expect(await total(key)).toBe(1);
  });

  it("keeps keys of different workspaces apart", async () => {
    const a = await makeWorkspace();
    const b = await makeWorkspace();
    const resA = await post(a.key, "shared", { name: "Same" });
    const resB = await post(b.key, "shared", { name: "Same" });
    expect(resA.status).toBe(201);
    expect(resB.status).toBe(201);
    expect(resB.headers.get("Idempotent-Replayed")).toBeNull();
    expect(resB.body.agent.id).not.toBe(resA.body.agent.id);
    expect(await total(a.key)).toBe(1);
    expect(await total(b.key)).toBe(1);
  });

  it("shares a key between two API keys of one workspace", async () => {
    const { workspaceId, key } = await makeWorkspace();
    const other = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, { method: "POST", body: {} });
    const first = await post(key, "ws-wide", { name: "A" });
    const second = await post(other.body.api_key.key, "ws-wide", { name: "A" });
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body).toEqual(first.body);
  });

  it("forgets a key after 24 hours", async () => {
    const { key } = await makeWorkspace();
    expect((await post(key, "old", { name: "A" })).status).toBe(201);
    await age("old", DAY_MS + 1_000);

    const reused = await post(key, "old", { name: "B" });
    expect(reused.status).toBe(201);
    expect(reused.headers.get("Idempotent-Replayed")).toBeNull();
    expect(reused.body.agent.name).toBe("B");
    // And the key now belongs to the new request.
    const repeat = await post(key, "old", { name: "B" });
    expect(repeat.headers.get("Idempotent-Replayed")).toBe("true");
    expect(await total(key)).toBe(2);
  });

  it("still replays a key just under 24 hours old", async () => {
    const { key } = await makeWorkspace();
    await post(key, "young", { name: "A" });
    await age("young", DAY_MS - 60_000);
    const repeat = await post(key, "young", { name: "A" });
    expect(repeat.headers.get("Idempotent-Replayed")).toBe("true");
    expectError(await post(key, "young", { name: "B" }), 422, "idempotency_key_reused");
  });

  it("replays a 400 response, request id included", async () => {
    const { key } = await makeWorkspace();
    const first = await post(key, "bad", { name: "" });
    const firstBody = expectError(first, 400, "validation_error");

    const second = await post(key, "bad", { name: "" });
    expect(second.status).toBe(400);
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body).toEqual(firstBody);
    expect(second.headers.get("Request-Id")).toBe(firstBody.request_id);
    expect(await total(key)).toBe(0);
  });

  it("does not keep a 500, so the retry runs anew", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    await env.DB.prepare("UPDATE agents SET monitoring = '{broken' WHERE id = ?").bind(agent.id).run();
    const patch = () => api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { name: "Fixed" }, headers: { "Idempotency-Key": "retry" } });

    expectError(await patch(), 500, "internal_error");
    await env.DB.prepare("UPDATE agents SET monitoring = ? WHERE id = ?").bind(JSON.stringify(agent.monitoring), agent.id).run();
    const retry = await patch();
    expect(retry.status).toBe(200);
    expect(retry.headers.get("Idempotent-Replayed")).toBeNull();
    expect(retry.body.agent.name).toBe("Fixed");
    log.mockRestore();
  });

  it("rejects a malformed Idempotency-Key with 400", async () => {
    const { key } = await makeWorkspace();
    expectError(await post(key, "x".repeat(256), { name: "A" }), 400, "validation_error");
    expectError(await post(key, "has space", { name: "A" }), 400, "validation_error");
    expect(await total(key)).toBe(0);
  });

  it("ignores the header on GET and DELETE", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const headers = { "Idempotency-Key": "reads" };
    expect((await api("/v1/agents", { key, headers })).status).toBe(200);
    expect((await api(`/v1/agents/${agent.id}`, { key, headers })).headers.get("Idempotent-Replayed")).toBeNull();
    expect((await api(`/v1/agents/${agent.id}`, { key, method: "DELETE", headers })).status).toBe(200);
    expectError(await api(`/v1/agents/${agent.id}`, { key, method: "DELETE", headers }), 404, "not_found");
  });
});

describe("Idempotency-Key on PATCH", () => {
  it("replays the first update even after the agent changed", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const patch = () => api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { name: "Renamed" }, headers: { "Idempotency-Key": "rename" } });

    const first = await patch();
    expect(first.status).toBe(200);
    expect(first.body.agent.name).toBe("Renamed");
    await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { name: "Changed since" } });

    const second = await patch();
    expect(second.status).toBe(200);
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body).toEqual(first.body);
    // The repeat did not run: the later change stands.
    expect((await api(`/v1/agents/${agent.id}`, { key })).body.agent.name).toBe("Changed since");
  });

  it("answers 422 for a different patch with the same key", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const headers = { "Idempotency-Key": "p" };
    expect((await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { name: "A" }, headers })).status).toBe(200);
    expectError(await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { name: "B" }, headers }), 422, "idempotency_key_reused");
  });
});

describe("Idempotency-Key on admin routes", () => {
  it("replays a workspace creation", async () => {
    const headers = { "Idempotency-Key": "bootstrap" };
    const first = await admin("/v1/admin/workspaces", { method: "POST", body: { name: "Ops" }, headers });
    const second = await admin("/v1/admin/workspaces", { method: "POST", body: { name: "Ops" }, headers });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body.workspace.id).toBe(first.body.workspace.id);
    expectError(await admin("/v1/admin/workspaces", { method: "POST", body: { name: "Other" }, headers }), 422, "idempotency_key_reused");
  });

  it("replays a key creation with the same secret and no second key", async () => {
    const { workspaceId } = await makeWorkspace();
    const headers = { "Idempotency-Key": "mint" };
    const path = `/v1/admin/workspaces/${workspaceId}/api-keys`;
    const first = await admin(path, { method: "POST", body: { name: "CI" }, headers });
    const second = await admin(path, { method: "POST", body: { name: "CI" }, headers });
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body).toEqual(first.body);
    expect(second.body.api_key.key).toMatch(/^cairn_sk_/);
    const { results } = await env.DB.prepare("SELECT id FROM api_keys WHERE workspace_id = ?").bind(workspaceId).all();
    expect(results).toHaveLength(2); // makeWorkspace's key and this one
  });

  it("stores operator responses sealed, readable only with the ADMIN_TOKEN", async () => {
    const headers = { "Idempotency-Key": "sealed" };
    const first = await admin("/v1/admin/workspaces", { method: "POST", body: { name: "Sealed Co" }, headers });
    const row = await env.DB.prepare("SELECT response_body FROM idempotency_keys WHERE scope = 'admin' AND key = 'sealed'").first<{ response_body: string }>();
    expect(row!.response_body).not.toContain("Sealed Co");
    expect(row!.response_body).not.toContain(first.body.workspace.id);

    // After the token is rotated the stored response cannot be opened: the key is spent.
    const rotated = await app.fetch(
      new Request("https://cairn.test/v1/admin/workspaces", {
        method: "POST",
        headers: { ...headers, Authorization: "Bearer rotated-token", "Content-Type": "application/json" },
        body: JSON.stringify({ name: "Sealed Co" }),
      }),
      { ...env, ADMIN_TOKEN: "rotated-token" },
    );
    expect(rotated.status).toBe(422);
    expect(((await rotated.json()) as { code: string }).code).toBe("idempotency_key_reused");
  });

  it("keeps operator keys apart from a workspace's keys", async () => {
    const { key } = await makeWorkspace();
    const headers = { "Idempotency-Key": "same-name" };
    expect((await admin("/v1/admin/workspaces", { method: "POST", body: { name: "Ops" }, headers })).status).toBe(201);
    const res = await api("/v1/agents", { method: "POST", key, body: { name: "A" }, headers });
    expect(res.status).toBe(201);
    expect(res.headers.get("Idempotent-Replayed")).toBeNull();
  });
});

describe("Idempotency-Key and scopes", () => {
  it("never replays a stored response to a key that lacks the route's scope", async () => {
    const { workspaceId, key } = await makeWorkspace();
    const reader = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, { method: "POST", body: { scopes: ["agents:read"] } });
    expect((await post(key, "scoped", { name: "A" })).status).toBe(201);

    const replay = await post(reader.body.api_key.key, "scoped", { name: "A" });

    expect(replay.status).toBe(403);
    expect(replay.body.code).toBe("insufficient_scope");
    expect(replay.headers.get("Idempotent-Replayed")).toBeNull();
  });
});
