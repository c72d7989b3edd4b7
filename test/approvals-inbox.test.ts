import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { InboxCache } from "../src/approvals/inbox-cache";
import { readInbox, type InboxPage } from "../src/approvals/inbox-read";
import { api, makeWorkspace, type Json } from "./helpers";
import { DAY, EMAIL_STEP, approve, drive, makeContact, makeIdentity, makeStepsAgent, reject, startRun } from "./engine-helpers";

const nextUtcMidnight = (days: number) => {
  const at = new Date();
  at.setUTCHours(0, 0, 0, 0);
  return new Date(at.getTime() + days * DAY).toISOString();
};

const inbox = async (key: string, query = "") => {
  const res = await api(`/v1/approvals${query}`, { key });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.approvals as Json[];
};
const keyOf = (e: Json) => `${e.run_id}/${e.contact_id}/${e.action_index}`;

/**
 * One sender allowed two emails a day (UTC, no window) that sent one today, and two agents
 * sending as it with two pending emails each: four emails queued for three free slots and more.
 */
async function queuedSender() {
  const { key, workspaceId } = await makeWorkspace();
  const identity = await makeIdentity(key, { daily_limit: 2, email_address: `queue-${crypto.randomUUID().slice(0, 8)}@cairn.example` });
  const first = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: identity.id });
  const second = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: identity.id });
  const sent = await makeContact(key);
  const sentRun = await startRun(key, first.id, [sent.id]);
  expect((await approve(key, sentRun, sent.id, 0)).status).toBe(200);
  const contacts = [await makeContact(key), await makeContact(key), await makeContact(key), await makeContact(key)];
  const runs = [await startRun(key, first.id, [contacts[0]!.id, contacts[1]!.id]), await startRun(key, second.id, [contacts[2]!.id, contacts[3]!.id])];
  for (const runId of [sentRun, ...runs]) await drive(runId);
  return { key, workspaceId, identity, first, second, runs };
}

describe("GET /v1/approvals: estimated_send_at", () => {
  it("gives each pending email the free slot its place in its sender's queue takes, on every page and under every filter", async () => {
    const { key, second, runs } = await queuedSender();
    const before = Date.now();
    const all = await inbox(key);
    const after = Date.now();
    expect(all).toHaveLength(4);
    // Today's one free slot goes to the oldest; then two tomorrow, one the day after.
    const [now, ...later] = all.map((e) => e.action.estimated_send_at as string);
    expect(Date.parse(now!)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(now!)).toBeLessThanOrEqual(after);
    expect(later).toStrictEqual([nextUtcMidnight(1), nextUtcMidnight(1), nextUtcMidnight(2)]);

    // A page counts the whole queue before it, not only its own rows.
    for (let offset = 1; offset < 4; offset++) {
      const [entry] = await inbox(key, `?limit=1&offset=${offset}`);
      expect(keyOf(entry!)).toBe(keyOf(all[offset]!));
      expect(entry!.action.estimated_send_at).toBe(all[offset]!.action.estimated_send_at);
    }
    // So does a filter: the second run's emails wait behind the first's.
    for (const query of [`?run_id=${runs[1]}`, `?agent_id=${second.id}`]) {
      expect((await inbox(key, query)).map((e) => e.action.estimated_send_at)).toStrictEqual([nextUtcMidnight(1), nextUtcMidnight(2)]);
    }
  });

  it("estimates each email under the send window its own run took from the sender", async () => {
    const { key } = await makeWorkspace();
    const identity = await makeIdentity(key, { daily_limit: 10, email_address: `window-${crypto.randomUUID().slice(0, 8)}@cairn.example` });
    const agent = await makeStepsAgent(key, [EMAIL_STEP], { identity_id: identity.id });
    const before = Date.now();
    await startRun(key, agent.id, [(await makeContact(key)).id]);
    // From now on the sender sends only tomorrow, 09:00 to 17:00 UTC; the first run keeps no window.
    const tomorrow = ((new Date().getUTCDay() || 7) % 7) + 1;
    const send_window = { start: "09:00", end: "17:00", days: [tomorrow], timezone: "UTC" };
    expect((await api(`/v1/identities/${identity.id}`, { method: "PATCH", key, body: { send_window } })).status).toBe(200);
    await startRun(key, agent.id, [(await makeContact(key)).id]);
    const [early, late] = (await inbox(key)).map((e) => e.action.estimated_send_at as string);
    expect(Date.parse(early!)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(early!)).toBeLessThan(Date.parse(nextUtcMidnight(1)));
    expect(late).toBe(new Date(Date.parse(nextUtcMidnight(1)) + 9 * 60 * 60 * 1000).toISOString());
  });

  it("answers a page, its total and its senders' estimates in one D1 round trip", async () => {
    const { workspaceId } = await queuedSender();
    const { d1, roundTrips } = countingD1(env.DB);
    const { entries, total } = await readInbox(d1, workspaceId, { limit: 3, offset: 1 });
    expect(total).toBe(4);
    expect(entries.map((e) => e.action.estimated_send_at)).toStrictEqual([nextUtcMidnight(1), nextUtcMidnight(1), nextUtcMidnight(2)]);
    expect(roundTrips()).toBe(1);
  });
});

