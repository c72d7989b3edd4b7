import { describe, expect, it } from "vitest";
import { outputSchema, systemPrompt, userPrompt, type WrittenAction } from "../src/runs/generators/prompt";
import type { PriorAction } from "../src/runs/generators/types";
import { connect, input, sentEmail } from "./generator-fixtures";

const WRITTEN: Record<WrittenAction, string[]> = {
  email_message: ["subject", "body"],
  linkedin_connection: ["message"],
  linkedin_message: ["message"],
  create_note: ["note"],
  create_task: ["title", "message"],
};

describe("outputSchema", () => {
  it.each(Object.entries(WRITTEN))("asks %s for its text fields and reasoning only, all required, nothing else", (type, fields) => {
    const schema = outputSchema(type as WrittenAction);
    expect(schema.type).toBe("object");
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toStrictEqual([...fields, "reasoning"]);
    expect(schema.required).toStrictEqual([...fields, "reasoning"]);
    for (const property of Object.values(schema.properties)) expect(property).toStrictEqual({ type: "string", description: expect.any(String) });
  });
});

describe("the prompts", () => {
  it("are the same text for the same input", () => {
    expect(systemPrompt(input(), "email_message")).toBe(systemPrompt(input(), "email_message"));
    expect(userPrompt(input())).toBe(userPrompt(input()));
  });

  it("give the LinkedIn note's 300-character limit", () => {
    expect(systemPrompt(input({ step: connect }), "linkedin_connection")).toContain("at most 300 characters");
  });

  it("say where each earlier action stands, and leave the recipient out", () => {
    const history: PriorAction[] = [
      sentEmail,
      { step_id: "connect", type: "linkedin_connection", status: "rejected", params: { profile_url: "https://www.linkedin.com/in/ada", message: "Rejected note" }, edited: false, executed_at: null },
      { step_id: "bump", type: "email_message", status: "pending_approval", params: { to: "ada@acme.example", subject: "Waiting", body: "Pending body" }, edited: false, executed_at: null },
    ];
    const prompt = userPrompt(input({ history }));
    expect(prompt).toContain("1. Step intro (email_message): sent at 2026-10-02T10:00:00.000Z. The human edited it");
    expect(prompt).toContain("2. Step connect (linkedin_connection): rejected by the human; not sent, do not repeat it.\n   message: Rejected note");
    expect(prompt).toContain("3. Step bump (email_message): proposed, waiting for the human's approval; not sent.\n   subject: Waiting");
    expect(prompt).not.toContain("to: ada@acme.example");
    expect(prompt).not.toContain("profile_url:");
  });

  it("say plainly when there is no context, no sender and no history", () => {
    const prompt = userPrompt(input({ context: undefined, sender: null, history: [] }));
    expect(prompt).toContain("## Contact properties\n(none)");
    expect(prompt).toContain("## Recent events, newest first\n(none)");
    expect(prompt).toContain("No sending identity");
    expect(prompt).toContain("Nothing yet: this is the first action for this contact.");
  });
});
