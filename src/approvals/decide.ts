import type { Db } from "../db/client";
import { approvals } from "../db/schema";
import type { Env } from "../env";
import type { Auth } from "../lib/auth";
import { runStub } from "../runs/run-stub";
import { MAX_DECISIONS, type DecideBody } from "../schemas/approvals";
import { INBOX_ORDER, inboxWhere } from "./inbox-read";

type Item = { run_id: string; contact_id: string; action_index: number; digest?: string };
export type ItemResult = { run_id: string; contact_id: string; action_index: number; status: string; code?: string; message?: string };

/**
 * Decides the named actions, or the inbox's oldest pending ones matching `filter` (at most
 * 1000), each as the single decision would: one call per run object, all of a run's items
 * in one storage transaction there, the runs in parallel. Results keep the items' order.
 */
export async function decideAll(db: Db, env: Env, auth: Auth, body: DecideBody): Promise<ItemResult[]> {
  const items: Item[] = body.items ?? (await selected(db, auth.workspaceId, body.filter!));
  const byRun = Map.groupBy(items, (item) => item.run_id);
  const decided = await Promise.all(
    [...byRun].map(async ([runId, runItems]) => {
      const outcomes = await runStub(env, runId).decideMany(
        auth.workspaceId,
        body.decision,
        runItems.map((i) => ({ contactId: i.contact_id, index: i.action_index, digest: i.digest })),
        { keyId: auth.keyId, reason: body.reason, dryRun: body.dry_run },
      );
      return outcomes.map(({ contactId, index, digest: _digest, ...outcome }): [string, ItemResult] => [
        `${runId}/${contactId}/${index}`,
        { run_id: runId, contact_id: contactId, action_index: index, ...outcome },
      ]);
    }),
  );
  const resultOf = new Map(decided.flat());
  return items.map((i) => resultOf.get(`${i.run_id}/${i.contact_id}/${i.action_index}`)!);
}

/** The inbox's oldest pending actions matching the filter, as items (no digest: whatever is pending now). */
async function selected(db: Db, workspaceId: string, filter: NonNullable<DecideBody["filter"]>): Promise<Item[]> {
  const rows = await db
    .select({ run_id: approvals.runId, contact_id: approvals.contactId, action_index: approvals.actionIndex })
    .from(approvals)
    .where(inboxWhere(workspaceId, filter))
    .orderBy(...INBOX_ORDER)
    .limit(MAX_DECISIONS);
  return rows;
}
