import type { PriorAction, ProposalInput } from "../src/runs/generators/types";
import type { ContactSnapshot, RunStep, SenderSnapshot } from "../src/runs/spec";

/** Shared inputs for the model generators' tests: a contact with context and an edited, sent first email. */

export const PLAYBOOK = "# Pricing follow-up\nThank them for looking at pricing; offer a 15-minute call. Never discount.";

export const contact = (overrides: Partial<ContactSnapshot> = {}): ContactSnapshot => ({
  id: "ct_1",
  email: "ada@acme.example",
  first_name: "Ada",
  last_name: "Lovelace",
  company: "Acme",
  job_title: "CTO",
  lifecycle_stage: "lead",
  linkedin_url: "https://www.linkedin.com/in/ada",
  unsubscribed: false,
  ...overrides,
});

export const sender: SenderSnapshot = {
  id: "id_1",
  first_name: "Sam",
  last_name: "Sender",
  role: "Founder",
  email_address: "sam@cairn.example",
  linkedin_url: null,
  send_window: null,
};

/** The first email as the human approved it after editing it, then sent. */
export const sentEmail: PriorAction = {
  step_id: "intro",
  type: "email_message",
  status: "completed",
  params: { to: "ada@acme.example", subject: "Edited subject the human approved", body: "Hi Ada,\n\nThe body as the human rewrote it.\n\nSam" },
  edited: true,
  executed_at: "2026-10-02T10:00:00.000Z",
};

export const followUp: RunStep = {
  id: "follow_up",
  action: "email_message",
  require_approval: true,
  instructions: "Follow up on the first email and ask for a call.",
  template: { subject: "Re: {{company}} pricing", body: "Hi {{first_name}}, following up." },
};

export const connect: RunStep = { id: "connect", action: "linkedin_connection", require_approval: true, instructions: "Ask to connect." };

export const input = (overrides: Partial<ProposalInput> = {}): ProposalInput => ({
  step: followUp,
  stepIndex: 1,
  contact: contact(),
  sender,
  playbookMd: PLAYBOOK,
  llm: { provider: "openai", model: "test-model", temperature: 0.4, max_tokens: 600 },
  capabilities: ["email", "linkedin"],
  context: {
    properties: { plan: "pro", seats: 40 },
    events: [{ type: "page_view", url: "https://acme.example/pricing", properties: { plan: "pro" }, occurred_at: "2026-10-03T09:00:00.000Z" }],
  },
  history: [sentEmail],
  ...overrides,
});

/** A valid answer for the follow-up email. */
export const emailAnswer = { subject: "  Quick call about Acme's plan?  ", body: "Hi Ada,\n\nWould 15 minutes this week help?\n\nSam", reasoning: "Refers to the first email and the pricing visit." };

/** What the prompt must carry about the contact, their context and the earlier, edited email. */
export const PROMPT_FACTS = [
  "ada@acme.example",
  "first_name: Ada",
  "company: Acme",
  '"plan": "pro"',
  '"seats": 40',
  "page_view https://acme.example/pricing",
  "Step intro (email_message): sent at 2026-10-02T10:00:00.000Z",
  "The human edited it",
  "Edited subject the human approved",
  "The body as the human rewrote it.",
  "name: Sam Sender",
];

/** A `sleep` that records what it was asked and resolves at once: no real waiting in tests. */
export function sleepRecorder() {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}
