import { and, count, desc, eq, notExists } from "drizzle-orm";
import { Hono } from "hono";
import { agents, identities as identitiesTable } from "../db/schema";
import type { AppEnv } from "../env";
import { conflict, notFound } from "../lib/errors";
import { newId } from "../lib/ids";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { idempotency } from "../middleware/idempotency";
import { describeRoute } from "../openapi/route-doc";
import { findIdentity, identityColumns, toIdentityJson } from "../identities/identity-record";
import { Deleted, IdParam } from "../schemas/common";
import { CreateIdentityBody, IdentityEnvelope, IdentityList, ListIdentitiesQuery, UpdateIdentityBody } from "../schemas/identities";

const owned = (workspaceId: string, id: string) => and(eq(identitiesTable.workspaceId, workspaceId), eq(identitiesTable.id, id));

export const identities = new Hono<AppEnv>()
  .get("/", describeRoute({
    summary: "List identities",
    description: "Lists the workspace's sending identities, newest first.",
    tag: "Identities",
    success: { status: 200, description: "Newest first", schema: IdentityList },
  }), requireScope("identities:read"), validate("query", ListIdentitiesQuery), async (c) => {
    const { limit, offset } = c.req.valid("query");
    const where = eq(identitiesTable.workspaceId, c.var.auth.workspaceId);
    const [rows, [totals]] = await c.var.db.batch([
      c.var.db.select().from(identitiesTable).where(where).orderBy(desc(identitiesTable.id)).limit(limit).offset(offset),
      c.var.db.select({ total: count() }).from(identitiesTable).where(where),
    ]);
    return c.json({ status: "success", identities: rows.map(toIdentityJson), total: totals!.total, limit, offset });
  })

  .post("/", describeRoute({
    summary: "Create an identity",
    description: "Creates a sending identity: a name, an address and the window in which it may send.",
    tag: "Identities",
    success: { status: 201, description: "Created", schema: IdentityEnvelope },
  }), requireScope("identities:write"), idempotency, validate("json", CreateIdentityBody), async (c) => {
    const now = new Date();
    const [row] = await c.var.db
      .insert(identitiesTable)
      .values({
        id: newId("id"),
        workspaceId: c.var.auth.workspaceId,
        dailyLimit: 50,
        sendWindow: null,
        ...identityColumns(c.req.valid("json")),
        firstName: c.req.valid("json").first_name,
        createdAt: now,
        updatedAt: now,
      })
      .returning();
    return c.json({ status: "success", identity: toIdentityJson(row!) }, 201);
  })

  .get("/:id", describeRoute({
    summary: "Get an identity",
    description: "Gets one sending identity.",
    tag: "Identities",
    success: { status: 200, description: "The identity", schema: IdentityEnvelope },
  }), requireScope("identities:read"), validate("param", IdParam), async (c) => {
    const identity = await findIdentity(c.var.db, c.var.auth.workspaceId, c.req.valid("param").id);
    if (!identity) throw notFound("identity");
    return c.json({ status: "success", identity: toIdentityJson(identity) });
  })

  .patch("/:id", describeRoute({
    summary: "Update an identity",
    description: "Updates a sending identity; `send_window` is replaced whole.",
    tag: "Identities",
    success: { status: 200, description: "Updated", schema: IdentityEnvelope },
  }), requireScope("identities:write"), idempotency, validate("param", IdParam), validate("json", UpdateIdentityBody), async (c) => {
    const [row] = await c.var.db
      .update(identitiesTable)
      .set({ ...identityColumns(c.req.valid("json")), updatedAt: new Date() })
      .where(owned(c.var.auth.workspaceId, c.req.valid("param").id))
      .returning();
    if (!row) throw notFound("identity");
    return c.json({ status: "success", identity: toIdentityJson(row) });
  })

  .delete("/:id", describeRoute({
    summary: "Delete an identity",
    description: "Deletes a sending identity no agent uses.",
    tag: "Identities",
    success: { status: 200, description: "Deleted", schema: Deleted },
    errors: { 409: "An agent uses the identity (`in_use`)" },
  }), requireScope("identities:write"), validate("param", IdParam), async (c) => {
    const { id } = c.req.valid("param");
    const { workspaceId } = c.var.auth;
    // One statement decides: an agent that takes the identity meanwhile keeps it alive.
    const inUse = c.var.db.select({ id: agents.id }).from(agents).where(eq(agents.identityId, id));
    const [deleted] = await c.var.db
      .delete(identitiesTable)
      .where(and(owned(workspaceId, id), notExists(inUse)))
      .returning({ id: identitiesTable.id });
    if (deleted) return c.json({ status: "success", deleted: true, id });

    if (!(await findIdentity(c.var.db, workspaceId, id))) throw notFound("identity");
    const users = await inUse.limit(5);
    throw conflict(
      "in_use",
      "This identity is used by agents; point them at another identity first",
      users.map((agent) => ({ path: "agents", message: `Used by ${agent.id}` })),
    );
  });
