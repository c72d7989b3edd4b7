import { sql } from "drizzle-orm";
import { approvals, runs } from "../db/schema";
import { prepare } from "../lib/d1";
import { UNSTARTED_END } from "../runs/run-record";
import type { InboxChanges } from "../runs/run-events";

type RunKey = { runId: string; workspaceId: string; agentId: string };

/**
 * One run object's changes to the approvals inbox, as statements for its D1 mirror's batch:
 * additions (only while the run's row exists and D1 did not end it unstarted: such a run's
 * actions wait for nobody), then
 * removals, so an action proposed and decided between two mirrors is never listed.
 */
export function inboxWrites(d1: D1Database, run: RunKey, changes: InboxChanges): D1PreparedStatement[] {
  const writes: D1PreparedStatement[] = [];
  if (changes.add.length > 0) {
    writes.push(
      prepare(d1, sql`
        INSERT INTO ${approvals} (run_id, contact_id, action_index, workspace_id, agent_id, type, identity_id, send_window, proposed_at, action, contact)
        SELECT ${run.runId}, value ->> 'contact_id', value ->> 'action_index', ${run.workspaceId}, ${run.agentId}, value ->> 'type',
          value ->> 'identity_id', nullif(value -> 'send_window', 'null'), value ->> 'proposed_at', json(value -> 'action'), json(value -> 'contact')
        FROM json_each(${JSON.stringify(changes.add)}) WHERE EXISTS (SELECT 1 FROM ${runs} WHERE id = ${run.runId} AND NOT (${UNSTARTED_END}))
        ON CONFLICT DO NOTHING`),
    );
  }
  if (changes.remove.length > 0) {
    writes.push(
      prepare(d1, sql`
        DELETE FROM ${approvals} WHERE run_id = ${run.runId}
          AND (contact_id, action_index) IN (SELECT value ->> 'contact_id', value ->> 'action_index' FROM json_each(${JSON.stringify(changes.remove)}))`),
    );
  }
  return writes;
}
