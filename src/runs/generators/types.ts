import type { LlmConfig } from "../../schemas/agents";
import type { ActionParams } from "../actions";
import type { ContactSnapshot, RunStep, SenderSnapshot } from "../spec";

export type ProposalInput = {
  step: RunStep;
  stepIndex: number;
  contact: ContactSnapshot;
  sender: SenderSnapshot | null;
  playbookMd: string;
  llm: LlmConfig;
};

export type Proposal = { params: ActionParams; reasoning: string };

/** Turns one playbook step for one contact into a proposed action. */
export interface ProposalGenerator {
  propose(input: ProposalInput): Promise<Proposal>;
}
