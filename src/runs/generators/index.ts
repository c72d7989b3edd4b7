import type { LlmConfig } from "../../schemas/agents";
import { builtinGenerator } from "./builtin";
import type { ProposalGenerator } from "./types";

const GENERATORS: Partial<Record<LlmConfig["provider"], ProposalGenerator>> = {
  builtin: builtinGenerator,
};

/** The generator for a provider, or undefined while that provider is not available here. */
export const generatorFor = (provider: LlmConfig["provider"]) => GENERATORS[provider];
