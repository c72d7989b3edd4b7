import { and, count, desc, eq } from "drizzle-orm";
import { Hono } from "hono";
import { contacts, deliveries, identities } from "../db/schema";
import type { AppEnv } from "../env";
import { iso } from "../lib/time";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { describeRoute } from "../openapi/route-doc";
import { ListOutboxQuery, OutboxList } from "../schemas/runs";

/** The workspace outbox: every delivery, whatever the transport, with how it left and what became of it. */
export const outbox = new Hono<AppEnv>().get("/", describeRoute({
  summary: "List outbox deliveries",
  description: "Lists outbound deliveries, newest first: what approved actions sent or, with the `outbox` transport, would have sent.",
  tag: "Runs",
  success: { status: 200, description: "What outbound actions would have sent, newest first", schema: OutboxList },
}), requireScope("agents:read"), validate("query", ListOutboxQuery), async (c) => {
  const { limit, offset, run_id, contact_id, status } = c.req.valid("query");
  const where = and(
    eq(deliveries.workspaceId, c.var.auth.workspaceId),
    run_id ? eq(deliveries.runId, run_id) : undefined,
    contact_id ? eq(deliveries.contactId, contact_id) : undefined,
    status ? eq(deliveries.status, status) : undefined,
  );
  // Two round trips here: drizzle's batch mis-maps the JSON columns of a joined select.
  const [rows, [totals]] = await Promise.all([
    c.var.db
      .select()
      .from(deliveries)
      .leftJoin(contacts, eq(contacts.id, deliveries.contactId))
      .leftJoin(identities, eq(identities.id, deliveries.identityId))
      .where(where)
      .orderBy(desc(deliveries.id))
      .limit(limit)
      .offset(offset),
    c.var.db.select({ total: count() }).from(deliveries).where(where),
  ]);
  return c.json({
    status: "success",
    deliveries: rows.map(({ deliveries: d, contacts: ct, identities: id }) => ({
      id: d.id,
      channel: d.channel,
      action: { run_id: d.runId, agent_id: d.agentId, contact_id: d.contactId, index: d.actionIndex, type: d.actionType },
      contact: ct ? { id: ct.id, email: ct.email, first_name: ct.firstName, last_name: ct.lastName } : null,
      identity: id ? { id: id.id, first_name: id.firstName, last_name: id.lastName, email_address: id.emailAddress } : null,
      params: d.params,
      transport: d.transport,
      status: d.status,
      message_id: d.messageId,
      provider_message_id: d.providerMessageId,
      send_day: d.sendDay,
      error: d.error,
      created_at: iso(d.createdAt)!,
      updated_at: iso(d.updatedAt),
    })),
    total: totals!.total,
    limit,
    offset,
  });
});
