import type { Env } from "../../env";
import type { LlmConfig } from "../../schemas/agents";
import { anthropicGenerator } from "./anthropic";
import { builtinGenerator } from "./builtin";
import { openAiGenerator } from "./openai";
import { workersAiGenerator } from "./workers-ai";
import type { ProposalGenerator } from "./types";

type Provider = LlmConfig["provider"];

/** Each provider's generator, built from this deployment's secrets and bindings; undefined when it has none. */
const FACTORIES: Record<Provider, (env: Env) => ProposalGenerator | undefined> = {
  builtin: () => builtinGenerator,
  openai: (env) => (env.OPENAI_API_KEY ? openAiGenerator({ apiKey: env.OPENAI_API_KEY, baseUrl: env.OPENAI_BASE_URL }) : undefined),
  anthropic: (env) => (env.ANTHROPIC_API_KEY ? anthropicGenerator({ apiKey: env.ANTHROPIC_API_KEY, baseUrl: env.ANTHROPIC_BASE_URL }) : undefined),
  "workers-ai": (env) => (env.AI ? workersAiGenerator({ ai: env.AI }) : undefined),
};

/** The generator for a provider, or undefined while that provider is not configured here. */
export const generatorFor = (provider: Provider, env: Env) => FACTORIES[provider](env);

/** What the trigger's 409 and the agent's warning say of a provider this deployment has no secret or binding for. */
export const notConfigured = (provider: Provider) =>
  `LLM provider ${provider} is not configured in this deployment (see the README's configuration): use builtin, or configure it`;

/** Whether this deployment can propose with the provider: its secret or binding is set. */
export const providerConfigured = (provider: Provider, env: Env) => generatorFor(provider, env) !== undefined;
