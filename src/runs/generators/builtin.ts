import type { ActionParams } from "../actions";
import type { ContactSnapshot, SenderSnapshot } from "../spec";
import type { Proposal, ProposalGenerator, ProposalInput } from "./types";

/** A step the generator cannot turn into an action for this contact (say, no LinkedIn URL). */
export class ProposalError extends Error {}

type Rendered = { text: string; used: Set<string>; missing: Set<string> };

/**
 * Fills `{{first_name}}`, `{{sender.first_name}}` and `{{name|fallback}}` placeholders from
 * the contact and the sending identity. A field without a value renders its fallback, or
 * nothing, and is reported as missing.
 */
export function render(template: string, contact: ContactSnapshot, sender: SenderSnapshot | null, into?: Rendered): Rendered {
  const out = into ?? { text: "", used: new Set<string>(), missing: new Set<string>() };
  out.text = template.replace(/\{\{\s*([a-z_.]+)\s*(?:\|([^}]*))?\}\}/g, (_, name: string, fallback?: string) => {
    const value = lookup(name, contact, sender);
    if (value) {
      out.used.add(name);
      return value;
    }
    out.missing.add(name);
    return fallback?.trim() ?? "";
  });
  return out;
}

function lookup(name: string, contact: ContactSnapshot, sender: SenderSnapshot | null): string | null {
  const [scope, field] = name.startsWith("sender.") ? [sender as Record<string, unknown> | null, name.slice(7)] : [contact as Record<string, unknown>, name];
  const value = scope?.[field];
  return typeof value === "string" && value.trim() ? value : null;
}

const fullName = (c: ContactSnapshot) => [c.first_name, c.last_name].filter(Boolean).join(" ") || c.email;

/**
 * The deterministic generator: no network, the same proposal for the same input. It
 * renders the step's template, or failing that its instructions, or a plain default.
 */
export const builtinGenerator: ProposalGenerator = {
  async propose({ step, stepIndex, contact, sender }: ProposalInput): Promise<Proposal> {
    const acc: Rendered = { text: "", used: new Set(), missing: new Set() };
    const fill = (template: string) => render(template, contact, sender, acc).text;
    const template = ("template" in step ? step.template : undefined) as Record<string, string | undefined> | undefined;
    const source = template ? "the step's template" : step.instructions ? "the step's instructions" : "the default text for this action";
    const instructions = step.instructions;

    let params: ActionParams;
    switch (step.action) {
      case "email_message":
        params = {
          to: contact.email,
          subject: fill(template?.subject ?? "A quick note for {{first_name|you}}"),
          body: fill(template?.body ?? instructions ?? "Hi {{first_name|there}},\n\nI wanted to reach out personally.\n\n{{sender.first_name}}"),
        };
        break;
      case "linkedin_connection":
      case "linkedin_message":
        if (!contact.linkedin_url) throw new ProposalError("The contact has no linkedin_url");
        params = {
          profile_url: contact.linkedin_url,
          message: fill(template?.message ?? instructions ?? "Hi {{first_name|there}}, I would be glad to connect."),
        };
        break;
      case "create_note":
        params = { note: fill(template?.note ?? instructions ?? `Playbook step ${step.id} reached for {{email}}.`) };
        break;
      case "create_task":
        params = {
          title: `Follow up with ${fullName(contact)}`.slice(0, 200),
          message: fill(template?.message ?? instructions ?? "Follow up with {{first_name|the contact}} at {{company|their company}}."),
        };
        break;
      case "sync_to_crm": {
        const { id, unsubscribed: _u, ...fields } = contact;
        params = { contact_id: id, fields };
        break;
      }
    }

    const parts = [`Step ${stepIndex + 1} (${step.id}, ${step.action}) for ${fullName(contact)}: rendered ${source}.`];
    if (acc.used.size) parts.push(`Filled ${[...acc.used].join(", ")}.`);
    if (acc.missing.size) parts.push(`No value for ${[...acc.missing].join(", ")}; used the fallback or left it blank.`);
    return { params, reasoning: parts.join(" ") };
  },
};
