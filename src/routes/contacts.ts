import { and, count, desc, eq, gte, inArray, lte, or, type SQL } from "drizzle-orm";
import { Hono } from "hono";
import { upsertContacts } from "../contacts/batch-upsert";
import { contactColumns, findContact, newContactRow, toContactJson } from "../contacts/contact-record";
import { contacts as contactsTable, events as eventsTable, notes as notesTable } from "../db/schema";
import type { AppEnv } from "../env";
import { isUniqueViolation } from "../lib/d1";
import { contains } from "../lib/sql";
import { conflict, notFound } from "../lib/errors";
import { newId } from "../lib/ids";
import { iso } from "../lib/time";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { idempotency } from "../middleware/idempotency";
import { describeRoute } from "../openapi/route-doc";
import { toEventJson } from "../events/event-record";
import { changesDetails, signalContacts, snapshotOf } from "../runs/stop-signals";
import { Deleted, IdParam, Pagination } from "../schemas/common";
import { BatchContactsBody, BatchResult, ContactEnvelope, ContactList, CreateContactBody, ListContactsQuery, NoteList, UpdateContactBody } from "../schemas/contacts";
import { EventList, ListEventsQuery } from "../schemas/events";

const duplicateEmail = (email: string) =>
  conflict("already_exists", `A contact with email ${email} already exists`, [{ path: "email", message: "Already in use" }]);

