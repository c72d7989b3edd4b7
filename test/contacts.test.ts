import { env } from "cloudflare:workers";
import { and, count, desc, eq, gte, inArray, lte, or, sql, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { contacts } from "../src/db/schema";
import { SCOPES, type Scope } from "../src/lib/scopes";
import { api, expectError, makeKey, makeWorkspace, type Json } from "./helpers";

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const CONTACT_ID = /^ct_[0-9A-HJKMNP-TV-Z]{26}$/;

let emailCounter = 0;
const uniqueEmail = () => `person${++emailCounter}@example.com`;

async function makeContact(key: string, overrides: Json = {}): Promise<Json> {
  const res = await api("/v1/contacts", { method: "POST", key, body: { email: uniqueEmail(), ...overrides } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.contact;
}

const create = (key: string, body: unknown) => api("/v1/contacts", { method: "POST", key, body });
const getContact = (key: string, id: string) => api(`/v1/contacts/${id}`, { key });
const patch = (key: string, id: string, body: unknown) => api(`/v1/contacts/${id}`, { method: "PATCH", key, body });
const list = (key: string, query = "") => api(`/v1/contacts${query}`, { key });
const ids = (res: { body: Json }) => (res.body.contacts as Json[]).map((c) => c.id);
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);

/** Moves a contact's creation time, so time filters can be tested without waiting. */
const setCreatedAt = (id: string, iso: string) =>
  env.DB.prepare("UPDATE contacts SET created_at = ? WHERE id = ?").bind(Date.parse(iso), id).run();

describe("POST /v1/contacts", () => {
  it("returns 201 with the contact and every default filled in", async () => {
    const { key } = await makeWorkspace();
    const res = await create(key, { email: "ann@example.com" });
    expect(res.status).toBe(201);
    expect(res.body).toStrictEqual({
      status: "success",
      contact: {
        id: expect.stringMatching(CONTACT_ID),
        email: "ann@example.com",
        first_name: null,
        last_name: null,
        company: null,
        job_title: null,
        lifecycle_stage: null,
        linkedin_url: null,
        timezone: null,
        properties: {},
        unsubscribed: false,
        last_contacted_at: null,
        created_at: expect.stringMatching(ISO_MS),
        updated_at: expect.stringMatching(ISO_MS),
      },
    });
    expect(res.body.contact.updated_at).toBe(res.body.contact.created_at);
  });

  it("echoes every field it was given", async () => {
    const { key } = await makeWorkspace();
    const body = {
      email: "Bea@Example.com",
      first_name: "Bea",
      last_name: "Stone",
      company: "Acme",
      job_title: "CTO",
      lifecycle_stage: "mql",
      linkedin_url: "https://www.linkedin.com/in/bea",
      timezone: "Europe/Berlin",
      properties: { country: "DE", seats: 12, tags: ["a", "b"], nested: { ok: true } },
      unsubscribed: true,
    };
    const res = await create(key, body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.contact).toStrictEqual({
      ...body,
      id: expect.stringMatching(CONTACT_ID),
      last_contacted_at: null,
      created_at: expect.stringMatching(ISO_MS),
      updated_at: expect.stringMatching(ISO_MS),
    });
  });

  it("requires an email", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await create(key, { first_name: "No email" }), 400, "validation_error");
    expect(paths(body)).toContain("email");
  });

  it("rejects an invalid email", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await create(key, { email: "not-an-email" }), 400, "validation_error");
    expect(paths(body)).toEqual(["email"]);
  });

  it("returns 409 already_exists for an email already in the workspace", async () => {
    const { key } = await makeWorkspace();
    await makeContact(key, { email: "ann@x.com" });
    const body = expectError(await create(key, { email: "ann@x.com" }), 409, "already_exists");
    expect(paths(body)).toEqual(["email"]);
  });

  it("treats a differently-cased email as the same contact (409)", async () => {
    const { key } = await makeWorkspace();
    await makeContact(key, { email: "ann@x.com" });
    expectError(await create(key, { email: "Ann@X.com" }), 409, "already_exists");
    expect((await list(key)).body.total).toBe(1);
  });

  it("allows the same email in another workspace", async () => {
    const a = await makeWorkspace();
    const b = await makeWorkspace();
    await makeContact(a.key, { email: "ann@x.com" });
    expect((await create(b.key, { email: "ann@x.com" })).status).toBe(201);
  });

  it("rejects unknown fields and names them in details", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await create(key, { email: uniqueEmail(), nickname: "Annie", score: 3 }), 400, "validation_error");
    expect(body.details).toEqual(
      expect.arrayContaining([
        { path: "nickname", message: expect.any(String) },
        { path: "score", message: expect.any(String) },
      ]),
    );
  });

  it.each([
    ["lifecycle_stage", "champion"],
    ["timezone", "Mars/Olympus"],
    ["timezone", "+01:00"],
    ["linkedin_url", "not a url"],
    ["linkedin_url", "ftp://linkedin.com/in/ann"],
    ["unsubscribed", "yes"],
    ["first_name", "x".repeat(201)],
  ])("rejects an invalid %s (%s)", async (field, value) => {
    const { key } = await makeWorkspace();
    const body = expectError(await create(key, { email: uniqueEmail(), [field]: value }), 400, "validation_error");
    expect(paths(body)).toEqual([field]);
  });

  it.each(["first.name", "first name", "", "naïve"])("rejects the property name %j", async (name) => {
    const { key } = await makeWorkspace();
    const body = expectError(await create(key, { email: uniqueEmail(), properties: { [name]: 1 } }), 400, "validation_error");
    expect(paths(body).every((p: string) => p.startsWith("properties"))).toBe(true);
    expect((await list(key)).body.total).toBe(0);
  });

  it("rejects properties that are not an object", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await create(key, { email: uniqueEmail(), properties: ["a"] }), 400, "validation_error");
    expect(paths(body)).toEqual(["properties"]);
  });
});

