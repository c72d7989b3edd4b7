import { asc, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { contacts, identities, runContacts, type runs } from "../db/schema";
import type { AgentSnapshot } from "./create-run";
import { toIdentityJson } from "../identities/identity-record";
import type { RunSpec } from "./spec";

/** Assembles what the run's Durable Object starts from: the snapshot, the sender, the contacts. */
export async function buildSpec(db: Db, run: typeof runs.$inferSelect): Promise<RunSpec> {
  const agent = run.agentSnapshot as AgentSnapshot;
  const [targets, sender] = await Promise.all([
    db
      .select()
      .from(runContacts)
      .innerJoin(contacts, eq(contacts.id, runContacts.contactId))
      .where(eq(runContacts.runId, run.id))
      .orderBy(asc(runContacts.position)),
    agent.identity_id ? db.query.identities.findFirst({ where: eq(identities.id, agent.identity_id) }) : undefined,
  ]);
  return {
    runId: run.id,
    workspaceId: run.workspaceId,
    triggeredAt: run.createdAt.getTime(),
    agentId: run.agentId,
    playbookMd: agent.playbook_md,
    steps: agent.steps,
    stopOn: agent.stop_on,
    llm: agent.llm_config,
    sender: sender ? toIdentityJson(sender) : null,
    // A contact deleted since the trigger drops out of the run.
    contacts: targets.map(({ contacts: c }) => ({
      id: c.id,
      email: c.email,
      first_name: c.firstName,
      last_name: c.lastName,
      company: c.company,
      job_title: c.jobTitle,
      lifecycle_stage: c.lifecycleStage,
      linkedin_url: c.linkedinUrl,
      unsubscribed: c.unsubscribed,
    })),
  };
}