export const contacts = new Hono<AppEnv>()
  .get("/", describeRoute({
    summary: "List contacts",
    description: "Lists contacts, newest first, filtered by lifecycle stage, tags, a search over names, emails and companies, and more.",
    tag: "Contacts",
    success: { status: 200, description: "Newest first", schema: ContactList },
  }), requireScope("contacts:read"), validate("query", ListContactsQuery), async (c) => {
    const q = c.req.valid("query");
    const filters: SQL[] = [eq(contactsTable.workspaceId, c.var.auth.workspaceId)];
    if (q.lifecycle_stage) filters.push(inArray(contactsTable.lifecycleStage, q.lifecycle_stage));
    if (q.unsubscribed !== undefined) filters.push(eq(contactsTable.unsubscribed, q.unsubscribed));
    if (q.created_after) filters.push(gte(contactsTable.createdAt, new Date(q.created_after)));
    if (q.created_before) filters.push(lte(contactsTable.createdAt, new Date(q.created_before)));
    if (q.search) {
      const columns = [contactsTable.emailKey, contactsTable.firstName, contactsTable.lastName, contactsTable.company];
      filters.push(or(...columns.map((column) => contains(column, q.search!.toLowerCase())))!);
    }
    const where = and(...filters);
    const [rows, [totals]] = await c.var.db.batch([
      c.var.db.select().from(contactsTable).where(where).orderBy(desc(contactsTable.id)).limit(q.limit).offset(q.offset),
      c.var.db.select({ total: count() }).from(contactsTable).where(where),
    ]);
    return c.json({ status: "success", contacts: rows.map(toContactJson), total: totals!.total, limit: q.limit, offset: q.offset });
  })

  .post("/", describeRoute({
    summary: "Create a contact",
    description: "Creates a contact. Emails are unique per workspace, whatever their case.",
    tag: "Contacts",
    success: { status: 201, description: "Created", schema: ContactEnvelope },
    errors: { 409: "The email is taken, in any case (`already_exists`)" },
  }), requireScope("contacts:write"), idempotency, validate("json", CreateContactBody), async (c) => {
    const body = c.req.valid("json");
    const [row] = await c.var.db
      .insert(contactsTable)
      .values(newContactRow(newId("ct"), c.var.auth.workspaceId, body, new Date()))
      .onConflictDoNothing()
      .returning();
    if (!row) throw duplicateEmail(body.email);
    return c.json({ status: "success", contact: toContactJson(row) }, 201);
  })

  .post("/batch", describeRoute({
    summary: "Upsert contacts by email",
    description: "Creates or updates up to 1000 contacts by email in one transaction: all are stored or none.",
    tag: "Contacts",
    success: { status: 200, description: "All stored or none; counts of created and updated", schema: BatchResult },
  }), requireScope("contacts:write"), idempotency, validate("json", BatchContactsBody), async (c) => {
    const bodies = c.req.valid("json").contacts;
    const results = await upsertContacts(c.var.db, c.var.auth.workspaceId, bodies);
    const unsubscribing = new Set(bodies.filter((b) => b.unsubscribed === true).map((b) => b.email.toLowerCase()));
    const unsubscribed = results.filter((r) => unsubscribing.has(r.email.toLowerCase()));
    // Runs keep their contacts' details: updated ones are told, as are the unsubscribed.
    // Matched by email, so only its case can change there: other fields decide.
    const detailed = new Set(bodies.filter(({ email: _e, ...rest }) => changesDetails(rest)).map((b) => b.email.toLowerCase()));
    await signalContacts(c.var.db, c.env, c.var.auth.workspaceId, {
      stops: unsubscribed.map((r) => ({ contactId: r.id, reason: "unsubscribe" as const })),
      changedIds: results.filter((r) => !r.created && detailed.has(r.email.toLowerCase())).map((r) => r.id),
    });
    const created = results.filter((r) => r.created).length;
    return c.json({ status: "success", created, updated: results.length - created, contacts: results });
  })

  .get("/:id", describeRoute({
    summary: "Get a contact",
    description: "Gets one contact.",
    tag: "Contacts",
    success: { status: 200, description: "The contact", schema: ContactEnvelope },
  }), requireScope("contacts:read"), validate("param", IdParam), async (c) => {
    const contact = await findContact(c.var.db, c.var.auth.workspaceId, c.req.valid("param").id);
    if (!contact) throw notFound("contact");
    return c.json({ status: "success", contact: toContactJson(contact) });
  })

  .patch("/:id", describeRoute({
    summary: "Update a contact",
    description: "Updates a contact. Setting `unsubscribed` stops every sequence of the contact.",
    tag: "Contacts",
    success: { status: 200, description: "Updated", schema: ContactEnvelope },
  }), requireScope("contacts:write"), idempotency, validate("param", IdParam), validate("json", UpdateContactBody), async (c) => {
    const body = c.req.valid("json");
    let row;
    try {
      [row] = await c.var.db
        .update(contactsTable)
        .set({ ...contactColumns(body), updatedAt: new Date() })
        .where(and(eq(contactsTable.workspaceId, c.var.auth.workspaceId), eq(contactsTable.id, c.req.valid("param").id)))
        .returning();
    } catch (error) {
      if (isUniqueViolation(error)) throw duplicateEmail(body.email!);
      throw error;
    }
    if (!row) throw notFound("contact");
    // Unsubscribing through the contact stops its sequences just as the event does; runs
    // learn new details, and a new address takes back what was written for the old one.
    await signalContacts(c.var.db, c.env, c.var.auth.workspaceId, {
      stops: body.unsubscribed === true ? [{ contactId: row.id, reason: "unsubscribe" }] : [],
      changes: changesDetails(body) ? [{ contactId: row.id, snapshot: snapshotOf(row) }] : [],
    });
    return c.json({ status: "success", contact: toContactJson(row) });
  })

  .delete("/:id", describeRoute({
    summary: "Delete a contact",
    description: "Deletes a contact with its events and notes; no run reaches it afterwards.",
    tag: "Contacts",
    success: { status: 200, description: "Deleted with its events", schema: Deleted },
  }), requireScope("contacts:write"), validate("param", IdParam), async (c) => {
    const [row] = await c.var.db
      .delete(contactsTable)
      .where(and(eq(contactsTable.workspaceId, c.var.auth.workspaceId), eq(contactsTable.id, c.req.valid("param").id)))
      .returning({ id: contactsTable.id });
    if (!row) throw notFound("contact");
    await signalContacts(c.var.db, c.env, c.var.auth.workspaceId, { stops: [{ contactId: row.id, reason: "contact_deleted" }] });
    return c.json({ status: "success", deleted: true, id: row.id });
  })

  .get("/:id/events", describeRoute({
    summary: "List a contact's events",
    description: "Lists a contact's events, newest first by `occurred_at`, optionally of one type.",
    tag: "Events",
    success: { status: 200, description: "Newest first by occurred_at", schema: EventList },
  }), requireScope("contacts:read"), validate("param", IdParam), validate("query", ListEventsQuery), async (c) => {
    const { id } = c.req.valid("param");
    const { limit, offset, type } = c.req.valid("query");
    if (!(await findContact(c.var.db, c.var.auth.workspaceId, id))) throw notFound("contact");
    const where = and(eq(eventsTable.contactId, id), type ? eq(eventsTable.type, type) : undefined);
    const [rows, [totals]] = await c.var.db.batch([
      c.var.db.select().from(eventsTable).where(where).orderBy(desc(eventsTable.occurredAt), desc(eventsTable.id)).limit(limit).offset(offset),
      c.var.db.select({ total: count() }).from(eventsTable).where(where),
    ]);
    return c.json({ status: "success", events: rows.map(toEventJson), total: totals!.total, limit, offset });
  })

  .get("/:id/notes", describeRoute({
    summary: "List a contact's notes",
    description: "Lists a contact's notes, newest first; approved `create_note` actions write them.",
    tag: "Contacts",
    success: { status: 200, description: "Newest first; create_note actions write these", schema: NoteList },
  }), requireScope("contacts:read"), validate("param", IdParam), validate("query", Pagination), async (c) => {
    const { id } = c.req.valid("param");
    const { limit, offset } = c.req.valid("query");
    if (!(await findContact(c.var.db, c.var.auth.workspaceId, id))) throw notFound("contact");
    const where = eq(notesTable.contactId, id);
    const [rows, [totals]] = await c.var.db.batch([
      c.var.db.select().from(notesTable).where(where).orderBy(desc(notesTable.id)).limit(limit).offset(offset),
      c.var.db.select({ total: count() }).from(notesTable).where(where),
    ]);
    const notes = rows.map((n) => ({ id: n.id, contact_id: n.contactId, body: n.body, run_id: n.runId, created_at: iso(n.createdAt)! }));
    return c.json({ status: "success", notes, total: totals!.total, limit, offset });
  });
