import { expect } from "vitest";
import { makeWorkspace, type Json } from "../helpers";
import { EMAIL_STEP, approve, contactOf, drive, getRun, makeContact, makeStepsAgent, startRun } from "../engine-helpers";

/** A run whose one contact (Dana at Globex) has its first email pending approval; `steps` default to that email alone. */
export async function pendingEmail(steps: Json[] = [EMAIL_STEP]) {
  const { key } = await makeWorkspace();
  const agent = await makeStepsAgent(key, steps);
  const contact = await makeContact(key, { first_name: "Dana", company: "Globex" });
  const runId = await startRun(key, agent.id, [contact.id]);
  return { key, runId, contact, actionKey: `${runId}/${contact.id}/0` };
}

/** Approves the contact's first action (asserted 200), runs what is due, and answers the contact's progress. */
export async function approveAndDrive(key: string, runId: string, contactId: string) {
  expect((await approve(key, runId, contactId, 0)).status).toBe(200);
  await drive(runId);
  return contactOf(await getRun(key, runId), contactId);
}
