import { createMiddleware } from "hono/factory";
import type { AppEnv, Env } from "../env";
import { ApiError } from "../lib/errors";

/**
 * The window of every limiter in wrangler.toml (`simple.period`): a caller refused now has
 * room again within it, so it is the Retry-After.
 */
export const RATE_PERIOD_S = 60;

/** Which limiter a request counts against: reads, writes, or the MCP endpoint. */
function limiterFor(env: Env, method: string, path: string): RateLimit | undefined {
  if (path === "/mcp" || path.startsWith("/mcp/")) return env.MCP_LIMITER;
  return method === "GET" || method === "HEAD" ? env.READ_LIMITER : env.WRITE_LIMITER;
}

/**
 * Per-key rate limits (CONTRACT.md section 13), with the `[[ratelimits]]` bindings: after the
 * key check (a caller is limited by its key) and before the body and Idempotency-Key, so a
 * refused request reads nothing and keeps no key. A deployment without a binding is not limited.
 */
export const rateLimit = createMiddleware<AppEnv>(async (c, next) => {
  const limiter = limiterFor(c.env, c.req.method, c.req.path);
  if (limiter && !(await limiter.limit({ key: c.var.auth.keyId })).success) {
    throw new ApiError(429, "rate_limited", `Too many requests for this API key; try again within ${RATE_PERIOD_S} seconds`, undefined, {
      "Retry-After": String(RATE_PERIOD_S),
    });
  }
  await next();
});
