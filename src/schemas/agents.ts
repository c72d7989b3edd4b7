import { z } from "zod";
import { BooleanQuery, CronExpression, LifecycleStage, ListMeta, Pagination, Timestamp, TimeZone } from "./common";
import { PropertyName } from "./contacts";

export const CAPABILITIES = ["email", "linkedin", "notes", "crm_sync", "tasks"] as const;
export const Capability = z.enum(CAPABILITIES);
export type Capability = z.infer<typeof Capability>;

/** The capability each action type needs (CONTRACT.md section 3). */
export const ACTION_CAPABILITY = {
  email_message: "email",
  linkedin_connection: "linkedin",
  linkedin_message: "linkedin",
  create_note: "notes",
  sync_to_crm: "crm_sync",
  create_task: "tasks",
} as const satisfies Record<string, Capability>;
export type ActionType = keyof typeof ACTION_CAPABILITY;
export const ActionType = z.enum(Object.keys(ACTION_CAPABILITY) as [ActionType, ...ActionType[]]);

export const PLAYBOOK_TEMPLATES = ["cold_outreach", "pricing_visitor_followup"] as const;
export const PlaybookTemplate = z.enum(PLAYBOOK_TEMPLATES);
export type PlaybookTemplate = z.infer<typeof PlaybookTemplate>;

export const STOP_CONDITIONS = ["reply", "unsubscribe", "bounce"] as const;

const text = (max: number) => z.string().max(max);

export const Wait = z
  .strictObject({
    days: z.int().min(0).max(365).optional(),
    hours: z.int().min(0).max(24 * 365).optional(),
    minutes: z.int().min(0).max(60 * 24 * 365).optional(),
  })
  .meta({ description: "Delay before the step runs, counted from the previous step" });

const stepFields = {
  id: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "Use 1-64 letters, digits, '-' or '_'")
    .optional()
    .meta({ description: "Defaults to step_<n>" }),
  wait: Wait.optional(),
  require_approval: z.boolean().default(true),
  instructions: text(4000).optional().meta({ description: "What an LLM generator is asked to do for this step" }),
};

/** Each action type accepts the template fields its builtin generator renders. */
export const Step = z.discriminatedUnion("action", [
  z.strictObject({
    ...stepFields,
    action: z.literal("email_message"),
    template: z.strictObject({ subject: text(998).optional(), body: text(20000).optional() }).optional(),
  }),
  z.strictObject({
    ...stepFields,
    action: z.enum(["linkedin_connection", "linkedin_message", "create_task"]),
    template: z.strictObject({ message: text(8000).optional() }).optional(),
  }),
  z.strictObject({
    ...stepFields,
    action: z.literal("create_note"),
    template: z.strictObject({ note: text(20000).optional() }).optional(),
  }),
  z.strictObject({ ...stepFields, action: z.literal("sync_to_crm") }),
]);
export type Step = z.infer<typeof Step>;

export const Playbook = z
  .strictObject({
    playbook_md: text(20000),
    steps: z.array(Step).min(1).max(20).optional(),
    stop_on: z.array(z.enum(STOP_CONDITIONS)).default([...STOP_CONDITIONS]),
  })
  .meta({ id: "Playbook" });
export type Playbook = z.infer<typeof Playbook>;

export const MonitoringFilter = z
  .strictObject({
    lifecycle_stage: z
      .array(LifecycleStage)
      .min(1)
      .refine((stages) => new Set(stages).size === stages.length, "Stages must not repeat")
      .optional(),
    // Names as contact properties allow them; anything else could not match and breaks the JSON path.
    // At most 20, so the filter's SQL stays within D1's 100 bound parameters.
    properties: z
      .record(PropertyName, z.union([z.string(), z.number(), z.boolean()]))
      .refine((p) => Object.keys(p).length <= 20, "At most 20 properties")
      .optional(),
    event: z
      .strictObject({
        type: z.string().min(1).max(100),
        url_contains: z.string().min(1).max(2000).optional(),
        min_count: z.int().min(1).max(10000).default(1),
        within_days: z.int().min(1).max(365).optional(),
      })
      .optional(),
    not_contacted_within_days: z.int().min(1).max(365).optional(),
  })
  .meta({ id: "MonitoringFilter", description: "Selects contacts; members combine with AND" });
