import { and, count, desc, eq, type SQL } from "drizzle-orm";
import { Hono } from "hono";
import { configColumns, configFromCreate, configFromPatch, configFromRow, toAgentJson, type AgentConfig } from "../agents/agent-record";
import { notConfigured, providerConfigured } from "../runs/generators";
import type { Db } from "../db/client";
import { agents as agentsTable, runs } from "../db/schema";
import type { AppEnv, Env } from "../env";
import { findIdentity } from "../identities/identity-record";
import { conflict, notFound, validationError } from "../lib/errors";
import { chunk } from "../lib/d1";
import { newId } from "../lib/ids";
import { runStub } from "../runs/run-stub";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { idempotency } from "../middleware/idempotency";
import { describeRoute } from "../openapi/route-doc";
import { AgentEnvelope, AgentList, CreateAgentBody, ListAgentsQuery, UpdateAgentBody } from "../schemas/agents";
import { Deleted, IdParam } from "../schemas/common";

export async function findAgent(db: Db, workspaceId: string, id: string) {
  return db.query.agents.findFirst({
    where: and(eq(agentsTable.workspaceId, workspaceId), eq(agentsTable.id, id)),
  });
}

/** What the agent answer says the agent cannot do in this deployment (CONTRACT.md section 10). */
function warningsFor(config: AgentConfig, env: Env) {
  const { provider } = config.llm_config;
  if (providerConfigured(provider, env)) return {};
  return { warnings: [{ code: "provider_not_configured", message: notConfigured(provider) }] };
}

/** An agent may only send as an identity of its own workspace. */
async function assertIdentity(db: Db, workspaceId: string, identityId: string | null) {
  if (identityId && !(await findIdentity(db, workspaceId, identityId))) {
    throw validationError("identity_id names no identity of this workspace", [{ path: "identity_id", message: "No such identity" }]);
  }
}

export const agents = new Hono<AppEnv>()
  .get("/", describeRoute({
    summary: "List agents",
    description: "Lists the workspace's agents, newest first, filtered by `enabled` and `playbook_template`.",
    tag: "Agents",
    success: { status: 200, description: "Newest first", schema: AgentList },
  }), requireScope("agents:read"), validate("query", ListAgentsQuery), async (c) => {
    const { limit, offset, enabled, playbook_template } = c.req.valid("query");
    const filters: SQL[] = [eq(agentsTable.workspaceId, c.var.auth.workspaceId)];
    if (enabled !== undefined) filters.push(eq(agentsTable.enabled, enabled));
    if (playbook_template) filters.push(eq(agentsTable.playbookTemplate, playbook_template));
    const where = and(...filters);

    const [rows, [totals]] = await c.var.db.batch([
      c.var.db.select().from(agentsTable).where(where).orderBy(desc(agentsTable.id)).limit(limit).offset(offset),
      c.var.db.select({ total: count() }).from(agentsTable).where(where),
    ]);
    return c.json({ status: "success", agents: rows.map(toAgentJson), total: totals!.total, limit, offset });
  })

  .post("/", describeRoute({
    summary: "Create an agent",
    description: "Creates an agent. The answer carries `warnings` when the agent's LLM provider is not configured in this deployment.",
    tag: "Agents",
    success: { status: 201, description: "Created", schema: AgentEnvelope },
  }), requireScope("agents:write"), idempotency, validate("json", CreateAgentBody), async (c) => {
    const config = configFromCreate(c.req.valid("json"));
    await assertIdentity(c.var.db, c.var.auth.workspaceId, config.identity_id);
    const now = new Date();
    const [row] = await c.var.db
      .insert(agentsTable)
      .values({ id: newId("agt"), workspaceId: c.var.auth.workspaceId, ...configColumns(config), createdAt: now, updatedAt: now })
      .returning();
    return c.json({ status: "success", agent: toAgentJson(row!), ...warningsFor(config, c.env) }, 201);
  })

  .get("/:id", describeRoute({
    summary: "Get an agent",
    description: "Gets one agent with its whole configuration.",
    tag: "Agents",
    success: { status: 200, description: "The agent", schema: AgentEnvelope },
  }), requireScope("agents:read"), validate("param", IdParam), async (c) => {
    const agent = await findAgent(c.var.db, c.var.auth.workspaceId, c.req.valid("param").id);
    if (!agent) throw notFound("agent");
    return c.json({ status: "success", agent: toAgentJson(agent) });
  })

  .patch("/:id", describeRoute({
    summary: "Update an agent",
    description: "Updates an agent. Top-level fields merge; `playbook`, `monitoring` and `llm_config` are replaced whole.",
    tag: "Agents",
    success: { status: 200, description: "Updated", schema: AgentEnvelope },
  }), requireScope("agents:write"), idempotency, validate("param", IdParam), validate("json", UpdateAgentBody), async (c) => {
    const { id } = c.req.valid("param");
    const { workspaceId } = c.var.auth;
    // Compare-and-set on updated_at: a PATCH that raced another is merged again over the
    // newer agent rather than writing back fields it read before the other one landed.
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await findAgent(c.var.db, workspaceId, id);
      if (!current) throw notFound("agent");
      const config = configFromPatch(configFromRow(current), c.req.valid("json"));
      if (config.identity_id !== current.identityId) await assertIdentity(c.var.db, workspaceId, config.identity_id);
      const [row] = await c.var.db
        .update(agentsTable)
        .set({ ...configColumns(config), updatedAt: new Date(Math.max(Date.now(), current.updatedAt.getTime() + 1)) })
        .where(and(eq(agentsTable.workspaceId, workspaceId), eq(agentsTable.id, id), eq(agentsTable.updatedAt, current.updatedAt)))
        .returning();
      if (row) return c.json({ status: "success", agent: toAgentJson(row), ...warningsFor(config, c.env) });
    }
    throw conflict("concurrent_update", "The agent is being updated by other requests; retry");
  })

  .delete("/:id", describeRoute({
    summary: "Delete an agent",
    description: "Deletes an agent with its runs, which stop at once; nothing they proposed is sent afterwards.",
    tag: "Agents",
    success: { status: 200, description: "Deleted with its runs", schema: Deleted },
  }), requireScope("agents:write"), validate("param", IdParam), async (c) => {
    const { db } = c.var;
    const agent = await findAgent(db, c.var.auth.workspaceId, c.req.valid("param").id);
    if (!agent) throw notFound("agent");
    // Run storage goes first: if this fails midway, the rows still point at what is left.
    const agentRuns = await db.select({ id: runs.id }).from(runs).where(eq(runs.agentId, agent.id));
    for (const part of chunk(agentRuns, 20)) await Promise.all(part.map((run) => runStub(c.env, run.id).destroy()));
    await db.delete(agentsTable).where(eq(agentsTable.id, agent.id)); // runs and their contacts cascade
    return c.json({ status: "success", deleted: true, id: agent.id });
  });
