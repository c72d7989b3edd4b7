import { env } from "cloudflare:workers";
import { and, desc, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { events as eventsTable } from "../src/db/schema";
import { SCOPES, type Scope } from "../src/lib/scopes";
import { api, expectError, makeKey, makeWorkspace, type Json } from "./helpers";

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const EVENT_ID = /^evt_[0-9A-HJKMNP-TV-Z]{26}$/;

let emailCounter = 0;
async function makeContact(key: string, overrides: Json = {}): Promise<Json> {
  const res = await api("/v1/contacts", { method: "POST", key, body: { email: `ev${++emailCounter}@example.com`, ...overrides } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.contact;
}

const send = (key: string | undefined, events: unknown) => api("/v1/events", { method: "POST", key, body: { events } });
const listEvents = (key: string, contactId: string, query = "") => api(`/v1/contacts/${contactId}/events${query}`, { key });
const eventCount = async (key: string, contactId: string) => (await listEvents(key, contactId)).body.total as number;
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);

describe("POST /v1/events", () => {
  it("stores one event addressed by contact_id and returns it", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const res = await send(key, [
      { contact_id: contact.id, type: "page_view", url: "https://acme.example/pricing", properties: { ref: "ad" }, occurred_at: "2026-11-20T10:00:00.000Z" },
    ]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toStrictEqual({
      status: "success",
      events: [
        {
          id: expect.stringMatching(EVENT_ID),
          contact_id: contact.id,
          type: "page_view",
          url: "https://acme.example/pricing",
          properties: { ref: "ad" },
          occurred_at: "2026-11-20T10:00:00.000Z",
          created_at: expect.stringMatching(ISO_MS),
        },
      ],
    });
    const listed = await listEvents(key, contact.id);
    expect(listed.body).toStrictEqual({ status: "success", events: res.body.events, total: 1, limit: 20, offset: 0 });
  });

  it("fills url null, properties {} and occurred_at now when left out", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const before = Date.now();
    const res = await send(key, [{ contact_id: contact.id, type: "email.opened" }]);
    const [event] = res.body.events;
    expect(event).toMatchObject({ url: null, properties: {} });
    expect(Date.parse(event.occurred_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(event.occurred_at)).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it("stores 100 events in one request", async () => {
    const { key } = await makeWorkspace();
    const a = await makeContact(key);
    const b = await makeContact(key, { email: "b100@example.com" });
    const batch = Array.from({ length: 100 }, (_, i) =>
      i % 2 === 0 ? { contact_id: a.id, type: "page_view", properties: { i } } : { email: "b100@example.com", type: "page_view", properties: { i } },
    );
    const res = await send(key, batch);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(201);
    expect(res.body.events).toHaveLength(100);
    expect(res.body.events.map((e: Json) => e.properties.i)).toEqual(batch.map((e) => e.properties.i));
    expect(await eventCount(key, a.id)).toBe(50);
    expect(await eventCount(key, b.id)).toBe(50);
  });

  it("resolves an email ignoring case", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { email: "Ann@Example.com" });
    const res = await send(key, [{ email: "aNN@EXAMPLE.com", type: "email.replied" }]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.events[0].contact_id).toBe(contact.id);
  });

  it.each([
    ["0 events", 0],
    ["101 events", 101],
  ])("rejects %s", async (_, n) => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const body = expectError(await send(key, Array.from({ length: n }, () => ({ contact_id: contact.id, type: "page_view" }))), 400, "validation_error");
    expect(paths(body)).toEqual(["events"]);
    expect(await eventCount(key, contact.id)).toBe(0);
  });

  it("rejects an event with both contact_id and email, or with neither", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { email: "both@example.com" });
    const both = expectError(await send(key, [{ contact_id: contact.id, email: "both@example.com", type: "x" }]), 400, "validation_error");
    expect(paths(both)).toEqual(["events.0.contact_id"]);
    const neither = expectError(await send(key, [{ contact_id: contact.id, type: "x" }, { type: "x" }]), 400, "validation_error");
    expect(paths(neither)).toEqual(["events.1.contact_id"]);
    expect(await eventCount(key, contact.id)).toBe(0);
  });

  it("rejects a half-invalid batch naming each unknown contact, and stores nothing", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { email: "known@example.com" });
    await send(key, [{ contact_id: contact.id, type: "seed" }]);
    const body = expectError(
      await send(key, [
        { contact_id: contact.id, type: "page_view" },
        { contact_id: "ct_01ARZ3NDEKTSV4RRFFQ69G5FAV", type: "page_view" },
        { email: "KNOWN@example.com", type: "page_view" },
        { email: "stranger@example.com", type: "page_view" },
        { contact_id: "not-even-an-id", type: "page_view" },
      ]),
      400,
      "validation_error",
    );
    expect(paths(body)).toEqual(["events.1.contact_id", "events.3.email", "events.4.contact_id"]);
    expect(await eventCount(key, contact.id)).toBe(1);
  });

  it("treats another workspace's contact id or email as unknown", async () => {
    const owner = await makeWorkspace();
    const stranger = await makeWorkspace();
    const contact = await makeContact(owner.key, { email: "owned@example.com" });
    const body = expectError(
      await send(stranger.key, [
        { contact_id: contact.id, type: "email.replied" },
        { email: "owned@example.com", type: "email.replied" },
      ]),
      400,
      "validation_error",
    );
    expect(paths(body)).toEqual(["events.0.contact_id", "events.1.email"]);
    expect(await eventCount(owner.key, contact.id)).toBe(0);
  });

  it("contact.unsubscribed sets the contact's unsubscribed flag", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { email: "leaving@example.com" });
    const bystander = await makeContact(key);
    expect(contact.unsubscribed).toBe(false);
    const res = await send(key, [
      { email: "LEAVING@example.com", type: "contact.unsubscribed" },
      { contact_id: bystander.id, type: "page_view" },
    ]);
    expect(res.status).toBe(201);
    expect((await api(`/v1/contacts/${contact.id}`, { key })).body.contact.unsubscribed).toBe(true);
    expect((await api(`/v1/contacts/${bystander.id}`, { key })).body.contact.unsubscribed).toBe(false);
    expect((await api("/v1/contacts?unsubscribed=true", { key })).body.contacts.map((c: Json) => c.id)).toEqual([contact.id]);
  });

  it.each([
    ["type", { type: "Page View" }],
    ["type", { type: "" }],
    ["occurred_at", { type: "x", occurred_at: "yesterday" }],
    ["properties.a b", { type: "x", properties: { "a b": 1 } }],
    ["colour", { type: "x", colour: "red" }],
  ])("rejects an invalid %s", async (path, fields) => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const body = expectError(await send(key, [{ contact_id: contact.id, ...fields }]), 400, "validation_error");
    expect(paths(body).every((p: string) => p.startsWith(`events.0.${path.split(" ")[0]}`))).toBe(true);
    expect(await eventCount(key, contact.id)).toBe(0);
  });
});

