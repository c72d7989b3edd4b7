import { env } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { contacts, runs } from "../src/db/schema";
import { filterConditions } from "../src/runs/targeting";
import { api, expectError, makeAgent, makeWorkspace, type Json } from "./helpers";
import { DAY } from "./engine-helpers";
import { getRun, makeContacts, runCount, sendEvents, trigger } from "./run-helpers";

// A trigger without contact_ids: the agent's monitoring.filter, evaluated in D1.

const db = () => createDb(env.DB);
const daysAgo = (days: number) => new Date(Date.now() - days * DAY).toISOString();
const paths = (body: Json) => (body.details as Json[]).map((d) => d.path);
const runContactIds = async (key: string, runId: string) => ((await getRun(key, runId)).contacts as Json[]).map((c) => c.contact_id);

/** A fresh workspace with a notes agent targeting by `filter` (and any other monitoring fields). */
async function targetingAgent(filter: Json, monitoring: Json = {}) {
  const { key } = await makeWorkspace();
  const agent = await makeAgent(key, { capabilities: ["notes"], monitoring: { filter, ...monitoring } });
  return { key, agent };
}

/** `count` events of `type` at `url` for the contact, each `age` days old. */
const eventsFor = (contactId: string, count: number, type: string, url: string, age: number) =>
  Array.from({ length: count }, () => ({ contact_id: contactId, type, url, occurred_at: daysAgo(age) }));