describe("GET /v1/contacts/:id", () => {
  it("returns the contact in its envelope", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { first_name: "Cy" });
    const res = await getContact(key, contact.id);
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", contact });
  });

  it.each(["ct_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", "x".repeat(65)])("returns 404 for the unknown id %s", async (id) => {
    const { key } = await makeWorkspace();
    expectError(await getContact(key, id), 404, "not_found");
  });
});

describe("GET /v1/contacts", () => {
  it("lists contacts newest first with the list envelope", async () => {
    const { key } = await makeWorkspace();
    const first = await makeContact(key);
    const second = await makeContact(key);
    const third = await makeContact(key);
    const res = await list(key);
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", contacts: [third, second, first], total: 3, limit: 20, offset: 0 });
  });

  it("lists only the caller's workspace", async () => {
    const a = await makeWorkspace();
    const b = await makeWorkspace();
    const mine = await makeContact(a.key);
    await makeContact(b.key);
    const res = await list(a.key);
    expect(ids(res)).toEqual([mine.id]);
    expect(res.body.total).toBe(1);
  });

  it("pages with limit and offset while total counts every match", async () => {
    const { key } = await makeWorkspace();
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await makeContact(key)).id);
    const newestFirst = [...made].reverse();
    const page = await list(key, "?limit=2&offset=2");
    expect(page.body).toMatchObject({ total: 5, limit: 2, offset: 2 });
    expect(ids(page)).toEqual(newestFirst.slice(2, 4));
    const past = await list(key, "?limit=2&offset=10");
    expect(past.body).toMatchObject({ contacts: [], total: 5, limit: 2, offset: 10 });
    expect((await list(key, "?limit=100")).body.limit).toBe(100);
  });

  it.each(["limit=0", "limit=101", "limit=abc", "limit=1.5", "offset=-1", "colour=red"])("rejects ?%s with 400", async (query) => {
    const { key } = await makeWorkspace();
    const body = expectError(await list(key, `?${query}`), 400, "validation_error");
    expect(paths(body)).toEqual([query.split("=")[0]]);
  });

  describe("lifecycle_stage filter", () => {
    it("filters by one stage and by a comma-separated list", async () => {
      const { key } = await makeWorkspace();
      const lead = await makeContact(key, { lifecycle_stage: "lead" });
      const mql = await makeContact(key, { lifecycle_stage: "mql" });
      await makeContact(key, { lifecycle_stage: "customer" });
      await makeContact(key);

      const one = await list(key, "?lifecycle_stage=lead");
      expect(ids(one)).toEqual([lead.id]);
      expect(one.body.total).toBe(1);

      const two = await list(key, "?lifecycle_stage=lead,mql");
      expect(ids(two)).toEqual([mql.id, lead.id]);
      expect(two.body.total).toBe(2);
    });

    it.each(["champion", "lead,champion", "lead,", ""])("rejects the stage list %j", async (value) => {
      const { key } = await makeWorkspace();
      const body = expectError(await list(key, `?lifecycle_stage=${value}`), 400, "validation_error");
      expect(paths(body).every((p: string) => p.startsWith("lifecycle_stage"))).toBe(true);
    });
  });

  describe("search", () => {
    it("matches email, first name, last name and company, ignoring case", async () => {
      const { key } = await makeWorkspace();
      const byEmail = await makeContact(key, { email: "zebra.keeper@zoo.example" });
      const byFirst = await makeContact(key, { first_name: "Zebadiah" });
      const byLast = await makeContact(key, { last_name: "McZebb" });
      const byCompany = await makeContact(key, { company: "ZEBRA Corp" });
      await makeContact(key, { first_name: "Other", job_title: "zebra wrangler" });

      const res = await list(key, "?search=zEb");
      expect(ids(res)).toEqual([byCompany.id, byLast.id, byFirst.id, byEmail.id]);
      expect(res.body.total).toBe(4);
    });

    it("treats % and _ as literal characters", async () => {
      const { key } = await makeWorkspace();
      const percent = await makeContact(key, { company: "100% Organic" });
      await makeContact(key, { company: "1000 Organic" });
      const underscore = await makeContact(key, { first_name: "a_b" });
      await makeContact(key, { first_name: "axb" });
      const backslash = await makeContact(key, { last_name: "back\\slash" });
      await makeContact(key, { last_name: "backslash" });

      expect(ids(await list(key, `?search=${encodeURIComponent("0%")}`))).toEqual([percent.id]);
      expect(ids(await list(key, `?search=${encodeURIComponent("a_b")}`))).toEqual([underscore.id]);
      expect(ids(await list(key, `?search=${encodeURIComponent("k\\s")}`))).toEqual([backslash.id]);
      expect((await list(key, `?search=${encodeURIComponent("%")}`)).body.total).toBe(1);
    });

    it("combines with other filters", async () => {
      const { key } = await makeWorkspace();
      const lead = await makeContact(key, { company: "Acme", lifecycle_stage: "lead" });
      await makeContact(key, { company: "Acme", lifecycle_stage: "customer" });
      expect(ids(await list(key, "?search=acme&lifecycle_stage=lead"))).toEqual([lead.id]);
    });

    it("rejects an empty search", async () => {
      const { key } = await makeWorkspace();
      const body = expectError(await list(key, "?search="), 400, "validation_error");
      expect(paths(body)).toEqual(["search"]);
    });
  });

  describe("created_after and created_before", () => {
    async function threeMonths(key: string) {
      const jan = await makeContact(key);
      const feb = await makeContact(key);
      const mar = await makeContact(key);
      await setCreatedAt(jan.id, "2026-01-01T00:00:00.000Z");
      await setCreatedAt(feb.id, "2026-02-01T00:00:00.000Z");
      await setCreatedAt(mar.id, "2026-03-01T00:00:00.000Z");
      return { jan: jan.id, feb: feb.id, mar: mar.id };
    }

    it("keeps contacts created after a time", async () => {
      const { key } = await makeWorkspace();
      const { feb, mar } = await threeMonths(key);
      const res = await list(key, "?created_after=2026-01-15T00:00:00.000Z");
      expect(ids(res)).toEqual([mar, feb]);
      expect(res.body.total).toBe(2);
    });

    it("keeps contacts created before a time", async () => {
      const { key } = await makeWorkspace();
      const { jan, feb } = await threeMonths(key);
      expect(ids(await list(key, "?created_before=2026-02-15T00:00:00.000Z"))).toEqual([feb, jan]);
    });

    it("combines both bounds into a window", async () => {
      const { key } = await makeWorkspace();
      const { feb } = await threeMonths(key);
      const res = await list(key, "?created_after=2026-01-15T00:00:00Z&created_before=2026-02-15T00:00:00Z");
      expect(ids(res)).toEqual([feb]);
      expect(res.body.total).toBe(1);
    });

    it.each(["created_after=yesterday", "created_before=2026-13-01T00:00:00Z", "created_after=2026-01-01"])(
      "rejects ?%s",
      async (query) => {
        const { key } = await makeWorkspace();
        const body = expectError(await list(key, `?${query}`), 400, "validation_error");
        expect(paths(body)).toEqual([query.split("=")[0]]);
      },
    );
  });

  describe("unsubscribed filter", () => {
    it("filters on true and on false", async () => {
      const { key } = await makeWorkspace();
      const gone = await makeContact(key, { unsubscribed: true });
      const here = await makeContact(key);
      const yes = await list(key, "?unsubscribed=true");
      expect(ids(yes)).toEqual([gone.id]);
      expect(yes.body.total).toBe(1);
      expect(ids(await list(key, "?unsubscribed=false"))).toEqual([here.id]);
    });

    it("rejects a value other than true or false", async () => {
      const { key } = await makeWorkspace();
      const body = expectError(await list(key, "?unsubscribed=yes"), 400, "validation_error");
      expect(paths(body)).toEqual(["unsubscribed"]);
    });
  });
});

