import type { Env } from "../../env";
import type { LlmConfig } from "../../schemas/agents";
import { builtinGenerator } from "./builtin";
import type { ProposalGenerator } from "./types";

type Provider = LlmConfig["provider"];

/** Each provider's generator, built from this deployment's secrets and bindings; undefined when it has none. */
const FACTORIES: Record<Provider, (env: Env) => ProposalGenerator | undefined> = {
  builtin: () => builtinGenerator,
  openai: () => undefined,
  anthropic: () => undefined,
  "workers-ai": () => undefined,
};

/** The generator for a provider, or undefined while that provider is not configured here. */
export const generatorFor = (provider: Provider, env: Env) => FACTORIES[provider](env);

/** Whether this deployment can propose with the provider: its secret or binding is set. */
export const providerConfigured = (provider: Provider, env: Env) => generatorFor(provider, env) !== undefined;
