import type { Capability, Monitoring, Playbook, PlaybookTemplate } from "../schemas/agents";

type TemplateDefaults = { playbook: Playbook; capabilities: Capability[]; monitoring: Monitoring };

const STOP_ON: Playbook["stop_on"] = ["reply", "unsubscribe", "bounce"];

/** What each `playbook_template` fills in; explicit create fields replace these whole. */
export const TEMPLATES: Record<PlaybookTemplate, TemplateDefaults> = {
  cold_outreach: {
    capabilities: ["email", "linkedin"],
    playbook: {
      playbook_md:
        "# Cold outreach\n\nIntroduce yourself by email, connect on LinkedIn two days later, and follow up by email three days after that. Stop as soon as the contact replies.",
      stop_on: STOP_ON,
      steps: [
        {
          id: "intro_email",
          action: "email_message",
          require_approval: true,
          template: {
            subject: "Quick question, {{first_name|there}}",
            body: "Hi {{first_name|there}},\n\nI work with teams like {{company|yours}} on outreach that people actually answer. Would a 15-minute call next week be useful?\n\nBest,\n{{sender.first_name}}",
          },
        },
        {
          id: "linkedin_connect",
          action: "linkedin_connection",
          wait: { days: 2 },
          require_approval: true,
          template: { message: "Hi {{first_name|there}}, I sent you a note about outreach at {{company|your company}}. Happy to connect here." },
        },
        {
          id: "follow_up_email",
          action: "email_message",
          wait: { days: 3 },
          require_approval: true,
          template: {
            subject: "Re: Quick question, {{first_name|there}}",
            body: "Hi {{first_name|there}},\n\nFollowing up on my note from last week. If outreach is not a priority at {{company|your company}} right now, just say so and I will not write again.\n\n{{sender.first_name}}",
          },
        },
      ],
    },
    monitoring: { filter: { lifecycle_stage: ["lead"], not_contacted_within_days: 30 }, timezone: "UTC", max_contacts_per_run: 50, cooldown_days: 30 },
  },
  pricing_visitor_followup: {
    capabilities: ["email"],
    playbook: {
      playbook_md:
        "# Pricing visitor follow-up\n\nThe contact viewed the pricing page at least twice this week. Send one short, personal email offering help with the decision; no pressure, no discount.",
      stop_on: STOP_ON,
      steps: [
        {
          id: "pricing_email",
          action: "email_message",
          require_approval: true,
          template: {
            subject: "Questions about pricing, {{first_name|there}}?",
            body: "Hi {{first_name|there}},\n\nI noticed you have been looking at our pricing. If it helps, I can walk you through which plan fits {{company|your team}} in ten minutes.\n\n{{sender.first_name}}",
          },
        },
      ],
    },
    monitoring: {
      filter: { event: { type: "page_view", url_contains: "/pricing", min_count: 2, within_days: 7 } },
      schedule_cron: "0 * * * *",
      timezone: "UTC",
      max_contacts_per_run: 50,
      cooldown_days: 30,
    },
  },
};