describe("GET /v1/approvals: pages held by the isolate", () => {
  const firstPage = { limit: 20, offset: 0 };
  // Which statement each D1 read was: a page read, or the check of a held page's version.
  const kinds = (statements: string[]) =>
    statements.map((q) => (q.startsWith("WITH page") ? "page" : q === "SELECT version FROM inboxes WHERE workspace_id = ?" ? "version" : q));

  it("answers a page read before with one read of the inbox version while nothing on it has changed", async () => {
    const { workspaceId } = await queuedSender();
    const cache = new InboxCache<InboxPage>();
    const { d1, queries } = countingD1(env.DB);
    const now = Date.now();
    const first = await readInbox(d1, workspaceId, firstPage, now, cache);
    expect(await readInbox(d1, workspaceId, firstPage, now, cache)).toStrictEqual(first);
    // Every request that reads a held page shares it: none may change it for the others.
    expect(Object.isFrozen(first.entries[0]!.contact)).toBe(true);
    // A delivery the provider confirms holds its slot as before: the page stands.
    await env.DB.prepare("UPDATE deliveries SET status = 'delivered' WHERE workspace_id = ? AND status = 'sent'").bind(workspaceId).run();
    expect(await readInbox(d1, workspaceId, firstPage, now, cache)).toStrictEqual(first);
    expect(kinds(queries())).toStrictEqual(["page", "version", "version"]);
    // Another page, or another workspace's, is its own.
    await readInbox(d1, workspaceId, { ...firstPage, offset: 1 }, now, cache);
    await readInbox(d1, (await makeWorkspace()).workspaceId, firstPage, now, cache);
    expect(kinds(queries()).slice(3)).toStrictEqual(["page", "page"]);
  });

  it("reads a page whose inbox keeps moving straight away, one round trip each, until it stands still", async () => {
    const { key, workspaceId, identity } = await queuedSender();
    const cache = new InboxCache<InboxPage>();
    const { d1, queries, roundTrips } = countingD1(env.DB);
    const read = () => readInbox(d1, workspaceId, firstPage, Date.now(), cache);
    const limit = async (daily_limit: number) => expect((await api(`/v1/identities/${identity.id}`, { method: "PATCH", key, body: { daily_limit } })).status).toBe(200);
    await read();
    await limit(3);
    await read(); // checked, found moved, read again
    await limit(4);
    await read(); // read straight away: moved again
    await read(); // read straight away: where it was left
    await read(); // checked: stands
    expect(kinds(queries())).toStrictEqual(["page", "version", "page", "page", "page", "version"]);
    expect(roundTrips()).toBe(6);
  });

  it("reads the page again after every change it shows: entries, deliveries' send slots, the sender's limit", async () => {
    const { key, workspaceId, identity, first, second, runs } = await queuedSender();
    const cache = new InboxCache<InboxPage>();
    const now = Date.now();
    // Each change must show in a page held from before it, exactly as a page read afresh shows it.
    let shown = await readInbox(env.DB, workspaceId, firstPage, now, cache);
    const expectSeen = async (change: string) => {
      const held = await readInbox(env.DB, workspaceId, firstPage, now, cache);
      expect(held, change).toStrictEqual(await readInbox(env.DB, workspaceId, firstPage, now, new InboxCache()));
      expect(held, change).not.toStrictEqual(shown);
      shown = held;
      // The inbox moved, so the page was marked to be read straight away: one more read finds it
      // standing still, and the next change is caught by the version check alone.
      await readInbox(env.DB, workspaceId, firstPage, now, cache);
    };
    const sql = (query: string, ...values: unknown[]) => env.DB.prepare(query).bind(...values).run();

    // Two a day, one sent today: the four pending emails go out now, tomorrow, tomorrow, the day after.
    const automatic = await makeStepsAgent(key, [{ ...EMAIL_STEP, require_approval: false }], { identity_id: identity.id });
    await startRun(key, automatic.id, [(await makeContact(key)).id], "completed");
    await expectSeen("an email sent without approval takes today's last slot");
    await sql("UPDATE deliveries SET send_day = ? WHERE agent_id = ?", nextUtcMidnight(1).slice(0, 10), automatic.id);
    await expectSeen("a sent email counted against tomorrow instead");
    await sql("UPDATE deliveries SET status = 'failed' WHERE agent_id = ?", automatic.id);
    await expectSeen("a failed email frees its slot");
    await sql("UPDATE deliveries SET identity_id = 'id_elsewhere' WHERE identity_id = ? AND status <> 'failed'", identity.id);
    await expectSeen("a sent email counted against another sender");
    await sql("UPDATE deliveries SET identity_id = ? WHERE identity_id = 'id_elsewhere' AND workspace_id = ?", identity.id, workspaceId);
    await expectSeen("and against this one again");
    await sql("DELETE FROM deliveries WHERE identity_id = ? AND status <> 'failed'", identity.id);
    await expectSeen("a removed delivery frees its slot");
    expect((await api(`/v1/identities/${identity.id}`, { method: "PATCH", key, body: { daily_limit: 3 } })).status).toBe(200);
    await expectSeen("a higher daily limit");
    expect((await reject(key, runs[1]!, shown.entries.at(-1)!.contact_id, 0)).status).toBe(200);
    await drive(runs[1]!);
    await expectSeen("a rejection removes its entry");
    await startRun(key, second.id, [(await makeContact(key)).id]);
    await expectSeen("a proposal adds its entry");
    // A deleted sender leaves its pending emails to the default daily limit.
    const other = await makeIdentity(key, { email_address: `other-${crypto.randomUUID().slice(0, 8)}@cairn.example` });
    for (const agent of [first, second, automatic]) expect((await api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { identity_id: other.id } })).status).toBe(200);
    expect((await api(`/v1/identities/${identity.id}`, { method: "DELETE", key })).status).toBe(200);
    await expectSeen("a deleted sender");
  });
});

/** A D1 binding that counts its round trips (each batch, and each statement run on its own) and keeps the SQL it was given. */
function countingD1(db: D1Database) {
  let trips = 0;
  const sql: string[] = [];
  const counted = (statement: D1PreparedStatement): D1PreparedStatement => {
    for (const method of ["all", "first", "run", "raw"] as const) {
      const original = statement[method].bind(statement) as (...args: unknown[]) => unknown;
      Object.assign(statement, { [method]: (...args: unknown[]) => (trips++, original(...args)) });
    }
    const bind = statement.bind.bind(statement);
    return Object.assign(statement, { bind: (...values: unknown[]) => counted(bind(...values)) });
  };
  const d1 = {
    prepare: (query: string) => (sql.push(query), counted(db.prepare(query))),
    batch: (statements: D1PreparedStatement[]) => (trips++, db.batch(statements)),
  } as unknown as D1Database;
  return { d1, roundTrips: () => trips, queries: () => sql };
}
