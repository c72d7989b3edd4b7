import { Hono } from "hono";
import type { AppEnv } from "../env";
import { requireKey } from "../middleware/auth";
import { openApiDocument } from "../openapi/document";

/** Routes that describe the service itself. */
export const meta = new Hono<AppEnv>()
  .get("/health", (c) => c.json({ status: "success", healthy: true, time: new Date().toISOString() }))
  .get("/openapi.json", (c) => c.json(openApiDocument()))
  .get("/auth/status", requireKey, (c) => {
    const { workspaceId, workspaceName, keyId, scopes } = c.var.auth;
    return c.json({ status: "success", authenticated: true, workspace: { id: workspaceId, name: workspaceName }, key_id: keyId, scopes });
  });