export type MonitoringFilter = z.infer<typeof MonitoringFilter>;

export const Monitoring = z
  .strictObject({
    filter: MonitoringFilter.optional(),
    schedule_cron: CronExpression.optional(),
    timezone: TimeZone.default("UTC"),
    max_contacts_per_run: z.int().min(1).max(1000).default(50),
    cooldown_days: z
      .int()
      .min(0)
      .max(365)
      .default(30)
      .meta({ description: "Days after which a contact this agent reached may be targeted by default again, and one who replied to its runs at all; 0 turns both off" }),
  })
  .meta({ id: "Monitoring" });
export type Monitoring = z.infer<typeof Monitoring>;

export const LlmConfig = z
  .strictObject({
    provider: z.enum(["builtin", "openai", "anthropic", "workers-ai"]).default("builtin"),
    model: z.string().min(1).max(200).optional(),
    temperature: z.number().min(0).max(2).optional(),
    max_tokens: z.int().min(1).max(8192).optional(),
  })
  .meta({ id: "LlmConfig" });
export type LlmConfig = z.infer<typeof LlmConfig>;

const agentFields = {
  name: z.string().trim().min(1).max(200),
  description: text(2000).nullable(),
  playbook_template: PlaybookTemplate.nullable(),
  playbook: Playbook.nullable(),
  capabilities: z
    .array(Capability)
    .refine((list) => new Set(list).size === list.length, "Capabilities must not repeat"),
  identity_id: z.string().regex(/^id_[0-9A-Za-z]{1,60}$/, "Must be an identity id (id_...)").nullable(),
  monitoring: Monitoring,
  llm_config: LlmConfig,
  enabled: z.boolean(),
};

export const CreateAgentBody = z
  .strictObject({
    ...agentFields,
    description: agentFields.description.optional(),
    playbook_template: agentFields.playbook_template.optional(),
    playbook: agentFields.playbook.optional(),
    capabilities: agentFields.capabilities.optional(),
    identity_id: agentFields.identity_id.optional(),
    monitoring: agentFields.monitoring.optional(),
    llm_config: agentFields.llm_config.optional(),
    enabled: agentFields.enabled.optional(),
  })
  .meta({ id: "CreateAgent" });
export type CreateAgentBody = z.infer<typeof CreateAgentBody>;

export const UpdateAgentBody = CreateAgentBody.partial()
  .refine((body) => Object.keys(body).length > 0, "Send at least one field to update")
  .meta({ id: "UpdateAgent", description: "Top-level fields merge; playbook, monitoring and llm_config are replaced whole" });
export type UpdateAgentBody = z.infer<typeof UpdateAgentBody>;

export const ListAgentsQuery = Pagination.extend({
  enabled: BooleanQuery.optional(),
  playbook_template: PlaybookTemplate.optional(),
});

export const Agent = z
  .object({
    id: z.string(),
    ...agentFields,
    playbook: Playbook.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
    last_run_at: Timestamp.nullable(),
  })
  .meta({ id: "Agent" });
export type AgentJson = z.output<typeof Agent>;

export const AgentEnvelope = z.object({
  status: z.literal("success"),
  agent: Agent,
  warnings: z
    .array(z.object({ code: z.string(), message: z.string() }))
    .optional()
    .meta({ description: "On create and update: what the agent cannot do in this deployment, such as an LLM provider that is not configured" }),
});
export const AgentList = z.object({ status: z.literal("success"), agents: z.array(Agent), ...ListMeta });
