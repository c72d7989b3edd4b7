import { and, eq, inArray } from "drizzle-orm";
import { Hono } from "hono";
import { findContactsByEmails, findContactsByIds } from "../contacts/contact-record";
import { contacts, events as eventsTable } from "../db/schema";
import type { AppEnv } from "../env";
import { chunk, rowsPerStatement } from "../lib/d1";
import { validationError, type ErrorDetail } from "../lib/errors";
import { newId } from "../lib/ids";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { toEventJson, type EventRow } from "../events/event-record";
import { signalStops } from "../runs/stop-signals";
import { CreateEventsBody } from "../schemas/events";

const EVENT_COLUMNS = 8;

export const events = new Hono<AppEnv>().post("/", requireScope("events:write"), validate("json", CreateEventsBody), async (c) => {
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

  const unsubscribed = [...new Set(rows.filter((r) => r.type === "contact.unsubscribed").map((r) => r.contactId))];
  const writes = [
    ...chunk(rows, rowsPerStatement(EVENT_COLUMNS)).map((part) => db.insert(eventsTable).values(part)),
    ...chunk(unsubscribed, 90).map((part) =>
      db
        .update(contacts)
        .set({ unsubscribed: true, updatedAt: now })
        .where(and(eq(contacts.workspaceId, workspaceId), inArray(contacts.id, part))),
    ),
  ];
  const [first, ...rest] = writes;
  await db.batch([first!, ...rest]);
  await signalStops(db, c.env, workspaceId, rows.map((r) => ({ contactId: r.contactId, type: r.type })));

  return c.json({ status: "success", events: rows.map(toEventJson) }, 201);
});
