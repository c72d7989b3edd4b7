import type { EventType } from "./events";

const RUN = "run_01KAXBZ7Q4W6N2C8D5F3H9J0M1";
const AGENT = "agt_01KAXBY3T5V7X9Z1B3D5F7H9K2";
const CONTACT = "ct_01KAXBX1R3T5V7X9Z1B3D5F7H3";
const AT = "2026-11-24T09:00:00.000Z";

const run = (status: string, extra: Record<string, unknown> = {}) => ({
  id: RUN,
  run_id: RUN,
  job_id: "job_01KAXBZ7Q4W6N2C8D5F3H9J0M2",
  agent_id: AGENT,
  status,
  trigger: "manual",
  contact_count: 1,
  counts: { pending_approval: 0, approved: 0, rejected: 0, completed: 0, failed: 0, invalidated: 0, cancelled: 0, ...((extra.counts as object) ?? {}) },
  usage: { proposals: 1, input_tokens: 0, output_tokens: 0 },
  created_at: AT,
  started_at: AT,
  completed_at: ["completed", "failed", "cancelled"].includes(status) ? AT : null,
  error: status === "failed" ? "Every contact's steps failed" : null,
});

const action = (status: string, extra: Record<string, unknown> = {}) => ({
  index: 0,
  step_id: "intro_email",
  type: "email_message",
  status,
  identity_id: "id_01KAXBW9P1R3T5V7X9Z1B3D5F4",
  params: { to: "ada@example.com", subject: "Quick question, Ada", body: "Hi Ada, ..." },
  reasoning: "Template intro_email for Ada",
  digest: "sha256:6f1c...",
  proposed_at: AT,
  decided_at: status === "pending_approval" ? null : AT,
  decision: status === "pending_approval" ? null : { type: status === "rejected" ? "reject" : "approve", by_key_id: "key_01KAXBV7N9Q1S3U5W7Y9A1C3E5", reason: null, edited: false },
  scheduled_for: null,
  attempts: status === "completed" || status === "failed" ? 1 : 0,
  executed_at: status === "completed" ? AT : null,
  result: status === "completed" ? { delivery_id: "dlv_01KAXC0A2C4E6G8J0K2M4P6R8T" } : null,
  error: status === "failed" ? "The provider refused the message: invalid recipient" : null,
  generation: null,
  run_id: RUN,
  agent_id: AGENT,
  contact_id: CONTACT,
  ...extra,
});

/** An example `data` of each event type: what the test event sends and the README shows. */
export const EXAMPLE_DATA: Record<EventType, Record<string, unknown>> = {
  "run.started": run("running"),
  "run.awaiting_approval": run("awaiting_approval", { counts: { pending_approval: 1 } }),
  "run.completed": run("completed", { counts: { completed: 1 } }),
  "run.failed": run("failed", { counts: { failed: 1 } }),
  "run.cancelled": run("cancelled", { counts: { cancelled: 1 } }),
  "action.proposed": action("pending_approval"),
  "action.approved": action("approved"),
  "action.rejected": action("rejected"),
  "action.executed": action("completed"),
  "action.failed": action("failed"),
  "action.invalidated": action("invalidated"),
  "contact.stopped": { run_id: RUN, agent_id: AGENT, contact_id: CONTACT, status: "stopped", stop_reason: "reply" },
  "contact.unsubscribed": { contact_id: CONTACT, email: "ada@example.com", unsubscribed: true, unsubscribed_at: AT },
};
