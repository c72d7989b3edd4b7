import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../src/app";
import { sha256Hex } from "../src/lib/crypto";
import { SCOPES } from "../src/lib/scopes";
import { ADMIN_TOKEN, admin, api, expectError, makeKey, makeWorkspace } from "./helpers";

const WELL_FORMED_UNKNOWN_KEY = `cairn_sk_${"A".repeat(43)}`;

describe("operator endpoints", () => {
  it("creates a workspace with the admin token", async () => {
    const res = await admin("/v1/admin/workspaces", { method: "POST", body: { name: "Acme" } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      status: "success",
      workspace: { id: expect.stringMatching(/^ws_[0-9A-Z]{26}$/), name: "Acme", created_at: expect.stringMatching(/\.\d{3}Z$/) },
    });
  });

  it("rejects a wrong or missing admin token with 401", async () => {
    expectError(await api("/v1/admin/workspaces", { method: "POST", key: "not-the-token", body: { name: "x" } }), 401, "unauthorized");
    expectError(await api("/v1/admin/workspaces", { method: "POST", body: { name: "x" } }), 401, "unauthorized");
    expectError(await api("/v1/admin/workspaces", { method: "POST", key: `${ADMIN_TOKEN}x`, body: { name: "x" } }), 401, "unauthorized");
  });

  it("does not accept a workspace API key as the admin token", async () => {
    const { key } = await makeWorkspace();
    expectError(await api("/v1/admin/workspaces", { method: "POST", key, body: { name: "x" } }), 401, "unauthorized");
  });

  it("validates the workspace body", async () => {
    const res = await admin("/v1/admin/workspaces", { method: "POST", body: { name: "" } });
    expect(expectError(res, 400, "validation_error").details).toContainEqual(expect.objectContaining({ path: "name" }));
  });

  it("answers 404 for keys of an unknown workspace", async () => {
    expectError(await admin("/v1/admin/workspaces/ws_01JZZZZZZZZZZZZZZZZZZZZZZZ/api-keys", { method: "POST", body: {} }), 404, "not_found");
    expectError(await admin("/v1/admin/workspaces/nonsense/api-keys", { method: "POST", body: {} }), 404, "not_found");
  });

  it("answers 404 on every admin route while ADMIN_TOKEN is unset", async () => {
    const call = async (method: string, path: string, body?: unknown) => {
      const request = new Request(`https://cairn.test${path}`, {
        method,
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const res = await app.fetch(request, { ...env, ADMIN_TOKEN: undefined });
      return { status: res.status, headers: res.headers, body: await res.json<Record<string, unknown>>() };
    };
    expectError(await call("POST", "/v1/admin/workspaces", { name: "x" }), 404, "not_found");
    expectError(await call("POST", "/v1/admin/workspaces/ws_01JZZZZZZZZZZZZZZZZZZZZZZZ/api-keys", {}), 404, "not_found");
    expectError(await call("DELETE", "/v1/admin/api-keys/key_01JZZZZZZZZZZZZZZZZZZZZZZZ"), 404, "not_found");
    // An empty token is as good as none.
    const res = await app.fetch(
      new Request("https://cairn.test/v1/admin/workspaces", {
        method: "POST",
        headers: { Authorization: "Bearer x", "Content-Type": "application/json" },
        body: JSON.stringify({ name: "x" }),
      }),
      { ...env, ADMIN_TOKEN: "" },
    );
    expect(res.status).toBe(404);
  });
});

describe("API keys", () => {
  it("creates a key with the cairn_sk_ prefix and 256 random bits", async () => {
    const { workspaceId } = await makeWorkspace();
    const res = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, { method: "POST", body: { name: "CI" } });
    expect(res.status).toBe(201);
    expect(res.body.api_key).toMatchObject({ id: expect.stringMatching(/^key_/), name: "CI", workspace_id: workspaceId });
    expect(res.body.api_key.key).toMatch(/^cairn_sk_[A-Za-z0-9_-]{43}$/);
  });

  it("gives every key a different secret", async () => {
    const { workspaceId } = await makeWorkspace();
    const keys = await Promise.all([1, 2, 3].map(() => makeKey(workspaceId)));
    expect(new Set(keys.map((k) => k.key)).size).toBe(3);
  });

  it("stores only the SHA-256 of the secret", async () => {
    const { workspaceId } = await makeWorkspace();
    const { key, keyId } = await makeKey(workspaceId);
    const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(keyId).first<Record<string, unknown>>();
    expect(row).not.toBeNull();
    expect(row!.key_hash).toBe(await sha256Hex(key));
    expect(row!.key_hash).toMatch(/^[0-9a-f]{64}$/);
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(key.slice("cairn_sk_".length));
  });

  it("keeps the secret out of every table, even when its creation can be replayed", async () => {
    const { workspaceId } = await makeWorkspace();
    const res = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, {
      method: "POST",
      body: { name: "replayable" },
      headers: { "Idempotency-Key": "mint-once" },
    });
    expect(res.status).toBe(201);
    const secret = (res.body.api_key.key as string).slice("cairn_sk_".length);

    const { results: tables } = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%'",
    ).all<{ name: string }>();
    expect(tables.map((t) => t.name)).toContain("idempotency_keys");
    for (const { name } of tables) {
      const { results } = await env.DB.prepare(`SELECT * FROM "${name}"`).all();
      expect(JSON.stringify(results), `table ${name}`).not.toContain(secret);
    }
  });

  it("shows the secret only in the create response", async () => {
    const { workspaceId, key, keyId } = await makeWorkspace();
    const status = await api("/v1/auth/status", { key });
    expect(JSON.stringify(status.body)).not.toContain(key);
    const revoked = await admin(`/v1/admin/api-keys/${keyId}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    expect(revoked.body.api_key).not.toHaveProperty("key");
    expect(JSON.stringify(revoked.body)).not.toContain(key);
    expect(revoked.body.api_key).toMatchObject({ id: keyId, workspace_id: workspaceId });
  });

  it("grants all 11 scopes when none are given", async () => {
    const { workspaceId } = await makeWorkspace();
    const res = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, { method: "POST", body: {} });
    expect(res.status).toBe(201);
    expect(SCOPES).toHaveLength(11);
    expect([...res.body.api_key.scopes].sort()).toEqual([...SCOPES].sort());
  });

  it("grants all scopes when the body is empty", async () => {
    const { workspaceId } = await makeWorkspace();
    const res = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, { method: "POST" });
    expect(res.status).toBe(201);
    expect([...res.body.api_key.scopes].sort()).toEqual([...SCOPES].sort());
  });

  it("grants exactly the scopes asked for", async () => {
    const { workspaceId } = await makeWorkspace();
    const res = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, {
      method: "POST",
      body: { scopes: ["agents:read", "contacts:write"] },
    });
    expect(res.status).toBe(201);
    expect(res.body.api_key.scopes).toEqual(["agents:read", "contacts:write"]);
    const status = await api("/v1/auth/status", { key: res.body.api_key.key });
    expect(status.body.scopes).toEqual(["agents:read", "contacts:write"]);
    expectError(await api("/v1/agents", { method: "POST", key: res.body.api_key.key, body: { name: "x" } }), 403, "insufficient_scope");
  });

  it("rejects an unknown scope with 400", async () => {
    const { workspaceId } = await makeWorkspace();
    const res = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, { method: "POST", body: { scopes: ["agents:read", "agents:destroy"] } });
    expect(expectError(res, 400, "validation_error").details).toContainEqual(expect.objectContaining({ path: "scopes.1" }));
  });

  it("rejects an empty scope list with 400", async () => {
    const { workspaceId } = await makeWorkspace();
    expectError(await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, { method: "POST", body: { scopes: [] } }), 400, "validation_error");
  });
});

describe("GET /v1/auth/status", () => {
  it("describes the calling key", async () => {
    const ws = await admin("/v1/admin/workspaces", { method: "POST", body: { name: "Status Co" } });
    const workspaceId = ws.body.workspace.id as string;
    const { key, keyId } = await makeKey(workspaceId, ["agents:read"]);
    const res = await api("/v1/auth/status", { key });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: "success",
      authenticated: true,
      workspace: { id: workspaceId, name: "Status Co" },
      key_id: keyId,
      scopes: ["agents:read"],
    });
  });

  it("accepts a lower-case bearer scheme", async () => {
    const { key } = await makeWorkspace();
    const res = await api("/v1/auth/status", { headers: { Authorization: `bearer ${key}` } });
    expect(res.status).toBe(200);
  });

  it("needs a key", async () => {
    expectError(await api("/v1/auth/status"), 401, "unauthorized");
  });
});

describe("GET /v1/health", () => {
  it("answers without a key", async () => {
    const res = await api("/v1/health");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "success", healthy: true });
  });
});

describe("revocation", () => {
  it("makes a warm key 401 immediately in this isolate", async () => {
    const { key, keyId } = await makeWorkspace();
    expect((await api("/v1/auth/status", { key })).status).toBe(200);
    expect((await api("/v1/agents", { key })).status).toBe(200);

    const res = await admin(`/v1/admin/api-keys/${keyId}`, { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(res.body.api_key.revoked_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    expectError(await api("/v1/auth/status", { key }), 401, "unauthorized");
    expectError(await api("/v1/agents", { key }), 401, "unauthorized");
  });

  it("leaves the workspace's other keys working", async () => {
    const { workspaceId, key, keyId } = await makeWorkspace();
    const other = await makeKey(workspaceId);
    await admin(`/v1/admin/api-keys/${keyId}`, { method: "DELETE" });
    expectError(await api("/v1/auth/status", { key }), 401, "unauthorized");
    expect((await api("/v1/auth/status", { key: other.key })).status).toBe(200);
  });

  it("answers 404 for an unknown key id", async () => {
    expectError(await admin("/v1/admin/api-keys/key_01JZZZZZZZZZZZZZZZZZZZZZZZ", { method: "DELETE" }), 404, "not_found");
    expectError(await admin("/v1/admin/api-keys/whatever", { method: "DELETE" }), 404, "not_found");
  });
});

describe("401 responses", () => {
  /** The raw body with the per-request parts blanked, so the rest can be compared byte for byte. */
  async function unauthorizedBody(headers: Record<string, string>): Promise<{ text: string; contentType: string | null }> {
    const res = await exports.default.fetch("https://cairn.test/v1/agents", { headers });
    expect(res.status).toBe(401);
    const text = await res.text();
    const parsed = JSON.parse(text) as { request_id: string; timestamp: string };
    expect(res.headers.get("Request-Id")).toBe(parsed.request_id);
    return {
      text: text.replace(parsed.request_id, "REQUEST_ID").replace(parsed.timestamp, "TIMESTAMP"),
      contentType: res.headers.get("Content-Type"),
    };
  }

  it("are byte-identical for missing, malformed, unknown and revoked keys", async () => {
    const { key, keyId } = await makeWorkspace();
    await admin(`/v1/admin/api-keys/${keyId}`, { method: "DELETE" });

    const bodies = await Promise.all([
      unauthorizedBody({}),
      unauthorizedBody({ Authorization: "Basic dXNlcjpwYXNz" }),
      unauthorizedBody({ Authorization: "Bearer" }),
      unauthorizedBody({ Authorization: "Bearer cairn_sk_short" }),
      unauthorizedBody({ Authorization: `Bearer ${key}x` }),
      unauthorizedBody({ Authorization: `Bearer ${WELL_FORMED_UNKNOWN_KEY}` }),
      unauthorizedBody({ Authorization: `Bearer ${key}` }),
    ]);
    expect(JSON.parse(bodies[0]!.text)).toMatchObject({ status: "error", code: "unauthorized" });
    for (const body of bodies) expect(body).toEqual(bodies[0]);
  });
});
