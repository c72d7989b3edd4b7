import { eq, sql } from "drizzle-orm";
import { Hono } from "hono";
import { apiKeys, workspaces } from "../db/schema";
import type { AppEnv } from "../env";
import { authCache, generateKey, hashKey } from "../lib/auth";
import { notFound } from "../lib/errors";
import { newId } from "../lib/ids";
import { iso } from "../lib/time";
import { validate } from "../lib/validate";
import { requireAdmin } from "../middleware/auth";
import { jsonBody } from "../middleware/body";
import { idempotency } from "../middleware/idempotency";
import { describeRoute } from "../openapi/route-doc";
import { ApiKey, CreateApiKeyBody, CreateWorkspaceBody, Workspace } from "../schemas/admin";
import { IdParam, ok } from "../schemas/common";

/** Operator endpoints: bootstrap workspaces and keys with the ADMIN_TOKEN secret. */
export const admin = new Hono<AppEnv>()
  .use(requireAdmin, jsonBody, idempotency)

  .post("/workspaces", describeRoute({
    summary: "Create a workspace",
    description: "Creates an empty workspace: the boundary of every agent, contact and key.",
    tag: "Admin",
    success: { status: 201, description: "Created", schema: ok({ workspace: Workspace }) },
  }), validate("json", CreateWorkspaceBody), async (c) => {
    const [row] = await c.var.db
      .insert(workspaces)
      .values({ id: newId("ws"), name: c.req.valid("json").name, createdAt: new Date() })
      .returning();
    return c.json({ status: "success", workspace: { id: row!.id, name: row!.name, created_at: iso(row!.createdAt) } }, 201);
  })

  .post("/workspaces/:id/api-keys", describeRoute({
    summary: "Create an API key",
    description: "Creates an API key for the workspace with the given scopes (all of them when none are named). The key itself is shown only in this answer; Cairn keeps its hash.",
    tag: "Admin",
    success: { status: 201, description: "Created; `key` is shown only here", schema: ok({ api_key: ApiKey }) },
  }), validate("param", IdParam), validate("json", CreateApiKeyBody), async (c) => {
    const workspace = await c.var.db.query.workspaces.findFirst({ where: eq(workspaces.id, c.req.valid("param").id) });
    if (!workspace) throw notFound("workspace");
    const { name, scopes } = c.req.valid("json");
    const key = generateKey();
    const [row] = await c.var.db
      .insert(apiKeys)
      .values({ id: newId("key"), workspaceId: workspace.id, name: name ?? null, keyHash: await hashKey(key), scopes, createdAt: new Date() })
      .returning();
    return c.json(
      {
        status: "success",
        api_key: { id: row!.id, workspace_id: workspace.id, name: row!.name, scopes: row!.scopes, created_at: iso(row!.createdAt), key },
      },
      201,
    );
  })

  .delete("/api-keys/:id", describeRoute({
    summary: "Revoke an API key",
    description: "Revokes a key. Revoking it again keeps the first revocation time.",
    tag: "Admin",
    success: { status: 200, description: "Revoked; stops working within 10 seconds", schema: ok({ api_key: ApiKey }) },
  }), validate("param", IdParam), async (c) => {
    const { id } = c.req.valid("param");
    // Revoking again keeps the first revocation time.
    const [row] = await c.var.db
      .update(apiKeys)
      .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, ${Date.now()})` })
      .where(eq(apiKeys.id, id))
      .returning();
    if (!row) throw notFound("API key");
    // This isolate forgets the key now; others within the cache's TTL.
    authCache.evictKey(id);
    return c.json({
      status: "success",
      api_key: { id: row.id, workspace_id: row.workspaceId, name: row.name, scopes: row.scopes, created_at: iso(row.createdAt), revoked_at: iso(row.revokedAt) },
    });
  });
