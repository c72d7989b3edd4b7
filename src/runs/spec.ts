import type { toIdentityJson } from "../identities/identity-record";
import type { AgentConfig } from "../agents/agent-record";
import type { ActionType, Capability, LlmConfig, Step } from "../schemas/agents";
import type { StopReason } from "./machine";

/** What a run's builtin templates may refer to as `{{first_name}}` and friends. */
export type ContactSnapshot = {
  id: string;
  email: string;
  first_name: string | null;
  last_name: string | null;
  company: string | null;
  job_title: string | null;
  lifecycle_stage: string | null;
  linkedin_url: string | null;
  unsubscribed: boolean;
};

/** The sending identity as the API shows it; `{{sender.first_name}}` reads from it. */
export type SenderSnapshot = Pick<
  ReturnType<typeof toIdentityJson>,
  "id" | "first_name" | "last_name" | "role" | "email_address" | "linkedin_url" | "send_window"
>;

export type RunStep = Step & { id: string };

/** A contact as the run starts with it: stopped already when deleted, opted out or replied since the trigger. */
export type StartContact = { id: string; position: number; snapshot: ContactSnapshot | null; stop: StopReason | null };

/** Everything a run's Durable Object needs, fixed when the run starts. */
export type RunSpec = {
  runId: string;
  jobId: string;
  trigger: "manual" | "schedule" | "event";
  workspaceId: string;
  /** When the run was triggered (ms): stop events from then on apply to it. */
  triggeredAt: number;
  agentId: string;
  playbookMd: string;
  steps: RunStep[];
  stopOn: string[];
  llm: LlmConfig;
  capabilities?: Capability[];
  sender: SenderSnapshot | null;
  contacts: StartContact[];
};

/** A run's spec without its contact list: what the run keeps beside its contacts table. */
export type RunPlan = Omit<RunSpec, "contacts">;

/** The action a capability stands for when a playbook has no steps. */
const DEFAULT_ACTION: Record<Capability, ActionType> = {
  email: "email_message",
  linkedin: "linkedin_connection",
  notes: "create_note",
  crm_sync: "sync_to_crm",
  tasks: "create_task",
};

/** The steps a run takes: the playbook's, or one step for the agent's first capability. */
export function effectiveSteps(agent: AgentConfig): RunStep[] | null {
  if (agent.playbook?.steps?.length) return agent.playbook.steps as RunStep[];
  const first = agent.capabilities[0];
  if (!first) return null;
  return [{ id: "step_1", action: DEFAULT_ACTION[first], require_approval: true } as RunStep];
}

/** Event types that end a contact's sequence, and the `stop_reason` each gives. */
export const STOP_EVENTS: Record<string, StopReason> = {
  "email.replied": "reply",
  "contact.unsubscribed": "unsubscribe",
  "email.bounced": "bounce",
};