describe("PATCH /v1/contacts/:id", () => {
  it("merges: fields it leaves out keep their values", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { first_name: "Dee", company: "Acme", properties: { a: 1 }, lifecycle_stage: "lead" });
    const res = await patch(key, contact.id, { job_title: "CEO", lifecycle_stage: "sql" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toStrictEqual({
      status: "success",
      contact: { ...contact, job_title: "CEO", lifecycle_stage: "sql", updated_at: expect.stringMatching(ISO_MS) },
    });
    expect((await getContact(key, contact.id)).body.contact).toStrictEqual(res.body.contact);
  });

  it("clears a field sent as null", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { first_name: "Dee", company: "Acme", timezone: "UTC", lifecycle_stage: "lead" });
    const res = await patch(key, contact.id, { company: null, timezone: null, lifecycle_stage: null });
    expect(res.status).toBe(200);
    expect(res.body.contact).toMatchObject({ first_name: "Dee", company: null, timezone: null, lifecycle_stage: null });
  });

  it("replaces properties and the unsubscribed flag", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { properties: { a: 1, b: 2 } });
    const res = await patch(key, contact.id, { properties: { c: 3 }, unsubscribed: true });
    expect(res.body.contact).toMatchObject({ properties: { c: 3 }, unsubscribed: true });
  });

  it("rejects an empty body", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    expectError(await patch(key, contact.id, {}), 400, "validation_error");
  });

  it("rejects null for the email", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const body = expectError(await patch(key, contact.id, { email: null }), 400, "validation_error");
    expect(paths(body)).toEqual(["email"]);
  });

  it("rejects unknown fields and invalid values, changing nothing", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { first_name: "Dee" });
    const body = expectError(await patch(key, contact.id, { first_name: "Changed", shoe_size: 9 }), 400, "validation_error");
    expect(paths(body)).toEqual(["shoe_size"]);
    expectError(await patch(key, contact.id, { lifecycle_stage: "champion" }), 400, "validation_error");
    expectError(await patch(key, contact.id, { properties: { "a b": 1 } }), 400, "validation_error");
    expect((await getContact(key, contact.id)).body.contact).toStrictEqual(contact);
  });

  it.each(["taken@x.com", "TAKEN@X.COM", "Taken@x.com"])("returns 409 when moving to another contact's email (%s)", async (email) => {
    const { key } = await makeWorkspace();
    await makeContact(key, { email: "taken@x.com" });
    const contact = await makeContact(key, { email: "free@x.com" });
    const body = expectError(await patch(key, contact.id, { email }), 409, "already_exists");
    expect(paths(body)).toEqual(["email"]);
    expect((await getContact(key, contact.id)).body.contact.email).toBe("free@x.com");
  });

  it("lets a contact change the case of its own email", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { email: "own@x.com" });
    const res = await patch(key, contact.id, { email: "Own@X.com" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.contact.email).toBe("Own@X.com");
  });

  it("frees the old email for a new contact after a change", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { email: "old@x.com" });
    expect((await patch(key, contact.id, { email: "new@x.com" })).status).toBe(200);
    expect((await create(key, { email: "OLD@x.com" })).status).toBe(201);
    expectError(await create(key, { email: "new@X.com" }), 409, "already_exists");
  });

  it("returns 404 for an unknown contact", async () => {
    const { key } = await makeWorkspace();
    expectError(await patch(key, "ct_01ARZ3NDEKTSV4RRFFQ69G5FAV", { first_name: "X" }), 404, "not_found");
  });
});

