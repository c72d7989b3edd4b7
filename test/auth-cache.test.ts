import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { AuthCache, authCache, authenticateKey, type Auth } from "../src/lib/auth";
import { api, expectError, makeWorkspace } from "./helpers";

const WELL_FORMED_UNKNOWN_KEY = `cairn_sk_${"A".repeat(43)}`;

describe("AuthCache", () => {
  const auth = (keyId: string): Auth => ({ workspaceId: "ws_1", workspaceName: "W", keyId, scopes: ["agents:read"] });

  it("keeps entries no longer than 10 seconds", () => {
    expect(authCache.ttlMs).toBeGreaterThan(0);
    expect(authCache.ttlMs).toBeLessThanOrEqual(10_000);
    expect(new AuthCache().ttlMs).toBeLessThanOrEqual(10_000);
  });

  it("expires an entry once its TTL has passed", () => {
    let now = 1_000;
    const cache = new AuthCache(5_000, 10, () => now);
    cache.set("h1", auth("key_1"));
    now += 4_999;
    expect(cache.get("h1")).toEqual(auth("key_1"));
    now += 1;
    expect(cache.get("h1")).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("restarts the TTL when an entry is set again", () => {
    let now = 0;
    const cache = new AuthCache(5_000, 10, () => now);
    cache.set("h1", auth("key_1"));
    now = 4_000;
    cache.set("h1", auth("key_1"));
    now = 8_000;
    expect(cache.get("h1")).toEqual(auth("key_1"));
    now = 9_000;
    expect(cache.get("h1")).toBeUndefined();
  });

  it("is bounded, evicting the oldest entry", () => {
    const cache = new AuthCache(5_000, 3, () => 0);
    for (const n of [1, 2, 3, 4]) cache.set(`h${n}`, auth(`key_${n}`));
    expect(cache.size).toBe(3);
    expect(cache.get("h1")).toBeUndefined();
    expect(cache.get("h2")).toEqual(auth("key_2"));
    expect(cache.get("h4")).toEqual(auth("key_4"));
  });

  it("stays bounded under many distinct keys", () => {
    const cache = new AuthCache(5_000, 100, () => 0);
    for (let n = 0; n < 1_000; n++) cache.set(`h${n}`, auth(`key_${n}`));
    expect(cache.size).toBe(100);
    expect(cache.get("h999")).toBeDefined();
    expect(cache.get("h899")).toBeUndefined();
  });

  it("evicts every entry of a key id and nothing else", () => {
    const cache = new AuthCache(5_000, 10, () => 0);
    cache.set("h1", auth("key_1"));
    cache.set("h2", auth("key_2"));
    cache.evictKey("key_1");
    expect(cache.get("h1")).toBeUndefined();
    expect(cache.get("h2")).toEqual(auth("key_2"));
    expect(cache.size).toBe(1);
  });
});

describe("authenticateKey", () => {
  it("answers from a warm cache without D1 until the TTL passes", async () => {
    const { workspaceId, key, keyId } = await makeWorkspace(["agents:read"]);
    let now = 0;
    const cache = new AuthCache(5_000, 10, () => now);
    const db = createDb(env.DB);

    const first = await authenticateKey(db, key, cache);
    expect(first).toEqual({ workspaceId, workspaceName: "Test workspace", keyId, scopes: ["agents:read"] });

    // Gone from D1, but this isolate still knows it for the rest of the TTL.
    await env.DB.prepare("DELETE FROM api_keys WHERE id = ?").bind(keyId).run();
    now = 4_999;
    expect(await authenticateKey(db, key, cache)).toEqual(first);
    now = 5_000;
    expect(await authenticateKey(db, key, cache)).toBeNull();
  });

  it("returns null for malformed, unknown and revoked keys", async () => {
    const { key, keyId } = await makeWorkspace();
    const db = createDb(env.DB);
    const cache = new AuthCache(5_000, 10, () => 0);
    expect(await authenticateKey(db, "cairn_sk_short", cache)).toBeNull();
    expect(await authenticateKey(db, WELL_FORMED_UNKNOWN_KEY, cache)).toBeNull();
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), keyId).run();
    expect(await authenticateKey(db, key, cache)).toBeNull();
    expect(cache.size).toBe(0);
  });

  it("serves the front door from the isolate's cache", async () => {
    const { key, keyId } = await makeWorkspace();
    expect((await api("/v1/auth/status", { key })).status).toBe(200);
    // Deleting the row behind the API's back: a warm isolate keeps answering for up to the TTL.
    await env.DB.prepare("DELETE FROM api_keys WHERE id = ?").bind(keyId).run();
    expect((await api("/v1/auth/status", { key })).status).toBe(200);
    authCache.evictKey(keyId);
    expectError(await api("/v1/auth/status", { key }), 401, "unauthorized");
  });
});
