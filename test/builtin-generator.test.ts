import { describe, expect, it } from "vitest";
import { ACTION_PARAMS } from "../src/runs/actions";
import { ProposalError, builtinGenerator, render } from "../src/runs/generators/builtin";
import type { ProposalInput } from "../src/runs/generators/types";
import type { RunStep, SenderSnapshot } from "../src/runs/spec";
import { contact, sender as baseSender } from "./generator-fixtures";

/** The shared fixtures' sender, with changes. */
const sender = (overrides: Partial<SenderSnapshot> = {}): SenderSnapshot => ({ ...baseSender, ...overrides });

const input = (step: Partial<RunStep> & Pick<RunStep, "action">, overrides: Partial<ProposalInput> = {}): ProposalInput => ({
  step: { id: "s1", require_approval: true, ...step } as RunStep,
  stepIndex: 0,
  contact: contact(),
  sender: sender(),
  playbookMd: "# Playbook",
  llm: { provider: "builtin" } as ProposalInput["llm"],
  capabilities: ["email"],
  history: [],
  ...overrides,
});

describe("render", () => {
  it("fills contact fields and sender fields", () => {
    const out = render("Hi {{first_name}} {{last_name}} of {{company}} ({{job_title}}, {{email}}) from {{sender.first_name}} {{sender.last_name}}", contact(), sender());
    expect(out.text).toBe("Hi Ada Lovelace of Acme (CTO, ada@acme.example) from Sam Sender");
    expect([...out.used].sort()).toStrictEqual(["company", "email", "first_name", "job_title", "last_name", "sender.first_name", "sender.last_name"]);
    expect(out.missing.size).toBe(0);
  });

  it("uses the fallback when the field is missing or blank, and reports it as missing", () => {
    const out = render("Hi {{first_name|there}}, how is {{ company | your team }}?", contact({ first_name: null, company: "  " }), sender());
    expect(out.text).toBe("Hi there, how is your team?");
    expect([...out.missing].sort()).toStrictEqual(["company", "first_name"]);
  });

  it("ignores the fallback when the field has a value", () => {
    expect(render("Hi {{first_name|there}}", contact(), null).text).toBe("Hi Ada");
  });

  it("renders a missing field without a fallback as nothing", () => {
    const out = render("[{{company}}] [{{sender.first_name}}] [{{no_such_field}}]", contact({ company: null }), null);
    expect(out.text).toBe("[] [] []");
    expect([...out.missing].sort()).toStrictEqual(["company", "no_such_field", "sender.first_name"]);
  });

  it("inserts values literally: no replacement patterns, no second pass over placeholders", () => {
    const out = render("Hi {{first_name}} at {{company}}", contact({ first_name: "$& {{email}}", company: "$1$$" }), null);
    expect(out.text).toBe("Hi $& {{email}} at $1$$");
  });

  it("leaves text without placeholders alone", () => {
    expect(render("Plain { text } with {single} braces", contact(), sender()).text).toBe("Plain { text } with {single} braces");
  });
});

describe("builtinGenerator", () => {
  it("gives the same proposal for the same input", async () => {
    const step = { action: "email_message", template: { subject: "Hi {{first_name}}", body: "About {{company|you}}" } } as const;
    const first = await builtinGenerator.propose(input(step));
    const second = await builtinGenerator.propose(input(step));
    expect(second).toStrictEqual(first);
  });

  it("renders an email step's template into to, subject and body, and says why", async () => {
    const proposal = await builtinGenerator.propose(
      input({ id: "intro", action: "email_message", template: { subject: "Hi {{first_name|there}}", body: "At {{company}}? {{sender.first_name}}" } }, { stepIndex: 2 }),
    );
    expect(proposal.params).toStrictEqual({ to: "ada@acme.example", subject: "Hi Ada", body: "At Acme? Sam" });
    expect(ACTION_PARAMS.email_message.safeParse(proposal.params).success).toBe(true);
    expect(proposal.reasoning).toContain("Step 3 (intro, email_message)");
    expect(proposal.reasoning).toContain("the step's template");
    expect(proposal.reasoning).toContain("first_name");
  });

  it("names the missing fields in its reasoning when it fell back", async () => {
    const proposal = await builtinGenerator.propose(
      input({ action: "email_message", template: { subject: "Hi {{first_name|there}}", body: "Hello" } }, { contact: contact({ first_name: null }) }),
    );
    expect(proposal.params.subject).toBe("Hi there");
    expect(proposal.reasoning).toMatch(/No value for first_name/);
  });

  it("uses the step's instructions as the body when there is no template", async () => {
    const proposal = await builtinGenerator.propose(input({ action: "email_message", instructions: "Ask {{first_name}} for a call." }));
    expect(proposal.params.body).toBe("Ask Ada for a call.");
    expect(proposal.reasoning).toContain("the step's instructions");
  });

  it("falls back to default email text that still greets the contact and signs with the sender", async () => {
    const proposal = await builtinGenerator.propose(input({ action: "email_message" }, { contact: contact({ first_name: null }) }));
    expect(ACTION_PARAMS.email_message.safeParse(proposal.params).success).toBe(true);
    expect(proposal.params.body).toMatch(/^Hi there,/);
    expect(proposal.params.body).toMatch(/Sam$/);
  });

  it("proposes LinkedIn actions for the contact's profile", async () => {
    for (const action of ["linkedin_connection", "linkedin_message"] as const) {
      const proposal = await builtinGenerator.propose(input({ action, template: { message: "Hi {{first_name}}" } }));
      expect(proposal.params).toStrictEqual({ profile_url: "https://www.linkedin.com/in/ada", message: "Hi Ada" });
      expect(ACTION_PARAMS[action].safeParse(proposal.params).success).toBe(true);
    }
  });

  it("refuses a LinkedIn step for a contact without linkedin_url", async () => {
    const proposing = builtinGenerator.propose(input({ action: "linkedin_connection" }, { contact: contact({ linkedin_url: null }) }));
    await expect(proposing).rejects.toBeInstanceOf(ProposalError);
    await expect(proposing).rejects.toThrow(/linkedin_url/);
  });

  it("proposes a note, a task and a CRM sync in their own shapes", async () => {
    const note = await builtinGenerator.propose(input({ action: "create_note", template: { note: "Talked to {{first_name}}" } }));
    expect(note.params).toStrictEqual({ note: "Talked to Ada" });

    const task = await builtinGenerator.propose(input({ action: "create_task" }));
    expect(task.params).toStrictEqual({ title: "Follow up with Ada Lovelace", message: "Follow up with Ada at Acme." });

    const sync = await builtinGenerator.propose(input({ action: "sync_to_crm" }));
    expect(sync.params).toStrictEqual({
      contact_id: "ct_1",
      fields: { email: "ada@acme.example", first_name: "Ada", last_name: "Lovelace", company: "Acme", job_title: "CTO", lifecycle_stage: "lead", linkedin_url: "https://www.linkedin.com/in/ada" },
    });

    expect(ACTION_PARAMS.create_note.safeParse(note.params).success).toBe(true);
    expect(ACTION_PARAMS.create_task.safeParse(task.params).success).toBe(true);
    expect(ACTION_PARAMS.sync_to_crm.safeParse(sync.params).success).toBe(true);
  });

  it("titles a task by email when the contact has no name", async () => {
    const task = await builtinGenerator.propose(input({ action: "create_task" }, { contact: contact({ first_name: null, last_name: null, company: null }) }));
    expect(task.params).toStrictEqual({ title: "Follow up with ada@acme.example", message: "Follow up with the contact at their company." });
  });
});