describe("GET /v1/contacts/:id/events", () => {
  async function timeline(key: string) {
    const contact = await makeContact(key);
    const other = await makeContact(key);
    // Sent out of order on purpose: the list orders by occurred_at, not by arrival.
    const res = await send(key, [
      { contact_id: contact.id, type: "page_view", occurred_at: "2026-03-01T00:00:00.000Z" },
      { contact_id: contact.id, type: "email.replied", occurred_at: "2026-05-01T00:00:00.000Z" },
      { contact_id: contact.id, type: "page_view", occurred_at: "2026-01-01T00:00:00.000Z" },
      { contact_id: contact.id, type: "page_view", occurred_at: "2026-04-01T00:00:00.000Z" },
      { contact_id: contact.id, type: "email.opened", occurred_at: "2026-02-01T00:00:00.000Z" },
      { contact_id: other.id, type: "page_view", occurred_at: "2026-06-01T00:00:00.000Z" },
    ]);
    expect(res.status).toBe(201);
    return contact;
  }
  const times = (res: { body: Json }) => (res.body.events as Json[]).map((e) => e.occurred_at.slice(0, 7));

  it("lists the contact's events newest first by occurred_at", async () => {
    const { key } = await makeWorkspace();
    const contact = await timeline(key);
    const res = await listEvents(key, contact.id);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "success", total: 5, limit: 20, offset: 0 });
    expect(times(res)).toEqual(["2026-05", "2026-04", "2026-03", "2026-02", "2026-01"]);
    expect(res.body.events.every((e: Json) => e.contact_id === contact.id)).toBe(true);
  });

  it("filters by type", async () => {
    const { key } = await makeWorkspace();
    const contact = await timeline(key);
    const res = await listEvents(key, contact.id, "?type=page_view");
    expect(res.body).toMatchObject({ total: 3 });
    expect(times(res)).toEqual(["2026-04", "2026-03", "2026-01"]);
    expect((await listEvents(key, contact.id, "?type=never.happened")).body).toMatchObject({ events: [], total: 0 });
  });

  it("pages with limit and offset", async () => {
    const { key } = await makeWorkspace();
    const contact = await timeline(key);
    const res = await listEvents(key, contact.id, "?limit=2&offset=1");
    expect(res.body).toMatchObject({ total: 5, limit: 2, offset: 1 });
    expect(times(res)).toEqual(["2026-04", "2026-03"]);
    const typed = await listEvents(key, contact.id, "?type=page_view&limit=1&offset=2");
    expect(typed.body).toMatchObject({ total: 3, limit: 1, offset: 2 });
    expect(times(typed)).toEqual(["2026-01"]);
  });

  it.each(["type=Page%20View", "type=", "limit=0", "limit=101", "offset=-1", "since=2026"])("rejects ?%s", async (query) => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const body = expectError(await listEvents(key, contact.id, `?${query}`), 400, "validation_error");
    expect(paths(body)).toEqual([query.split("=")[0]]);
  });

  it("is 404 for an unknown contact", async () => {
    const { key } = await makeWorkspace();
    expectError(await listEvents(key, "ct_01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "not_found");
  });

  it("is 404 for another workspace's contact and reveals nothing", async () => {
    const owner = await makeWorkspace();
    const stranger = await makeWorkspace();
    const contact = await timeline(owner.key);
    const body = expectError(await listEvents(stranger.key, contact.id), 404, "not_found");
    expect(body).not.toHaveProperty("events");
    expect(body).not.toHaveProperty("total");
  });

  it("drops a contact's events when the contact is deleted", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const contact = await timeline(key);
    await api(`/v1/contacts/${contact.id}`, { method: "DELETE", key });
    expectError(await listEvents(key, contact.id), 404, "not_found");
    const { results } = await env.DB.prepare("SELECT count(*) AS n FROM events WHERE workspace_id = ? AND contact_id = ?")
      .bind(workspaceId, contact.id)
      .all<{ n: number }>();
    expect(results[0]!.n).toBe(0);
  });
});

