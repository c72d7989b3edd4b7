import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { readInbox } from "../src/approvals/inbox-read";
import { createDb } from "../src/db/client";
import { api, makeWorkspace, type Json } from "./helpers";
import { DAY, EMAIL_STEP, approve, drive, makeContact, makeIdentity, makeStepsAgent, startRun } from "./engine-helpers";

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
  return { key, workspaceId, second, runs };
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

  it("answers a page, its total and its senders' estimates in one D1 round trip", async () => {
    const { workspaceId } = await queuedSender();
    const { d1, roundTrips } = countingD1(env.DB);
    const { entries, total } = await readInbox(createDb(d1), d1, workspaceId, { limit: 3, offset: 1 });
    expect(total).toBe(4);
    expect(entries.map((e) => e.action.estimated_send_at)).toStrictEqual([nextUtcMidnight(1), nextUtcMidnight(1), nextUtcMidnight(2)]);
    expect(roundTrips()).toBe(1);
  });
});

/** A D1 binding that counts its round trips: each batch, and each statement run on its own. */
function countingD1(db: D1Database) {
  let trips = 0;
  const counted = (statement: D1PreparedStatement): D1PreparedStatement => {
    for (const method of ["all", "first", "run", "raw"] as const) {
      const original = statement[method].bind(statement) as (...args: unknown[]) => unknown;
      Object.assign(statement, { [method]: (...args: unknown[]) => (trips++, original(...args)) });
    }
    const bind = statement.bind.bind(statement);
    return Object.assign(statement, { bind: (...values: unknown[]) => counted(bind(...values)) });
  };
  const d1 = {
    prepare: (query: string) => counted(db.prepare(query)),
    batch: (statements: D1PreparedStatement[]) => (trips++, db.batch(statements)),
  } as unknown as D1Database;
  return { d1, roundTrips: () => trips };
}
