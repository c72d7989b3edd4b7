import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { findContactsByIds } from "../src/contacts/contact-record";
import { createDb } from "../src/db/client";
import { chunk, D1_MAX_PARAMS, rowsPerStatement } from "../src/lib/d1";
import { SCOPES } from "../src/lib/scopes";
import { api, expectError, makeKey, makeWorkspace, type Json } from "./helpers";

const batch = (key: string | undefined, contacts: unknown) => api("/v1/contacts/batch", { method: "POST", key, body: { contacts } });
const totalContacts = async (key: string) => (await api("/v1/contacts?limit=1", { key })).body.total as number;
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);

/** `n` distinct contacts, `person0@batch.example` and on. */
const people = (n: number, from = 0, extra: (i: number) => Json = () => ({})) =>
  Array.from({ length: n }, (_, k) => ({ email: `person${from + k}@batch.example`, ...extra(from + k) }));

/** Every contact of the workspace, paging through the API. */
async function allContacts(key: string): Promise<Json[]> {
  const out: Json[] = [];
  for (let offset = 0; ; offset += 100) {
    const res = await api(`/v1/contacts?limit=100&offset=${offset}`, { key });
    expect(res.status).toBe(200);
    out.push(...res.body.contacts);
    if (out.length >= res.body.total) return out;
  }
}

describe("POST /v1/contacts/batch", () => {
  it("creates 1000 contacts in one request against real D1", async () => {
    const { key } = await makeWorkspace();
    const res = await batch(key, people(1000, 0, (i) => ({ first_name: `P${i}`, lifecycle_stage: "lead" })));
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);
    expect(res.body).toMatchObject({ status: "success", created: 1000, updated: 0 });
    expect(res.body.contacts).toHaveLength(1000);
    expect(await totalContacts(key)).toBe(1000);
    const stored = await allContacts(key);
    expect(new Set(stored.map((c) => c.email)).size).toBe(1000);
    expect(stored.every((c) => c.lifecycle_stage === "lead" && c.first_name === `P${c.email.match(/\d+/)[0]}`)).toBe(true);
  });

  it("upserts by email ignoring case: 500 updated, 500 created, omitted fields kept", async () => {
    const { key } = await makeWorkspace();
    const first = await batch(
      key,
      people(1000, 0, (i) => ({ first_name: `P${i}`, company: "Old Co", lifecycle_stage: "lead", properties: { n: i } })),
    );
    expect(first.status).toBe(200);
    const idsByEmail = new Map((first.body.contacts as Json[]).map((c) => [c.email.toLowerCase(), c.id]));

    // 500 existing contacts (upper-cased emails, only company and job_title sent) and 500 new ones.
    const existing = people(500, 500).map((c) => ({ email: c.email.toUpperCase(), company: "New Co", job_title: "Buyer" }));
    const fresh = people(500, 1000, () => ({ company: "Fresh Co" }));
    const res = await batch(key, [...existing, ...fresh]);
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);
    expect(res.body).toMatchObject({ status: "success", created: 500, updated: 500 });
    expect(await totalContacts(key)).toBe(1500);

    const byKey = new Map((await allContacts(key)).map((c) => [c.email.toLowerCase(), c]));
    for (let i = 500; i < 1000; i++) {
      const contact = byKey.get(`person${i}@batch.example`)!;
      expect(contact.id).toBe(idsByEmail.get(`person${i}@batch.example`));
      expect(contact).toMatchObject({
        email: `PERSON${i}@BATCH.EXAMPLE`,
        company: "New Co",
        job_title: "Buyer",
        first_name: `P${i}`,
        lifecycle_stage: "lead",
        properties: { n: i },
      });
    }
    // Contacts the second batch did not mention are untouched.
    expect(byKey.get("person0@batch.example")).toMatchObject({ company: "Old Co", job_title: null, first_name: "P0" });
    expect(byKey.get("person1000@batch.example")).toMatchObject({ company: "Fresh Co", first_name: null, lifecycle_stage: null });
  });

  it("reports per contact whether it was created", async () => {
    const { key } = await makeWorkspace();
    const old = (await api("/v1/contacts", { method: "POST", key, body: { email: "old@x.com" } })).body.contact;
    const res = await batch(key, [{ email: "OLD@x.com" }, { email: "new@x.com" }]);
    expect(res.body).toMatchObject({ created: 1, updated: 1 });
    expect(res.body.contacts).toEqual(
      expect.arrayContaining([
        { id: old.id, email: "OLD@x.com", created: false },
        { id: expect.stringMatching(/^ct_/), email: "new@x.com", created: true },
      ]),
    );
  });

  it("rejects 1001 contacts and stores none", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await batch(key, people(1001)), 400, "validation_error");
    expect(paths(body)).toEqual(["contacts"]);
    expect(await totalContacts(key)).toBe(0);
  });

  it("rejects an empty batch", async () => {
    const { key } = await makeWorkspace();
    expectError(await batch(key, []), 400, "validation_error");
  });

  it("rejects duplicate emails within one batch, case-insensitively, naming the second", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await batch(key, [{ email: "a@x.com" }, { email: "b@x.com" }, { email: "A@X.com" }]), 400, "validation_error");
    expect(paths(body)).toEqual(["contacts.2.email"]);
    expect(body.details[0].message).toContain("contacts.0");
    expect(await totalContacts(key)).toBe(0);
  });

  it("stores nothing when one contact of the batch is invalid", async () => {
    const { key } = await makeWorkspace();
    await batch(key, people(3));
    const contacts = people(500, 100);
    contacts[321] = { email: "bad@x.com", lifecycle_stage: "champion" } as Json as (typeof contacts)[number];
    const body = expectError(await batch(key, contacts), 400, "validation_error");
    expect(paths(body)).toEqual(["contacts.321.lifecycle_stage"]);
    expect(await totalContacts(key)).toBe(3);
  });

  it("rejects unknown fields on a batched contact", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await batch(key, [{ email: "a@x.com", nickname: "A" }]), 400, "validation_error");
    expect(paths(body)).toEqual(["contacts.0.nickname"]);
  });

  it("never touches another workspace's contact with the same email", async () => {
    const owner = await makeWorkspace();
    const other = await makeWorkspace();
    const theirs = (await api("/v1/contacts", { method: "POST", key: owner.key, body: { email: "same@x.com", company: "Mine" } })).body.contact;
    const res = await batch(other.key, [{ email: "same@x.com", company: "Yours" }]);
    expect(res.body).toMatchObject({ created: 1, updated: 0 });
    expect((await api(`/v1/contacts/${theirs.id}`, { key: owner.key })).body.contact).toStrictEqual(theirs);
  });

  it("without a key is 401", async () => {
    expectError(await batch(undefined, people(1)), 401, "unauthorized");
  });

  it("without contacts:write is 403 insufficient_scope and stores nothing", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const limited = await makeKey(workspaceId, SCOPES.filter((s) => s !== "contacts:write"));
    const body = expectError(await batch(limited.key, people(2)), 403, "insufficient_scope");
    expect(JSON.stringify(body.details)).toContain("contacts:write");
    expect(await totalContacts(key)).toBe(0);
  });
});