describe("events: authentication and scopes", () => {
  it("POST /v1/events without a key is 401", async () => {
    expectError(await send(undefined, [{ email: "a@x.com", type: "x" }]), 401, "unauthorized");
  });

  it("POST /v1/events without events:write is 403 insufficient_scope and stores nothing", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const contact = await makeContact(key);
    const limited = await makeKey(workspaceId, SCOPES.filter((s) => s !== "events:write"));
    const body = expectError(await send(limited.key, [{ contact_id: contact.id, type: "contact.unsubscribed" }]), 403, "insufficient_scope");
    expect(JSON.stringify(body.details)).toContain("events:write");
    expect(await eventCount(key, contact.id)).toBe(0);
    expect((await api(`/v1/contacts/${contact.id}`, { key })).body.contact.unsubscribed).toBe(false);
  });

  it("POST /v1/events works with events:write alone", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const contact = await makeContact(key);
    const writer = await makeKey(workspaceId, ["events:write"]);
    expect((await send(writer.key, [{ contact_id: contact.id, type: "page_view" }])).status).toBe(201);
  });

  it("GET /v1/contacts/:id/events without a key is 401", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    expectError(await api(`/v1/contacts/${contact.id}/events`), 401, "unauthorized");
  });

  it("GET /v1/contacts/:id/events without contacts:read is 403 insufficient_scope", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const contact = await makeContact(key);
    const scope: Scope = "contacts:read";
    const limited = await makeKey(workspaceId, SCOPES.filter((s) => s !== scope));
    const body = expectError(await listEvents(limited.key, contact.id), 403, "insufficient_scope");
    expect(JSON.stringify(body.details)).toContain(scope);
  });
});

describe("query plans of the event lists", () => {
  const db = createDb(env.DB);

  async function plan(query: { toSQL(): { sql: string; params: unknown[] } }): Promise<string[]> {
    const { sql, params } = query.toSQL();
    const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...params).all<{ detail: string }>();
    return results.map((r) => r.detail);
  }

  function expectSearchesIndex(details: string[], index: string) {
    const reads = details.filter((d) => /\bevents\b/.test(d));
    expect(reads.length, details.join("\n")).toBeGreaterThan(0);
    for (const d of reads) expect(d).toMatch(/^SEARCH events USING (COVERING )?INDEX /);
    expect(details.some((d) => /^SCAN events/.test(d)), details.join("\n")).toBe(false);
    expect(reads.some((d) => d.includes(`INDEX ${index} (contact_id=?`)), details.join("\n")).toBe(true);
  }

  const page = (where: ReturnType<typeof and>) =>
    db.select().from(eventsTable).where(where).orderBy(desc(eventsTable.occurredAt), desc(eventsTable.id)).limit(20).offset(0);

  it("events by contact ordered by occurred_at use events_contact_time", async () => {
    expectSearchesIndex(await plan(page(and(eq(eventsTable.contactId, "ct_x")))), "events_contact_time");
  });

  it("events by contact and type use events_contact_type_time", async () => {
    const where = and(eq(eventsTable.contactId, "ct_x"), eq(eventsTable.type, "page_view"));
    expectSearchesIndex(await plan(page(where)), "events_contact_type_time");
  });
});
