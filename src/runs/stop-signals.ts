import { and, eq, inArray } from "drizzle-orm";
import type { Db } from "../db/client";
import { runContacts, runs } from "../db/schema";
import type { Env } from "../env";
import { batchRead, chunk, D1_MAX_PARAMS } from "../lib/d1";
import { runStub } from "./run-stub";
import { STOP_EVENTS } from "./spec";

/**
 * Tells every active run that holds one of these contacts that it replied, unsubscribed or
 * bounced: one call per run, whatever the number of contacts. Each run decides by its
 * playbook's `stop_on`. Failures are logged, not raised: the events are stored already, and
 * executors re-check every contact before they send.
 */
export async function signalStops(db: Db, env: Env, workspaceId: string, signals: { contactId: string; type: string }[]): Promise<void> {
  const relevant = signals.filter((s) => STOP_EVENTS[s.type]);
  if (relevant.length === 0) return;
  const contactIds = [...new Set(relevant.map((s) => s.contactId))];
  const holders = await batchRead(
    db,
    chunk(contactIds, D1_MAX_PARAMS - 10).map((part) =>
      db
        .select({ runId: runContacts.runId, contactId: runContacts.contactId })
        .from(runContacts)
        .innerJoin(runs, eq(runs.id, runContacts.runId))
        .where(and(inArray(runContacts.contactId, part), eq(runs.workspaceId, workspaceId), inArray(runs.status, ["running", "awaiting_approval"]))),
    ),
  );
  const byRun = Map.groupBy(holders, (h) => h.runId);
  const results = await Promise.allSettled(
    [...byRun].map(([runId, held]) => {
      const contacts = new Set(held.map((h) => h.contactId));
      const stops = relevant.filter((s) => contacts.has(s.contactId)).map((s) => ({ contactId: s.contactId, reason: STOP_EVENTS[s.type]! }));
      return runStub(env, runId).stopContacts(stops);
    }),
  );
  for (const result of results) {
    if (result.status === "rejected") console.error(JSON.stringify({ level: "error", message: "stop signal not delivered", error: String(result.reason) }));
  }
}
