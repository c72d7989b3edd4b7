import { asc, eq, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { contacts, events, identities, runContacts, type runs } from "../db/schema";
import type { AgentSnapshot } from "./create-run";
import { toIdentityJson } from "../identities/identity-record";
import type { StopReason } from "./machine";
import { STOP_EVENTS, type RunSpec } from "./spec";
import { snapshotOf } from "./stop-signals";

/**
 * Assembles what the run's Durable Object starts from: the snapshot, the sender, the
 * contacts in trigger order. A contact deleted, unsubscribed, bounced or replied since the
 * trigger starts out stopped, so nothing is ever proposed to it.
 */
export async function buildSpec(db: Db, run: typeof runs.$inferSelect): Promise<RunSpec> {
  const agent = run.agentSnapshot as AgentSnapshot;
  const triggeredAt = run.createdAt.getTime();
  const [targets, sender] = await Promise.all([
    db
      .select({
        id: runContacts.contactId,
        position: runContacts.position,
        contact: contacts,
        // The latest stop event since the trigger; a bounce counts whenever it happened.
        stopEvent: sql<string | null>`(SELECT ${events.type} FROM ${events} WHERE ${events.contactId} = ${runContacts.contactId}
          AND ((${events.type} IN ('email.replied', 'contact.unsubscribed') AND ${events.createdAt} >= ${triggeredAt}) OR ${events.type} = 'email.bounced')
          ORDER BY ${events.createdAt} DESC LIMIT 1)`,
      })
      .from(runContacts)
      .leftJoin(contacts, eq(contacts.id, runContacts.contactId))
      .where(eq(runContacts.runId, run.id))
      .orderBy(asc(runContacts.position)),
    agent.identity_id ? db.query.identities.findFirst({ where: eq(identities.id, agent.identity_id) }) : undefined,
  ]);
  return {
    runId: run.id,
    jobId: run.jobId,
    trigger: run.trigger,
    workspaceId: run.workspaceId,
    triggeredAt,
    agentId: run.agentId,
    playbookMd: agent.playbook_md,
    steps: agent.steps,
    stopOn: agent.stop_on,
    llm: agent.llm_config,
    capabilities: agent.capabilities ?? [],
    sender: sender ? toIdentityJson(sender) : null,
    contacts: targets.map(({ id, position, contact: c, stopEvent }) => {
      const stop: StopReason | null = !c ? "contact_deleted" : c.unsubscribed ? "unsubscribe" : stopEvent ? STOP_EVENTS[stopEvent]! : null;
      const snapshot = c && snapshotOf(c);
      return { id, position, snapshot, stop };
    }),
  };
}