describe("DELETE /v1/contacts/:id", () => {
  it("deletes the contact; GET and a second DELETE are then 404", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const res = await api(`/v1/contacts/${contact.id}`, { method: "DELETE", key });
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", deleted: true, id: contact.id });
    expectError(await getContact(key, contact.id), 404, "not_found");
    expectError(await api(`/v1/contacts/${contact.id}`, { method: "DELETE", key }), 404, "not_found");
    expect((await list(key)).body.total).toBe(0);
  });

  it("frees the email for a new contact", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key, { email: "reuse@x.com" });
    await api(`/v1/contacts/${contact.id}`, { method: "DELETE", key });
    expect((await create(key, { email: "reuse@x.com" })).status).toBe(201);
  });
});

describe("contacts: authentication and scopes", () => {
  const everyScopeBut = (scope: Scope) => SCOPES.filter((s) => s !== scope);
  const routes: { name: string; scope: Scope; call: (key: string | undefined, id: string) => ReturnType<typeof api> }[] = [
    { name: "GET /v1/contacts", scope: "contacts:read", call: (key) => api("/v1/contacts", { key }) },
    { name: "GET /v1/contacts/:id", scope: "contacts:read", call: (key, id) => api(`/v1/contacts/${id}`, { key }) },
    { name: "POST /v1/contacts", scope: "contacts:write", call: (key) => api("/v1/contacts", { method: "POST", key, body: { email: "new@x.com" } }) },
    { name: "PATCH /v1/contacts/:id", scope: "contacts:write", call: (key, id) => api(`/v1/contacts/${id}`, { method: "PATCH", key, body: { first_name: "Hacked" } }) },
    { name: "DELETE /v1/contacts/:id", scope: "contacts:write", call: (key, id) => api(`/v1/contacts/${id}`, { method: "DELETE", key }) },
  ];

  it.each(routes)("$name without a key is 401", async ({ call }) => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    expectError(await call(undefined, contact.id), 401, "unauthorized");
    expect((await getContact(key, contact.id)).body.contact).toStrictEqual(contact);
  });

  it.each(routes)("$name without $scope is 403 insufficient_scope", async ({ call, scope }) => {
    const { key, workspaceId } = await makeWorkspace();
    const contact = await makeContact(key);
    const limited = await makeKey(workspaceId, everyScopeBut(scope));
    const body = expectError(await call(limited.key, contact.id), 403, "insufficient_scope");
    expect(JSON.stringify(body.details)).toContain(scope);
    expect((await getContact(key, contact.id)).body.contact).toStrictEqual(contact);
    expect((await list(key)).body.total).toBe(1);
  });

  it("with only contacts:read a key can read but not write", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const contact = await makeContact(key);
    const reader = await makeKey(workspaceId, ["contacts:read"]);
    expect((await getContact(reader.key, contact.id)).status).toBe(200);
    expect((await list(reader.key)).status).toBe(200);
    expectError(await create(reader.key, { email: uniqueEmail() }), 403, "insufficient_scope");
  });
});

