import { describe, expect, it } from "vitest";
import { ACTION_PARAMS } from "../src/runs/actions";
import { anthropicGenerator } from "../src/runs/generators/anthropic";
import { ProposalError } from "../src/runs/generators/builtin";
import { ProviderBusy } from "../src/runs/generators/types";
import { connect, contact, emailAnswer, input, PLAYBOOK, PROMPT_FACTS, sleepRecorder } from "./generator-fixtures";

type Seen = { url: string; headers: Headers; body: Record<string, any> };

/** An injected fetch that answers each call with the next response (the last one repeats). */
function messagesApi(...responses: (() => Response)[]) {
  const seen: Seen[] = [];
  const fetch: typeof globalThis.fetch = async (url, init) => {
    seen.push({ url: String(url), headers: new Headers(init?.headers), body: JSON.parse(String(init?.body)) });
    return responses[Math.min(seen.length, responses.length) - 1]!();
  };
  return { seen, fetch };
}

const toolUse = (input: unknown, usage = { input_tokens: 900, output_tokens: 110 }, id = "toolu_1") => () =>
  Response.json({
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: "claude-haiku-4-5",
    content: [{ type: "tool_use", id, name: "email_message", input }],
    stop_reason: "tool_use",
    usage,
  });

const textOnly = () => Response.json({ type: "message", role: "assistant", content: [{ type: "text", text: "Here is an email." }], stop_reason: "end_turn", usage: { input_tokens: 10, output_tokens: 5 } });

const failure = (status: number, type: string, message: string, headers: Record<string, string> = {}) => () =>
  Response.json({ type: "error", error: { type, message } }, { status, headers });

function generator(api: ReturnType<typeof messagesApi>, baseUrl?: string) {
  const recorder = sleepRecorder();
  return { ...recorder, gen: anthropicGenerator({ apiKey: "sk-ant-test", baseUrl, fetch: api.fetch, sleep: recorder.sleep, random: () => 0.5 }) };
}

describe("anthropic generator", () => {
  it("posts the prompt with one forced tool whose input schema is the action's params", async () => {
    const api = messagesApi(toolUse(emailAnswer));
    await generator(api).gen.propose(input({ llm: { provider: "anthropic", model: "claude-test", temperature: 0.3, max_tokens: 700 } }));

    const { url, headers, body } = api.seen[0]!;
    expect(url).toBe("https://api.anthropic.com/v1/messages");
    expect(headers.get("x-api-key")).toBe("sk-ant-test");
    expect(headers.get("anthropic-version")).toBe("2023-06-01");
    expect(body.model).toBe("claude-test");
    expect(body.max_tokens).toBe(700);
    expect(body.temperature).toBe(0.3);
    expect(body.tools).toStrictEqual([
      {
        name: "email_message",
        description: expect.any(String),
        input_schema: {
          type: "object",
          properties: { subject: expect.any(Object), body: expect.any(Object), reasoning: expect.any(Object) },
          required: ["subject", "body", "reasoning"],
          additionalProperties: false,
        },
      },
    ]);
    expect(body.tool_choice).toStrictEqual({ type: "tool", name: "email_message" });
    expect(body.system).toContain(PLAYBOOK);
    expect(body.messages).toHaveLength(1);
    expect(body.messages[0].role).toBe("user");
    for (const fact of PROMPT_FACTS) expect(body.messages[0].content).toContain(fact);
  });

  it("sends max_tokens 1024 and the default model when the agent sets neither, and no temperature", async () => {
    const api = messagesApi(toolUse(emailAnswer));
    await generator(api, "https://gateway.example/anthropic/").gen.propose(input({ llm: { provider: "anthropic" } }));
    const { url, body } = api.seen[0]!;
    expect(url).toBe("https://gateway.example/anthropic/v1/messages");
    expect(body.max_tokens).toBe(1024);
    expect(body.model).toBe("claude-haiku-4-5");
    expect(body).not.toHaveProperty("temperature");
  });

  it("builds the proposal from the tool call's input, the recipient from the contact", async () => {
    const api = messagesApi(toolUse(emailAnswer));
    const proposal = await generator(api).gen.propose(input({ llm: { provider: "anthropic", model: "claude-test" } }));
    expect(proposal.params).toStrictEqual({ to: "ada@acme.example", subject: "Quick call about Acme's plan?", body: emailAnswer.body });
    expect(ACTION_PARAMS.email_message.safeParse(proposal.params).success).toBe(true);
    expect(proposal.reasoning).toBe(emailAnswer.reasoning);
    expect(proposal.generation).toStrictEqual({ provider: "anthropic", model: "claude-test", input_tokens: 900, output_tokens: 110, latency_ms: expect.any(Number), attempts: 1 });
  });

  it("answers an invalid tool call with an error tool_result and takes the corrected call", async () => {
    const bad = { subject: "", body: "Hi Ada", reasoning: "r" };
    const api = messagesApi(toolUse(bad), toolUse(emailAnswer, { input_tokens: 1000, output_tokens: 90 }, "toolu_2"));
    const proposal = await generator(api).gen.propose(input());

    expect(api.seen).toHaveLength(2);
    const [, assistant, correction] = api.seen[1]!.body.messages;
    expect(assistant).toStrictEqual({ role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "email_message", input: bad }] });
    expect(correction.role).toBe("user");
    expect(correction.content).toStrictEqual([{ type: "tool_result", tool_use_id: "toolu_1", is_error: true, content: expect.stringContaining("subject: ") }]);
    expect(proposal.params.subject).toBe("Quick call about Acme's plan?");
    expect(proposal.generation).toMatchObject({ input_tokens: 1900, output_tokens: 200, attempts: 2 });
  });

  it("fails with a ProposalError when the model twice answers without the tool", async () => {
    const api = messagesApi(textOnly);
    const error = await generator(api).gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProposalError);
    expect((error as Error).message).toBe("The model's answer was not a valid email_message after 2 tries: The answer did not call the email_message tool");
    expect(api.seen).toHaveLength(2);
    expect(api.seen[1]!.body.messages[2]).toMatchObject({ role: "user", content: expect.stringContaining("did not call the email_message tool") });
  });

  it("refuses a LinkedIn step for a contact without linkedin_url before any call", async () => {
    const api = messagesApi(toolUse(emailAnswer));
    await expect(generator(api).gen.propose(input({ step: connect, contact: contact({ linkedin_url: null }) }))).rejects.toThrow("The contact has no linkedin_url");
    expect(api.seen).toHaveLength(0);
  });

  it("retries a 429 after its Retry-After", async () => {
    const api = messagesApi(failure(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", { "retry-after": "1" }), toolUse(emailAnswer));
    const { gen, waits } = generator(api);
    const proposal = await gen.propose(input());
    expect(waits).toStrictEqual([1000]);
    expect(proposal.generation?.attempts).toBe(2);
  });

  it("hands an API that stays overloaded (529) back to the engine as ProviderBusy", async () => {
    const api = messagesApi(failure(529, "overloaded_error", "Overloaded"));
    const { gen, waits } = generator(api);
    const error = await gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderBusy);
    expect((error as Error).message).toBe("Anthropic answered 529: Overloaded (after 3 attempts)");
    expect(api.seen).toHaveLength(3);
    expect(waits).toHaveLength(2);
  });

  it("fails at once with the provider's message on a 401", async () => {
    const api = messagesApi(failure(401, "authentication_error", "invalid x-api-key"));
    const error = await generator(api).gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProposalError);
    expect((error as Error).message).toBe("Anthropic answered 401: invalid x-api-key");
    expect(api.seen).toHaveLength(1);
  });
});