describe("D1's 100-parameter limit", () => {
  it("is real: local D1 rejects a statement with 101 bound parameters", async () => {
    const params = Array.from({ length: D1_MAX_PARAMS + 1 }, (_, i) => i);
    const select = (n: number) => env.DB.prepare(`SELECT ${params.slice(0, n).map(() => "?").join(",")}`).bind(...params.slice(0, n));
    await expect(select(D1_MAX_PARAMS).all()).resolves.toBeTruthy();
    await expect(select(D1_MAX_PARAMS + 1).all()).rejects.toThrow(/too many SQL variables/);
  });

  it("chunk() splits into runs of at most size, in order, losing nothing", () => {
    expect(chunk([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunk([1, 2, 3, 4], 2)).toEqual([[1, 2], [3, 4]]);
    expect(chunk([1, 2], 5)).toEqual([[1, 2]]);
    expect(chunk([], 3)).toEqual([]);
    const big = Array.from({ length: 1000 }, (_, i) => i);
    const parts = chunk(big, 99);
    expect(parts).toHaveLength(11);
    expect(parts.every((p) => p.length <= 99)).toBe(true);
    expect(parts.flat()).toEqual(big);
  });

  it("rowsPerStatement() fits whole rows under 100 parameters", () => {
    expect(rowsPerStatement(15)).toBe(6);
    expect(rowsPerStatement(8)).toBe(12);
    expect(rowsPerStatement(10)).toBe(10);
    expect(rowsPerStatement(10, 1)).toBe(9);
    expect(rowsPerStatement(100)).toBe(1);
    for (let columns = 1; columns <= 100; columns++) {
      for (const reserved of [0, 1, 5]) {
        const rows = rowsPerStatement(columns, reserved);
        expect(rows * columns + reserved).toBeLessThanOrEqual(D1_MAX_PARAMS);
        expect((rows + 1) * columns + reserved).toBeGreaterThan(D1_MAX_PARAMS);
      }
    }
  });

  it("findContactsByIds reads 1000 ids back from real D1", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const res = await batch(key, people(1000));
    expect(res.status).toBe(200);
    const ids = (res.body.contacts as Json[]).map((c) => c.id as string);
    const rows = await findContactsByIds(createDb(env.DB), workspaceId, ids);
    expect(rows).toHaveLength(1000);
    expect(new Set(rows.map((r) => r.id))).toEqual(new Set(ids));
  });

  it("findContactsByIds returns only the workspace's own contacts", async () => {
    const owner = await makeWorkspace();
    const other = await makeWorkspace();
    const ids = ((await batch(owner.key, people(150))).body.contacts as Json[]).map((c) => c.id as string);
    expect(await findContactsByIds(createDb(env.DB), other.workspaceId, ids)).toEqual([]);
  });
});

describe("batch upsert with bodies that send different fields", () => {
  it("answers in request order and updates only the fields each body sent", async () => {
    const { key } = await makeWorkspace();
    const first = (await api("/v1/contacts", { method: "POST", key, body: { email: "a@example.com", first_name: "Ann", company: "Acme" } })).body.contact;

    const res = await api("/v1/contacts/batch", {
      method: "POST",
      key,
      body: { contacts: [{ email: "new@example.com", company: "Newco" }, { email: "A@example.com", job_title: "CTO" }, { email: "z@example.com" }] },
    });

    expect(res.body.contacts.map((c: { email: string; created: boolean }) => [c.email, c.created])).toEqual([
      ["new@example.com", true],
      ["A@example.com", false],
      ["z@example.com", true],
    ]);
    expect(res.body.contacts[1].id).toBe(first.id);
    const updated = (await api(`/v1/contacts/${first.id}`, { key })).body.contact;
    expect(updated).toMatchObject({ email: "A@example.com", first_name: "Ann", company: "Acme", job_title: "CTO" });
  });
});
