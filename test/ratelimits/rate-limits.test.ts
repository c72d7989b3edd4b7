import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { admin, api, expectError, makeKey, makeWorkspace } from "../helpers";

// This project's limits (vitest.config.ts): 3 reads, 2 writes a minute per key.
describe("rate limits per key", () => {
  it("answer 429 rate_limited with Retry-After once a key's reads are spent; another key is not affected", async () => {
    const { key, workspaceId } = await makeWorkspace();
    for (let i = 0; i < 3; i++) expect((await api("/v1/agents", { key })).status).toBe(200);
    const refused = await api("/v1/agents", { key });
    expectError(refused, 429, "rate_limited");
    expect(refused.headers.get("Retry-After")).toBe("60");

    const other = await makeKey(workspaceId);
    expect((await api("/v1/agents", { key: other.key })).status).toBe(200);
  });

  it("count reads and writes apart: a key out of reads can still write, and the other way round", async () => {
    const { key } = await makeWorkspace();
    for (let i = 0; i < 3; i++) await api("/v1/contacts", { key });
    expectError(await api("/v1/contacts", { key }), 429, "rate_limited");
    expect((await api("/v1/contacts", { method: "POST", key, body: { email: "ada@example.com" } })).status).toBe(201);
    expect((await api("/v1/contacts", { method: "POST", key, body: { email: "bo@example.com" } })).status).toBe(201);
    expectError(await api("/v1/contacts", { method: "POST", key, body: { email: "cy@example.com" } }), 429, "rate_limited");
  });

  it("refuse before reading the body or taking the Idempotency-Key, so the retry after the window runs", async () => {
    const { key, workspaceId } = await makeWorkspace();
    for (let i = 0; i < 2; i++) await api("/v1/identities", { method: "POST", key, body: { first_name: `Sam ${i}` } });
    const refused = await api("/v1/identities", { method: "POST", key, headers: { "Idempotency-Key": "late-1" }, body: "{not json" });
    expectError(refused, 429, "rate_limited");
    const stored = await env.DB.prepare("SELECT count(*) AS n FROM idempotency_keys WHERE scope = ? AND key = 'late-1'").bind(workspaceId).first<{ n: number }>();
    expect(stored!.n).toBe(0);
  });

  it("count POST /mcp against its own budget (one a minute here)", async () => {
    const { key } = await makeWorkspace();
    const call = { method: "POST", key, headers: { Accept: "application/json, text/event-stream" }, body: { jsonrpc: "2.0", id: 1, method: "tools/list" } };
    // The first is served (as an event stream, which the JSON helper cannot read): only its status counts.
    const first = await exports.default.fetch("https://cairn.test/mcp", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", ...call.headers },
      body: JSON.stringify(call.body),
    });
    expect(first.status).not.toBe(429);
    await first.body?.cancel();
    const refused = await api("/mcp", call);
    expectError(refused, 429, "rate_limited");
    // Reads are a budget of their own.
    expect((await api("/v1/agents", { key })).status).toBe(200);
  });

  it("limit the keyless reads per client address (two a minute here), and leave operator routes alone", async () => {
    const from = (address: string) => ({ headers: { "CF-Connecting-IP": address } });
    expect((await api("/v1/health", from("192.0.2.1"))).status).toBe(200);
    expect((await api("/v1/openapi.json", from("192.0.2.1"))).status).toBe(200);
    const refused = await api("/v1/docs", from("192.0.2.1"));
    expectError(refused, 429, "rate_limited");
    expect(refused.headers.get("Retry-After")).toBe("60");
    expect((await api("/v1/health", from("192.0.2.2"))).status).toBe(200);
    // The operator's routes (and unsubscribe links and provider events) have no limiter at all.
    for (let i = 0; i < 5; i++) expect((await admin("/v1/admin/workspaces", { method: "POST", ...from("192.0.2.1"), body: { name: `W${i}` } })).status).toBe(201);
  });
});