describe("default targeting (no contact_ids)", () => {
  it("selects contacts by lifecycle_stage", async () => {
    const { key, agent } = await targetingAgent({ lifecycle_stage: ["lead", "mql"] });
    const made = await makeContacts(key, 4, (i) => [{ lifecycle_stage: "lead" }, { lifecycle_stage: "mql" }, { lifecycle_stage: "customer" }, {}][i]!);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([made[0]!.id, made[1]!.id]));
  });

  it("selects contacts by string, number and boolean properties, matching JSON types exactly", async () => {
    const { key, agent } = await targetingAgent({ properties: { plan: "pro", seats: 5, beta: true } });
    const made = await makeContacts(key, 7, (i) => ({
      properties: [
        { plan: "pro", seats: 5, beta: true }, // matches
        { plan: "pro", seats: 5, beta: true, extra: "x" }, // matches
        { plan: "basic", seats: 5, beta: true },
        { plan: "pro", seats: "5", beta: true },
        { plan: "pro", seats: 5, beta: false },
        { plan: "pro", seats: 5, beta: "true" },
        { plan: "pro", seats: 5 },
      ][i],
    }));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([made[0]!.id, made[1]!.id]));
  });

  it("does not take the number 1 for the boolean true, nor 0 for false", async () => {
    const { key, agent } = await targetingAgent({ properties: { beta: true, legacy: false } });
    const made = await makeContacts(key, 3, (i) => ({ properties: [{ beta: true, legacy: false }, { beta: 1, legacy: false }, { beta: true, legacy: 0 }][i] }));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await runContactIds(key, res.body.run_id)).toEqual([made[0]!.id]);
  });

  it("does not take the boolean true for the number 1", async () => {
    const { key, agent } = await targetingAgent({ properties: { tier: 1 } });
    const made = await makeContacts(key, 3, (i) => ({ properties: [{ tier: 1 }, { tier: true }, { tier: 1.0 }][i] }));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([made[0]!.id, made[2]!.id]));
  });

  it("refuses, when the agent is created, a filter property name that no contact property can have", async () => {
    const { key } = await makeWorkspace();
    const res = await api("/v1/agents", { method: "POST", key, body: { name: "Quotes", capabilities: ["notes"], monitoring: { filter: { properties: { 'a"b': "x" } } } } });
    const body = expectError(res, 400, "validation_error");
    expect(paths(body)).toEqual(['monitoring.filter.properties.a"b']);
  });

  it("selects contacts with at least min_count matching events within within_days", async () => {
    const { key, agent } = await targetingAgent({ event: { type: "page_view", url_contains: "/pricing", min_count: 2, within_days: 7 } });
    const [twice, once, old, mixed, otherPage, otherType] = await makeContacts(key, 6);
    await sendEvents(key, [
      ...eventsFor(twice!.id, 2, "page_view", "https://acme.example/pricing", 1),
      ...eventsFor(once!.id, 1, "page_view", "https://acme.example/pricing", 1),
      ...eventsFor(old!.id, 3, "page_view", "https://acme.example/pricing", 10),
      ...eventsFor(mixed!.id, 1, "page_view", "https://acme.example/pricing?plan=pro", 2),
      ...eventsFor(mixed!.id, 1, "page_view", "https://acme.example/pricing", 8),
      ...eventsFor(otherPage!.id, 2, "page_view", "https://acme.example/blog", 1),
      ...eventsFor(otherType!.id, 2, "click", "https://acme.example/pricing", 1),
    ]);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await runContactIds(key, res.body.run_id)).toEqual([twice!.id]);
  });

  it("matches url_contains literally: % and _ are not wildcards", async () => {
    const { key, agent } = await targetingAgent({ event: { type: "page_view", url_contains: "/a_b%" } });
    const [literal, wild] = await makeContacts(key, 2);
    await sendEvents(key, [
      ...eventsFor(literal!.id, 1, "page_view", "https://acme.example/a_b%25", 1),
      ...eventsFor(wild!.id, 1, "page_view", "https://acme.example/axbyz", 1),
    ]);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await runContactIds(key, res.body.run_id)).toEqual([literal!.id]);
  });

  it("leaves out contacts contacted within not_contacted_within_days", async () => {
    const { key, agent } = await targetingAgent({ not_contacted_within_days: 3 });
    const [never, recent, longAgo] = await makeContacts(key, 3);
    await db().update(contacts).set({ lastContactedAt: new Date(Date.now() - 1 * DAY) }).where(eq(contacts.id, recent!.id));
    await db().update(contacts).set({ lastContactedAt: new Date(Date.now() - 10 * DAY) }).where(eq(contacts.id, longAgo!.id));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([never!.id, longAgo!.id]));
  });

  it("never selects unsubscribed or bounced contacts, even when they match the filter, and reports them skipped", async () => {
    const { key, agent } = await targetingAgent({ lifecycle_stage: ["lead"] });
    const [plain, unsubscribed, bounced] = await makeContacts(key, 3, (i) => ({ lifecycle_stage: "lead", unsubscribed: i === 1 }));
    await sendEvents(key, [{ contact_id: bounced!.id, type: "email.bounced", occurred_at: daysAgo(200) }]);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ contact_count: 1 });
    expect(res.body.skipped).toEqual([
      { contact_id: bounced!.id, reason: "bounced" },
      { contact_id: unsubscribed!.id, reason: "unsubscribed" },
    ]);
    expect(await runContactIds(key, res.body.run_id)).toEqual([plain!.id]);
    const stored = await db().query.contacts.findFirst({ where: eq(contacts.id, unsubscribed!.id) });
    expect(stored!.unsubscribed).toBe(true);
  });

  it("without a filter selects every contact of the workspace that is not suppressed, and no other workspace's", async () => {
    const { key, agent } = await targetingAgent({});
    const other = await makeWorkspace();
    await makeContacts(other.key, 2);
    const made = await makeContacts(key, 3, (i) => ({ unsubscribed: i === 2 }));
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(new Set(await runContactIds(key, res.body.run_id))).toEqual(new Set([made[0]!.id, made[1]!.id]));
  });

  it("caps the run at max_contacts_per_run, newest contacts first", async () => {
    const { key, agent } = await targetingAgent({ lifecycle_stage: ["lead"] }, { max_contacts_per_run: 3 });
    const made = await makeContacts(key, 5, () => ({ lifecycle_stage: "lead" }));
    const newest = made.map((c) => c.id as string).sort().reverse().slice(0, 3);
    const res = await trigger(key, agent.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ contact_count: 3, skipped: [] });
    expect(await runContactIds(key, res.body.run_id)).toEqual(newest);
    const row = await db().query.runs.findFirst({ where: eq(runs.id, res.body.run_id) });
    expect(row!.contactCount).toBe(3);
  });

  it("answers 409 no_matching_contacts when nothing matches at all, and creates no run", async () => {
    const { key, agent } = await targetingAgent({ lifecycle_stage: ["customer"] });
    await makeContacts(key, 2, () => ({ lifecycle_stage: "lead" }));
    expectError(await trigger(key, agent.id), 409, "no_matching_contacts");
    expect(await runCount(key, agent.id)).toBe(0);
  });

  it("evaluates the filter with indexes: contacts by an index, events by events_contact_type_time", async () => {
    // Suppression is no longer part of the filter (eligibility checks it, to report it), so one events access.
    const { workspaceId } = await makeWorkspace();
    const filter = {
      lifecycle_stage: ["lead" as const],
      properties: { plan: "pro" },
      event: { type: "page_view", url_contains: "/pricing", min_count: 2, within_days: 7 },
      not_contacted_within_days: 3,
    };
    const query = db()
      .select({ id: contacts.id })
      .from(contacts)
      .where(and(...filterConditions(workspaceId, filter)))
      .toSQL();
    const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${query.sql}`)
      .bind(...query.params)
      .all<{ detail: string }>();
    const details = plan.results.map((row) => row.detail);

    const contactAccess = details.filter((d) => /\bcontacts\b/.test(d) && !/\bevents\b/.test(d));
    expect(contactAccess.length, details.join("\n")).toBeGreaterThan(0);
    for (const d of contactAccess) expect(d, details.join("\n")).toMatch(/^SEARCH contacts USING (COVERING )?INDEX contacts_workspace_/);
    const eventAccess = details.filter((d) => /\bevents\b/.test(d));
    expect(eventAccess.length, details.join("\n")).toBe(1);
    for (const d of eventAccess) expect(d, details.join("\n")).toMatch(/^SEARCH events USING (COVERING )?INDEX events_contact_type_time/);
  });
});
