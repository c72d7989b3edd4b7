import { and, eq, inArray } from "drizzle-orm";
import type { Db } from "../db/client";
import { runContacts, runs } from "../db/schema";
import type { Env } from "../env";
import { chunk, D1_MAX_PARAMS } from "../lib/d1";
import { runStub } from "./run-stub";
import { STOP_EVENTS } from "./spec";

/**
 * Tells every active run that holds one of these contacts that it replied, unsubscribed or
 * bounced. Each run decides by its playbook's `stop_on`; executors re-check before sending.
 */
export async function signalStops(db: Db, env: Env, workspaceId: string, signals: { contactId: string; type: string }[]): Promise<void> {
  const relevant = signals.filter((s) => STOP_EVENTS[s.type]);
  if (relevant.length === 0) return;
  const contactIds = [...new Set(relevant.map((s) => s.contactId))];
  const holders = (
    await Promise.all(
      chunk(contactIds, D1_MAX_PARAMS - 10).map((part) =>
        db
          .select({ runId: runContacts.runId, contactId: runContacts.contactId })
          .from(runContacts)
          .innerJoin(runs, eq(runs.id, runContacts.runId))
          .where(and(inArray(runContacts.contactId, part), eq(runs.workspaceId, workspaceId), inArray(runs.status, ["running", "awaiting_approval"]))),
      ),
    )
  ).flat();
  await Promise.all(
    holders.flatMap(({ runId, contactId }) =>
      relevant.filter((s) => s.contactId === contactId).map((s) => runStub(env, runId).stopContact(contactId, STOP_EVENTS[s.type]!)),
    ),
  );
}
