import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { createDb } from "../db/client";
import { newId } from "../lib/ids";

/** Gives every request an id (echoed as `Request-Id`) and its Drizzle handle. */
export const requestContext = createMiddleware<AppEnv>(async (c, next) => {
  const requestId = newId("req");
  c.set("requestId", requestId);
  c.set("db", createDb(c.env.DB));
  await next();
  if (!c.res.headers.has("Request-Id")) c.res.headers.set("Request-Id", requestId);
});