describe("contacts: another workspace's contact", () => {
  it("is 404 on GET, PATCH and DELETE and stays unchanged", async () => {
    const owner = await makeWorkspace();
    const stranger = await makeWorkspace();
    const contact = await makeContact(owner.key, { first_name: "Private" });
    expectError(await getContact(stranger.key, contact.id), 404, "not_found");
    expectError(await patch(stranger.key, contact.id, { first_name: "Hacked" }), 404, "not_found");
    expectError(await api(`/v1/contacts/${contact.id}`, { method: "DELETE", key: stranger.key }), 404, "not_found");
    expect((await getContact(owner.key, contact.id)).body.contact).toStrictEqual(contact);
  });

  it("does not block the other workspace from taking the same email on PATCH", async () => {
    const owner = await makeWorkspace();
    const stranger = await makeWorkspace();
    await makeContact(owner.key, { email: "shared@x.com" });
    const theirs = await makeContact(stranger.key);
    expect((await patch(stranger.key, theirs.id, { email: "Shared@x.com" })).status).toBe(200);
  });
});

describe("query plans of the contact list filters", () => {
  const db = createDb(env.DB);
  const WS = eq(contacts.workspaceId, "ws_x");

  /** The planner's steps for one drizzle query, as `EXPLAIN QUERY PLAN` reports them. */
  async function plan(query: { toSQL(): { sql: string; params: unknown[] } }): Promise<string[]> {
    const { sql: text, params } = query.toSQL();
    const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${text}`).bind(...params).all<{ detail: string }>();
    return results.map((r) => r.detail);
  }

  /** Every step that reads `contacts` searches an index within the workspace (never a table scan). */
  function expectSearchesIndex(details: string[], index: string) {
    const reads = details.filter((d) => /\bcontacts\b/.test(d));
    expect(reads.length, details.join("\n")).toBeGreaterThan(0);
    for (const d of reads) expect(d).toMatch(/^SEARCH contacts USING (COVERING )?INDEX contacts_\w+ \(workspace_id=\?/);
    expect(details.some((d) => /^SCAN contacts/.test(d)), details.join("\n")).toBe(false);
    expect(reads.some((d) => new RegExp(`INDEX ${index} `).test(d)), details.join("\n")).toBe(true);
  }

  const page = (where: SQL | undefined) => db.select().from(contacts).where(where).orderBy(desc(contacts.id)).limit(20).offset(0);
  const total = (where: SQL | undefined) => db.select({ total: count() }).from(contacts).where(where);

  it("workspace ordered by id uses contacts_workspace_id", async () => {
    expectSearchesIndex(await plan(page(WS)), "contacts_workspace_id");
    // Counting may read any (smaller) covering index that leads with workspace_id.
    expectSearchesIndex(await plan(total(WS)), "contacts_workspace_\\w+");
  });

  it("workspace + one lifecycle_stage uses contacts_workspace_stage", async () => {
    const where = and(WS, inArray(contacts.lifecycleStage, ["lead"]));
    expectSearchesIndex(await plan(page(where)), "contacts_workspace_stage");
    expectSearchesIndex(await plan(total(where)), "contacts_workspace_stage");
  });

  it("workspace + a list of stages counts on contacts_workspace_stage and pages on a workspace index", async () => {
    const where = and(WS, inArray(contacts.lifecycleStage, ["lead", "mql"]));
    // Without table statistics SQLite prefers walking (workspace_id, id) to sorting the IN branches.
    expectSearchesIndex(await plan(page(where)), "contacts_workspace_(stage|id)");
    expectSearchesIndex(await plan(total(where)), "contacts_workspace_stage");
  });

  it("workspace + unsubscribed uses contacts_workspace_unsubscribed", async () => {
    const where = and(WS, eq(contacts.unsubscribed, false));
    expectSearchesIndex(await plan(page(where)), "contacts_workspace_unsubscribed");
    expectSearchesIndex(await plan(total(where)), "contacts_workspace_unsubscribed");
  });

  it("workspace + created_at range uses contacts_workspace_created", async () => {
    const where = and(WS, gte(contacts.createdAt, new Date("2026-01-01")), lte(contacts.createdAt, new Date("2026-02-01")));
    expectSearchesIndex(await plan(page(where)), "contacts_workspace_created");
    expectSearchesIndex(await plan(total(where)), "contacts_workspace_created");
  });

  it("email uniqueness lookups use the (workspace_id, email_key) index", async () => {
    const one = db.select().from(contacts).where(and(WS, eq(contacts.emailKey, "ann@x.com")));
    const many = db.select().from(contacts).where(and(WS, inArray(contacts.emailKey, ["a@x.com", "b@x.com"])));
    expectSearchesIndex(await plan(one), "contacts_workspace_email");
    expectSearchesIndex(await plan(many), "contacts_workspace_email");
  });

  it("search by substring still narrows to the workspace through an index", async () => {
    const like = (column: SQLiteColumn) => sql`${column} LIKE ${"%ann%"} ESCAPE '\\'`;
    const where = and(WS, or(...[contacts.emailKey, contacts.firstName, contacts.lastName, contacts.company].map(like)));
    const details = await plan(page(where));
    expect(details.some((d) => /^SEARCH contacts USING (COVERING )?INDEX contacts_workspace_\w+ \(workspace_id=\?/.test(d)), details.join("\n")).toBe(true);
    expect(details.some((d) => /^SCAN contacts/.test(d))).toBe(false);
  });
});
