import type { AgentConfig } from "../agents/agent-record";
import { transportProblem } from "../delivery/email-sender";
import type { Env } from "../env";
import { reachesPerson } from "./actions";
import { notConfigured, providerConfigured } from "./generators";
import { effectiveSteps, type RunStep } from "./spec";

export type Readiness = { ok: true; steps: RunStep[] } | { ok: false; code: string; message: string };

/**
 * Whether the agent can start a run at all, whatever its contacts: the same answer for a
 * manual trigger (a 409 with `code`) and for the scheduler (which logs and skips).
 */
export function readiness(config: AgentConfig, env: Env): Readiness {
  const steps = effectiveSteps(config);
  if (!steps) return { ok: false, code: "agent_not_runnable", message: "The agent has neither playbook steps nor capabilities" };
  if (!providerConfigured(config.llm_config.provider, env)) {
    return { ok: false, code: "provider_not_configured", message: notConfigured(config.llm_config.provider) };
  }
  const outbound = steps.find((step) => reachesPerson(step.action));
  if (outbound && !config.identity_id) {
    return { ok: false, code: "sender_required", message: `Step ${outbound.id} (${outbound.action}) reaches contacts: give the agent an identity_id to send as` };
  }
  const problem = steps.some((step) => step.action === "email_message") ? transportProblem(env) : null;
  if (problem) return { ok: false, code: "email_transport_not_configured", message: problem };
  return { ok: true, steps };
}
