import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { seal, unseal } from "../src/lib/crypto";
import { claimKey, completeKey, LOCK_MS, purgeExpiredKeys, releaseKey, RETENTION_MS } from "../src/lib/idempotency";

describe("seal and unseal", () => {
  it("round-trips a body, large ones included", async () => {
    const body = JSON.stringify({ text: "\u00e9\u{1F600}".repeat(50_000) });
    const sealed = await seal("token", "ctx", body);
    expect(sealed).not.toContain("\u00e9");
    expect(await unseal("token", "ctx", sealed)).toBe(body);
  });

  it("gives nothing back for another secret, another context or garbage", async () => {
    const sealed = await seal("token", "ctx", "{}");
    expect(await seal("token", "ctx", "{}")).not.toBe(sealed);
    expect(await unseal("other", "ctx", sealed)).toBeNull();
    expect(await unseal("token", "other", sealed)).toBeNull();
    expect(await unseal("token", "ctx", "{}")).toBeNull();
    expect(await unseal("token", "ctx", "")).toBeNull();
  });
});

describe("claimKey, completeKey and releaseKey", () => {
  const db = () => createDb(env.DB);
  const T0 = Date.UTC(2026, 10, 23, 9, 0, 0);

  it("claims a fresh key, then reports it in flight to the same request", async () => {
    expect(await claimKey(db(), "ws_a", "k1", "fp", T0)).toEqual({ kind: "claimed" });
    expect(await claimKey(db(), "ws_a", "k1", "fp", T0 + 1_000)).toEqual({ kind: "in_flight" });
  });

  it("reports a mismatch to a different request, in flight or done", async () => {
    await claimKey(db(), "ws_a", "k2", "fp", T0);
    expect(await claimKey(db(), "ws_a", "k2", "other", T0 + 1)).toEqual({ kind: "mismatch" });
    await completeKey(db(), "ws_a", "k2", 201, '{"ok":true}');
    expect(await claimKey(db(), "ws_a", "k2", "other", T0 + 2)).toEqual({ kind: "mismatch" });
  });

  it("replays a completed key with its status and body", async () => {
    await claimKey(db(), "ws_a", "k3", "fp", T0);
    await completeKey(db(), "ws_a", "k3", 201, '{"status":"success"}');
    const replay = { kind: "replay", status: 201, body: '{"status":"success"}' };
    expect(await claimKey(db(), "ws_a", "k3", "fp", T0 + 1)).toEqual(replay);
    // A finished record is never "abandoned", however long after its lock.
    expect(await claimKey(db(), "ws_a", "k3", "fp", T0 + LOCK_MS * 10)).toEqual(replay);
  });

  it("frees a released key for the next claim", async () => {
    await claimKey(db(), "ws_a", "k4", "fp", T0);
    await releaseKey(db(), "ws_a", "k4");
    expect(await claimKey(db(), "ws_a", "k4", "other", T0 + 1)).toEqual({ kind: "claimed" });
  });

  it("lets the same request take over an abandoned claim once its lock has passed", async () => {
    await claimKey(db(), "ws_a", "k5", "fp", T0);
    expect(await claimKey(db(), "ws_a", "k5", "fp", T0 + LOCK_MS - 1)).toEqual({ kind: "in_flight" });
    expect(await claimKey(db(), "ws_a", "k5", "fp", T0 + LOCK_MS + 1)).toEqual({ kind: "claimed" });
    // The takeover holds a fresh lock.
    expect(await claimKey(db(), "ws_a", "k5", "fp", T0 + LOCK_MS + 2)).toEqual({ kind: "in_flight" });
  });

  it("never lets a different request take over an abandoned claim", async () => {
    await claimKey(db(), "ws_a", "k6", "fp", T0);
    expect(await claimKey(db(), "ws_a", "k6", "other", T0 + LOCK_MS + 1)).toEqual({ kind: "mismatch" });
    const row = await env.DB.prepare("SELECT fingerprint, state FROM idempotency_keys WHERE scope = ? AND key = ?").bind("ws_a", "k6").first();
    expect(row).toEqual({ fingerprint: "fp", state: "in_flight" });
  });

  it("lets anyone claim a key whose record is older than 24 hours", async () => {
    await claimKey(db(), "ws_a", "k7", "fp", T0);
    await completeKey(db(), "ws_a", "k7", 201, "{}");
    expect(await claimKey(db(), "ws_a", "k7", "other", T0 + RETENTION_MS)).toEqual({ kind: "mismatch" });
    expect(await claimKey(db(), "ws_a", "k7", "other", T0 + RETENTION_MS + 1)).toEqual({ kind: "claimed" });
    const row = await env.DB.prepare("SELECT fingerprint, state, response_body FROM idempotency_keys WHERE key = ?").bind("k7").first();
    expect(row).toEqual({ fingerprint: "other", state: "in_flight", response_body: null });
  });

  it("scopes keys: one key in two scopes is two records", async () => {
    expect(await claimKey(db(), "ws_a", "k8", "fp", T0)).toEqual({ kind: "claimed" });
    expect(await claimKey(db(), "ws_b", "k8", "other", T0)).toEqual({ kind: "claimed" });
    await releaseKey(db(), "ws_a", "k8");
    expect(await claimKey(db(), "ws_b", "k8", "other", T0 + 1)).toEqual({ kind: "in_flight" });
  });

  it("gives exactly one of many concurrent claims the key", async () => {
    const claims = await Promise.all(Array.from({ length: 5 }, () => claimKey(db(), "ws_a", "k9", "fp", T0)));
    expect(claims.filter((c) => c.kind === "claimed")).toHaveLength(1);
    expect(claims.filter((c) => c.kind === "in_flight")).toHaveLength(4);
  });

  it("purges only records older than 24 hours", async () => {
    await claimKey(db(), "ws_p", "old", "fp", T0 - RETENTION_MS - 1);
    await claimKey(db(), "ws_p", "new", "fp", T0 - RETENTION_MS + 1);
    await purgeExpiredKeys(db(), T0);
    const { results } = await env.DB.prepare("SELECT key FROM idempotency_keys WHERE scope = 'ws_p'").all();
    expect(results).toEqual([{ key: "new" }]);
  });
});
