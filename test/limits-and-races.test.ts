import { describe, expect, it, vi } from "vitest";
import { admin, api, expectError, makeWorkspace } from "./helpers";

describe("inputs that would otherwise exceed D1's 100 bound parameters", () => {
  it("answers a lifecycle_stage list with many repeats from the distinct stages", async () => {
    const { key } = await makeWorkspace();
    await api("/v1/contacts", { method: "POST", key, body: { email: "a@example.com", lifecycle_stage: "lead" } });

    const res = await api(`/v1/contacts?lifecycle_stage=${"lead,".repeat(300)}mql`, { key });

    expect(res.status).toBe(200);
    expect(res.body.total).toBe(1);
  });

  it("rejects a monitoring filter with more than 20 properties", async () => {
    const { key } = await makeWorkspace();
    const properties = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`p${i}`, "x"]));

    const res = await api("/v1/agents", { method: "POST", key, body: { name: "x", monitoring: { filter: { properties } } } });

    expect(expectError(res, 400, "validation_error").details[0].path).toBe("monitoring.filter.properties");
  });
});

describe("revoking a key twice", () => {
  it("keeps the first revocation time", async () => {
    const { keyId } = await makeWorkspace();
    const first = await admin(`/v1/admin/api-keys/${keyId}`, { method: "DELETE" });
    // A minute later, without waiting for one.
    vi.setSystemTime(Date.now() + 60_000);
    let second;
    try {
      second = await admin(`/v1/admin/api-keys/${keyId}`, { method: "DELETE" });
    } finally {
      vi.useRealTimers();
    }

    expect(second.status).toBe(200);
    expect(second.body.api_key.revoked_at).toBe(first.body.api_key.revoked_at);
  });
});

describe("concurrent PATCHes of one agent", () => {
  it("keeps every field that each PATCH changed", async () => {
    const { key } = await makeWorkspace();
    const agent = (await api("/v1/agents", { method: "POST", key, body: { name: "Before", capabilities: ["email"] } })).body.agent;

    const patches = [{ name: "After" }, { enabled: true }, { description: "Described" }, { capabilities: ["email", "notes"] }];
    const results = await Promise.all(patches.map((body) => api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body })));

    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const final = (await api(`/v1/agents/${agent.id}`, { key })).body.agent;
    expect(final).toMatchObject({ name: "After", enabled: true, description: "Described", capabilities: ["email", "notes"] });
  });
});
