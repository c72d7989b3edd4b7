import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { seal, sha256Hex, unseal } from "../lib/crypto";
import { ApiError, validationError } from "../lib/errors";
import { claimKey, completeKey, releaseKey } from "../lib/idempotency";
import { documented } from "../openapi/route-doc";

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
/** Workspace routes whose answers carry a secret shown once: a webhook endpoint's create and rotate-secret. */
const SECRET_BEARING = /^\/v1\/webhook-endpoints\/?(?:[^/]+\/rotate-secret\/?)?$/;

/**
 * Honours `Idempotency-Key` on POST and PATCH (CONTRACT.md section 1). Keys are scoped
 * to the caller's workspace, or to the operator for admin routes. Put it after the route's
 * scope check: a key without the scope must never be answered from a stored response.
 */
const honourIdempotencyKey = createMiddleware<AppEnv>(async (c, next) => {
  const key = c.req.header("Idempotency-Key");
  if (key === undefined || (c.req.method !== "POST" && c.req.method !== "PATCH")) return next();
  if (!KEY_PATTERN.test(key)) {
    throw validationError("Idempotency-Key must be 1-255 visible ASCII characters", [
      { path: "Idempotency-Key", message: "Invalid header value" },
    ]);
  }

  const db = c.var.db;
  const scope = c.var.auth?.workspaceId ?? "admin";
  const url = new URL(c.req.url);
  const fingerprint = await sha256Hex(`${c.req.method} ${url.pathname}${url.search}\n${await c.req.text()}`);

  // Operator responses can carry a new API key's secret, and creating or rotating a webhook
  // endpoint answers its signing secret, which D1 must never hold readable (CONTRACT.md
  // sections 2 and 12): they are stored sealed, with ADMIN_TOKEN and ENCRYPTION_KEY.
  const sealWith = scope === "admin" ? c.env.ADMIN_TOKEN : SECRET_BEARING.test(url.pathname) ? c.env.ENCRYPTION_KEY : undefined;
  const context = `idempotency:${scope}:${key}`;

  const claim = await claimKey(db, scope, key, fingerprint);
  // A sealed body that will not open was stored under an ADMIN_TOKEN since rotated.
  const replayBody = claim.kind !== "replay" ? null : sealWith ? await unseal(sealWith, context, claim.body) : claim.body;
  if (claim.kind === "mismatch" || (claim.kind === "replay" && replayBody === null)) {
    throw new ApiError(422, "idempotency_key_reused", "This Idempotency-Key was used with a different request");
  }
  if (claim.kind === "in_flight") {
    throw new ApiError(409, "idempotency_key_in_use", "A request with this Idempotency-Key is still in progress");
  }
  if (claim.kind === "replay" && replayBody !== null) {
    const headers = new Headers({ "Content-Type": "application/json", "Idempotent-Replayed": "true" });
    // An error body carries its request id; the header must keep agreeing with it.
    const originalId = /"request_id":"(req_[0-9A-Z]+)"/.exec(replayBody)?.[1];
    if (originalId) headers.set("Request-Id", originalId);
    return new Response(replayBody, { status: claim.status, headers });
  }

  try {
    await next();
  } catch (error) {
    await releaseKey(db, scope, key);
    throw error;
  }
  // A failure on our side, or a conflict that says "retry", is no outcome to replay:
  // free the key so the retry runs.
  if (c.res.status >= 500 || (c.error instanceof ApiError && c.error.retryable)) {
    await releaseKey(db, scope, key);
    return;
  }
  // The handler's effect has committed, so its answer stands even if it cannot be stored:
  // the claim then stays in flight and a prompt retry gets 409, not a second execution.
  const body = await c.res.clone().text();
  try {
    await completeKey(db, scope, key, c.res.status, sealWith ? await seal(sealWith, context, body) : body);
  } catch (error) {
    console.error(JSON.stringify({ level: "error", request_id: c.var.requestId, message: `Idempotency-Key ${key} not recorded: ${String(error)}` }));
  }
});
export const idempotency = documented(honourIdempotencyKey, { kind: "idempotency" });
