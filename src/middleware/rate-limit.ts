import { createMiddleware } from "hono/factory";
import type { AppEnv, Env } from "../env";
import { ApiError } from "../lib/errors";
import { documented } from "../openapi/route-doc";

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

const refuse = (who: string) =>
  new ApiError(429, "rate_limited", `Too many requests for ${who}; try again within ${RATE_PERIOD_S} seconds`, undefined, {
    "Retry-After": String(RATE_PERIOD_S),
  });

/**
 * Per-key rate limits (CONTRACT.md section 13), with the `[[ratelimits]]` bindings: after the
 * key check (a caller is limited by its key) and before the body and Idempotency-Key, so a
 * refused request reads nothing and keeps no key. A deployment without a binding is not limited.
 */
const limitByKey = createMiddleware<AppEnv>(async (c, next) => {
  const limiter = limiterFor(c.env, c.req.method, c.req.path);
  if (limiter && !(await limiter.limit({ key: c.var.auth.keyId })).success) throw refuse("this API key");
  await next();
});
export const rateLimit = documented(limitByKey, { kind: "rate-limit", per: "key" });

/**
 * The public, keyless reads (health, the OpenAPI document, the reference page) are limited
 * per client address with PUBLIC_LIMITER. Unsubscribe links and provider webhooks are not
 * limited at all: a recipient's opt-out or a bounce must never be turned away.
 */
const limitByAddress = createMiddleware<AppEnv>(async (c, next) => {
  const limiter = c.env.PUBLIC_LIMITER;
  const address = c.req.header("CF-Connecting-IP") ?? "unknown";
  if (limiter && !(await limiter.limit({ key: address })).success) throw refuse("this address");
  await next();
});
export const publicRateLimit = documented(limitByAddress, { kind: "rate-limit", per: "address" });
