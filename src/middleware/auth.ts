import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { authenticateKey } from "../lib/auth";
import { secretsEqual } from "../lib/crypto";
import { ApiError, notFound, unauthorized } from "../lib/errors";
import type { Scope } from "../lib/scopes";
import { documented } from "../openapi/route-doc";

const bearer = (header: string | undefined) => /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];

/** Requires a valid, unrevoked API key and exposes its workspace as `c.var.auth`. */
export const requireKey = documented(
  createMiddleware<AppEnv>(async (c, next) => {
    const key = bearer(c.req.header("Authorization"));
    const auth = key ? await authenticateKey(c.var.db, key) : null;
    if (!auth) throw unauthorized();
    c.set("auth", auth);
    await next();
  }),
  { kind: "key" },
);

/**
 * Requires the route's scope. Routes that honour Idempotency-Key put `idempotency` after it,
 * so a key without the scope can never be answered from another key's stored response.
 */
export const requireScope = (scope: Scope) =>
  documented(
    createMiddleware<AppEnv>(async (c, next) => {
      if (!c.var.auth.scopes.includes(scope)) {
        throw new ApiError(403, "insufficient_scope", `This API key lacks the ${scope} scope`, [
          { path: "scope", message: `Requires ${scope}` },
        ]);
      }
      await next();
    }),
    { kind: "scope", scope },
  );

/** Operator routes: 404 while ADMIN_TOKEN is unset, 401 unless the bearer token matches it. */
export const requireAdmin = documented(
  createMiddleware<AppEnv>(async (c, next) => {
    const expected = c.env.ADMIN_TOKEN;
    if (!expected) throw notFound("route");
    const token = bearer(c.req.header("Authorization"));
    if (!token || !(await secretsEqual(token, expected))) throw unauthorized();
    await next();
  }),
  { kind: "admin" },
);
