import type { agents } from "../db/schema";
import { validationError, type ErrorDetail } from "../lib/errors";
import { iso } from "../lib/time";
import {
  ACTION_CAPABILITY,
  LlmConfig,
  Monitoring,
  type AgentJson,
  type Capability,
  type CreateAgentBody,
  type Playbook,
  type PlaybookTemplate,
  type UpdateAgentBody,
} from "../schemas/agents";
import { TEMPLATES } from "./templates";

export type AgentRow = typeof agents.$inferSelect;

/** The fields an agent is made of once defaults are filled: what is stored and echoed. */
export type AgentConfig = {
  name: string;
  description: string | null;
  playbook_template: PlaybookTemplate | null;
  playbook: Playbook | null;
  capabilities: Capability[];
  identity_id: string | null;
  monitoring: Monitoring;
  llm_config: LlmConfig;
  enabled: boolean;
};

/** A create body with its template's defaults under it and the API's defaults filled in. */
export function configFromCreate(body: CreateAgentBody): AgentConfig {
  const template = body.playbook_template ? TEMPLATES[body.playbook_template] : undefined;
  return checked({
    name: body.name,
    description: body.description ?? null,
    playbook_template: body.playbook_template ?? null,
    playbook: withStepIds(body.playbook ?? template?.playbook ?? null),
    capabilities: body.capabilities ?? template?.capabilities ?? [],
    identity_id: body.identity_id ?? null,
    monitoring: body.monitoring ?? template?.monitoring ?? Monitoring.parse({}),
    llm_config: body.llm_config ?? LlmConfig.parse({}),
    enabled: body.enabled ?? false,
  });
}

/**
 * PATCH: top-level fields replace the stored ones, nested objects whole. Setting a new
 * `playbook_template` fills its defaults for the fields the same request does not send.
 */
export function configFromPatch(current: AgentConfig, patch: UpdateAgentBody): AgentConfig {
  const template =
    patch.playbook_template && patch.playbook_template !== current.playbook_template
      ? TEMPLATES[patch.playbook_template]
      : undefined;
  const next: AgentConfig = { ...current, ...(template ?? {}) };
  for (const [field, value] of Object.entries(patch)) {
    (next as Record<string, unknown>)[field] = value;
  }
  // Fill the defaults a nested object gets on create.
  next.description ??= null;
  next.playbook_template ??= null;
  next.identity_id ??= null;
  next.playbook = withStepIds(next.playbook ?? null);
  next.capabilities ??= [];
  next.monitoring ??= Monitoring.parse({});
  next.llm_config ??= LlmConfig.parse({});
  return checked(next);
}

function withStepIds(playbook: Playbook | null): Playbook | null {
  if (!playbook?.steps) return playbook;
  return { ...playbook, steps: playbook.steps.map((step, i) => ({ ...step, id: step.id ?? `step_${i + 1}` })) };
}

/** Rules that span fields: every step's action needs its capability; step ids are unique. */
function checked(config: AgentConfig): AgentConfig {
  const details: ErrorDetail[] = [];
  const seen = new Set<string>();
  config.playbook?.steps?.forEach((step, i) => {
    const needs = ACTION_CAPABILITY[step.action];
    if (!config.capabilities.includes(needs)) {
      details.push({ path: `playbook.steps.${i}.action`, message: `${step.action} needs the ${needs} capability, which the agent lacks` });
    }
    if (seen.has(step.id!)) details.push({ path: `playbook.steps.${i}.id`, message: `Step id ${step.id} is used twice` });
    seen.add(step.id!);
  });
  if (details.length > 0) throw validationError("Agent configuration is inconsistent", details);
  return config;
}

export function configFromRow(row: AgentRow): AgentConfig {
  return {
    name: row.name,
    description: row.description,
    playbook_template: row.playbookTemplate as PlaybookTemplate | null,
    playbook: row.playbook as Playbook | null,
    capabilities: row.capabilities as Capability[],
    identity_id: row.identityId,
    monitoring: row.monitoring as Monitoring,
    llm_config: row.llmConfig as LlmConfig,
    enabled: row.enabled,
  };
}

export function configColumns(config: AgentConfig) {
  return {
    name: config.name,
    description: config.description,
    playbookTemplate: config.playbook_template,
    playbook: config.playbook,
    capabilities: config.capabilities,
    identityId: config.identity_id,
    monitoring: config.monitoring,
    llmConfig: config.llm_config,
    enabled: config.enabled,
  };
}

export function toAgentJson(row: AgentRow): AgentJson {
  return {
    id: row.id,
    ...configFromRow(row),
    created_at: iso(row.createdAt)!,
    updated_at: iso(row.updatedAt)!,
    last_run_at: iso(row.lastRunAt),
  };
}
