import type { Capability, LlmConfig } from "../../schemas/agents";
import type { ActionParams } from "../actions";
import type { ActionStatus } from "../machine";
import type { ContactSnapshot, RunStep, SenderSnapshot } from "../spec";

/** What this sequence already proposed or did for the contact: a follow-up can refer to it. */
export type PriorAction = {
  step_id: string;
  type: RunStep["action"];
  status: ActionStatus;
  /** As approved (edits included) or as proposed when undecided. */
  params: ActionParams;
  edited: boolean;
  executed_at: string | null;
};

/** One of the contact's recent events, newest first. */
export type RecentEvent = { type: string; url: string | null; properties: Record<string, unknown>; occurred_at: string };

export type ProposalInput = {
  step: RunStep;
  stepIndex: number;
  contact: ContactSnapshot;
  sender: SenderSnapshot | null;
  playbookMd: string;
  llm: LlmConfig;
  /** The agent's capabilities, so the model knows what else the sequence can do. */
  capabilities: Capability[];
  /** Read from D1 only for model providers: the contact's free `properties` and its last 20 events. */
  context?: { properties: Record<string, unknown>; events: RecentEvent[] };
  /** Every action this run already has for the contact, oldest first. */
  history: PriorAction[];
  /** False once the contact left the proposal (a stop, a cancel, an address change): make no further call. */
  stillWanted?: () => boolean;
};

/** How a model wrote a proposal: CONTRACT.md section 10. */
export type Generation = {
  provider: LlmConfig["provider"];
  model: string;
  input_tokens: number;
  output_tokens: number;
  latency_ms: number;
  attempts: number;
};

export type Proposal = { params: ActionParams; reasoning: string; generation?: Generation };

/** Turns one playbook step for one contact into a proposed action. */
export interface ProposalGenerator {
  /** Whether this generator reads `context` (the engine loads it from D1 only then). */
  readonly needsContext?: boolean;
  propose(input: ProposalInput): Promise<Proposal>;
}

/**
 * The provider cannot answer now (429, 5xx, a timeout) after the quick retries a proposal
 * may spend: the engine tries the contact again after `retryAfterMs`, within its attempts.
 */
export class ProviderBusy extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = "ProviderBusy";
  }
}
