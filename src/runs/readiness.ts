import type { AgentConfig } from "../agents/agent-record";
import type { ActionType } from "../schemas/agents";
import type { Env } from "../env";
import { providerConfigured } from "./generators";
import { effectiveSteps, type RunStep } from "./spec";

/** Actions that reach a person, and so need a sender identity. */
const OUTBOUND: ReadonlySet<ActionType> = new Set(["email_message", "linkedin_connection", "linkedin_message"]);

export type Readiness = { ok: true; steps: RunStep[] } | { ok: false; code: string; message: string };

/**
 * Whether the agent can start a run at all, whatever its contacts: the same answer for a
 * manual trigger (a 409 with `code`) and for the scheduler (which logs and skips).
 */
export function readiness(config: AgentConfig, env: Env): Readiness {
  const steps = effectiveSteps(config);
  if (!steps) return { ok: false, code: "agent_not_runnable", message: "The agent has neither playbook steps nor capabilities" };
  if (!providerConfigured(config.llm_config.provider, env)) {
    const message = `LLM provider ${config.llm_config.provider} is not configured in this deployment (see the README's configuration); use builtin or configure it`;
    return { ok: false, code: "provider_not_configured", message };
  }
  const outbound = steps.find((step) => OUTBOUND.has(step.action));
  if (outbound && !config.identity_id) {
    return { ok: false, code: "sender_required", message: `Step ${outbound.id} (${outbound.action}) reaches contacts: give the agent an identity_id to send as` };
  }
  return { ok: true, steps };
}
