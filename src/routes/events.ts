import { Hono } from "hono";
import { findContactsByEmails, findContactsByIds } from "../contacts/contact-record";
import type { AppEnv } from "../env";
import { validationError, type ErrorDetail } from "../lib/errors";
import { newId } from "../lib/ids";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { idempotency } from "../middleware/idempotency";
import { describeRoute } from "../openapi/route-doc";
import { toEventJson, type EventRow } from "../events/event-record";
import { recordEvents } from "../events/record-events";
import { CreateEventsBody, EventsCreated } from "../schemas/events";

export const events = new Hono<AppEnv>().post("/", describeRoute({
  summary: "Record events",
  description: "Records 1-100 events of contacts, by id or email, all or none. Enabled event-driven agents watching a type start runs for the contacts that match.",
  tag: "Events",
  success: { status: 201, description: "Stored, all or none", schema: EventsCreated },
}), requireScope("events:write"), idempotency, validate("json", CreateEventsBody), async (c) => {
  const { db } = c.var;
  const { workspaceId } = c.var.auth;
  const input = c.req.valid("json").events;

  // Resolve every addressed contact first: one unknown contact and nothing is stored.
  const ids = input.flatMap((e) => (e.contact_id ? [e.contact_id] : []));
  const emails = input.flatMap((e) => (e.email ? [e.email] : []));
  const [byId, byEmail] = await Promise.all([findContactsByIds(db, workspaceId, ids), findContactsByEmails(db, workspaceId, emails)]);
  const idSet = new Set(byId.map((row) => row.id));
  const emailMap = new Map(byEmail.map((row) => [row.emailKey, row.id]));

  const resolved = input.map((e) =>
    e.contact_id ? (idSet.has(e.contact_id) ? e.contact_id : undefined) : emailMap.get(e.email!.toLowerCase()),
  );
  const missing: ErrorDetail[] = input.flatMap((e, i) => {
    if (resolved[i]) return [];
    return e.contact_id
      ? [{ path: `events.${i}.contact_id`, message: `No such contact ${e.contact_id}` }]
      : [{ path: `events.${i}.email`, message: `No contact with email ${e.email}` }];
  });
  if (missing.length > 0) throw validationError("Some events name contacts that do not exist; none were stored", missing);

  const now = new Date();
  const rows: EventRow[] = input.map((e, i) => ({
    id: newId("evt"),
    workspaceId,
    contactId: resolved[i]!,
    type: e.type,
    url: e.url ?? null,
    properties: (e.properties ?? {}) as Record<string, unknown>,
    occurredAt: e.occurred_at ? new Date(e.occurred_at) : now,
    createdAt: now,
  }));

  await recordEvents(db, c.env, workspaceId, rows);

  return c.json({ status: "success", events: rows.map(toEventJson) }, 201);
});
