import { http, HttpResponse } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ACTION_PARAMS } from "../src/runs/actions";
import { ProposalError } from "../src/runs/generators/builtin";
import { BUSY_RETRY_MS } from "../src/runs/generators/http";
import type { InvalidAnswer } from "../src/runs/generators/llm";
import { openAiGenerator } from "../src/runs/generators/openai";
import { ProviderBusy } from "../src/runs/generators/types";
import { connect, contact, emailAnswer, input, PLAYBOOK, PROMPT_FACTS, sleepRecorder } from "./generator-fixtures";

// The real global fetch, intercepted by msw in the Workers pool: nothing leaves the test.
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const URL = "https://api.openai.com/v1/chat/completions";
type Seen = { url: string; headers: Headers; body: Record<string, any> };

/** Answers each call with the next response (the last one repeats) and records the requests. */
function openai(...responses: (() => Response)[]): Seen[] {
  const seen: Seen[] = [];
  server.use(
    http.post("*/chat/completions", async ({ request }) => {
      seen.push({ url: request.url, headers: request.headers, body: (await request.json()) as Record<string, any> });
      return responses[Math.min(seen.length, responses.length) - 1]!();
    }),
  );
  return seen;
}

const completion = (content: unknown, usage = { prompt_tokens: 812, completion_tokens: 95 }) => () =>
  HttpResponse.json({
    id: "chatcmpl-1",
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content: typeof content === "string" ? content : JSON.stringify(content), refusal: null }, finish_reason: "stop" }],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  });

const failure = (status: number, message: string, headers: Record<string, string> = {}) => () =>
  HttpResponse.json({ error: { message, type: "error", code: null } }, { status, headers });

const generator = (options: Partial<Parameters<typeof openAiGenerator>[0]> = {}) => {
  const recorder = sleepRecorder();
  return { ...recorder, gen: openAiGenerator({ apiKey: "sk-test", sleep: recorder.sleep, random: () => 0.5, ...options }) };
};

describe("openai generator: the request", () => {
  it("posts the prompt, the agent's model and settings and a strict json_schema to /chat/completions", async () => {
    const seen = openai(completion(emailAnswer));
    await generator().gen.propose(input());

    expect(seen).toHaveLength(1);
    const { url, headers, body } = seen[0]!;
    expect(url).toBe(URL);
    expect(headers.get("authorization")).toBe("Bearer sk-test");
    expect(headers.get("content-type")).toBe("application/json");
    expect(body.model).toBe("test-model");
    expect(body.temperature).toBe(0.4);
    expect(body.max_tokens).toBe(600);
    expect(body.response_format).toStrictEqual({
      type: "json_schema",
      json_schema: {
        name: "email_message",
        strict: true,
        schema: {
          type: "object",
          properties: {
            subject: { type: "string", description: expect.any(String) },
            body: { type: "string", description: expect.any(String) },
            reasoning: { type: "string", description: expect.any(String) },
          },
          required: ["subject", "body", "reasoning"],
          additionalProperties: false,
        },
      },
    });
    const [system, user] = body.messages;
    expect(body.messages).toHaveLength(2);
    expect(system.role).toBe("system");
    expect(system.content).toContain(PLAYBOOK);
    expect(system.content).toContain("Follow up on the first email and ask for a call.");
    expect(system.content).toContain("Re: {{company}} pricing");
    expect(system.content).toContain("Capabilities: email, linkedin");
    expect(user.role).toBe("user");
    for (const fact of PROMPT_FACTS) expect(user.content).toContain(fact);
  });

  it("uses the default model, leaves unset settings out and tolerates a trailing slash in the base URL", async () => {
    const seen = openai(completion(emailAnswer));
    const { gen } = generator({ baseUrl: "https://gateway.example/v1/openai/" });
    const proposal = await gen.propose(input({ llm: { provider: "openai" } }));

    expect(seen[0]!.url).toBe("https://gateway.example/v1/openai/chat/completions");
    expect(seen[0]!.body.model).toBe("gpt-4.1-mini");
    expect(seen[0]!.body).not.toHaveProperty("temperature");
    expect(seen[0]!.body).not.toHaveProperty("max_tokens");
    expect(proposal.generation?.model).toBe("gpt-4.1-mini");
  });
});

describe("openai generator: the proposal", () => {
  it("fills the recipient from the contact, validates the params and counts the generation", async () => {
    openai(completion({ ...emailAnswer, to: "someone-else@evil.example" }));
    const proposal = await generator().gen.propose(input());

    expect(proposal.params).toStrictEqual({ to: "ada@acme.example", subject: "Quick call about Acme's plan?", body: emailAnswer.body });
    expect(ACTION_PARAMS.email_message.safeParse(proposal.params).success).toBe(true);
    expect(proposal.reasoning).toBe(emailAnswer.reasoning);
    expect(proposal.generation).toStrictEqual({ provider: "openai", model: "test-model", input_tokens: 812, output_tokens: 95, latency_ms: expect.any(Number), attempts: 1 });
    expect(proposal.generation!.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it("takes a LinkedIn note's profile URL from the contact", async () => {
    const seen = openai(completion({ message: "Hi Ada, glad to connect.", reasoning: "Short note." }));
    const proposal = await generator().gen.propose(input({ step: connect, stepIndex: 0, history: [] }));
    expect(proposal.params).toStrictEqual({ profile_url: "https://www.linkedin.com/in/ada", message: "Hi Ada, glad to connect." });
    expect(seen[0]!.body.response_format.json_schema.schema.required).toStrictEqual(["message", "reasoning"]);
    expect(seen[0]!.body.messages[0].content).toContain("at most 300 characters");
  });

  it("refuses a LinkedIn step for a contact without linkedin_url before any call", async () => {
    const seen = openai(completion({ message: "x", reasoning: "y" }));
    const proposal = generator().gen.propose(input({ step: connect, contact: contact({ linkedin_url: null }) }));
    await expect(proposal).rejects.toThrow(ProposalError);
    await expect(proposal).rejects.toThrow("The contact has no linkedin_url");
    expect(seen).toHaveLength(0);
  });

  it("asks again once with the validation errors when the answer fails the schema, then takes the fixed answer", async () => {
    const long = { message: "x".repeat(301), reasoning: "Too long." };
    const seen = openai(completion(long, { prompt_tokens: 500, completion_tokens: 120 }), completion({ message: "Hi Ada, glad to connect.", reasoning: "Shorter." }, { prompt_tokens: 650, completion_tokens: 20 }));
    const proposal = await generator().gen.propose(input({ step: connect }));

    expect(seen).toHaveLength(2);
    const retry = seen[1]!.body.messages;
    expect(retry).toHaveLength(4);
    expect(retry[2]).toStrictEqual({ role: "assistant", content: JSON.stringify(long) });
    expect(retry[3].role).toBe("user");
    expect(retry[3].content).toContain("Your answer was not accepted: message:");
    expect(retry[3].content).toContain("300");
    expect(proposal.params.message).toBe("Hi Ada, glad to connect.");
    expect(proposal.generation).toMatchObject({ input_tokens: 1150, output_tokens: 140, attempts: 2 });
  });

  it("asks again when the answer is not JSON", async () => {
    const seen = openai(completion("Sure! Here is your email: ..."), completion(emailAnswer));
    const proposal = await generator().gen.propose(input());
    expect(seen[1]!.body.messages[3].content).toContain("The answer is not valid JSON");
    expect(proposal.params.subject).toBe("Quick call about Acme's plan?");
  });

  it("fails with a ProposalError saying why after two answers that fail the schema", async () => {
    const seen = openai(completion({ subject: " ", body: "Hi", reasoning: "r" }));
    const error = await generator().gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProposalError);
    expect((error as Error).message).toMatch(/^The model's answer was not a valid email_message after 2 tries: subject: /);
    // What the two calls cost travels with the error, for the run's usage.
    expect((error as InvalidAnswer).generation).toMatchObject({ provider: "openai", input_tokens: 1624, output_tokens: 190, attempts: 2 });
    expect(seen).toHaveLength(2);
  });

  it("lets the builtin generator make a CRM sync, without a call", async () => {
    const seen = openai(completion(emailAnswer));
    const proposal = await generator().gen.propose(input({ step: { id: "sync", action: "sync_to_crm", require_approval: true } }));
    expect(proposal.params).toMatchObject({ contact_id: "ct_1", fields: { email: "ada@acme.example" } });
    expect(proposal.generation).toBeUndefined();
    expect(seen).toHaveLength(0);
  });
});

describe("openai generator: a busy or failing provider", () => {
  it("waits what Retry-After asks, once, then takes the answer", async () => {
    const seen = openai(failure(429, "Rate limit reached for requests", { "retry-after": "1" }), completion(emailAnswer));
    const { gen, waits } = generator();
    const proposal = await gen.propose(input());
    expect(waits).toStrictEqual([1000]);
    expect(seen).toHaveLength(2);
    expect(proposal.generation?.attempts).toBe(2);
  });

  it("hands a long Retry-After back to the engine as ProviderBusy without sleeping", async () => {
    const seen = openai(failure(429, "Rate limit reached for tokens", { "retry-after": "120" }));
    const { gen, waits } = generator();
    const error = await gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderBusy);
    expect((error as ProviderBusy).retryAfterMs).toBe(120_000);
    expect((error as ProviderBusy).message).toContain("Rate limit reached for tokens");
    expect(waits).toStrictEqual([]);
    expect(seen).toHaveLength(1);
  });

  it("gives up with ProviderBusy after the bounded quick retries when every answer is a 500", async () => {
    const seen = openai(failure(500, "The server had an error while processing your request"));
    const { gen, waits } = generator();
    const error = await gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderBusy);
    expect((error as ProviderBusy).message).toBe("OpenAI answered 500: The server had an error while processing your request (after 3 attempts)");
    expect((error as ProviderBusy).retryAfterMs).toBe(BUSY_RETRY_MS);
    expect(seen).toHaveLength(3);
    // Full jitter at random() = 0.5: half of 500 ms, then half of 1 s.
    expect(waits).toStrictEqual([250, 500]);
  });

  it("retries a call that times out, then hands it to the engine", async () => {
    let calls = 0;
    const hanging: typeof fetch = (_url, init) =>
      new Promise((_, reject) => {
        calls++;
        init?.signal?.addEventListener("abort", () => reject(new DOMException("The operation was aborted", "AbortError")));
      });
    const { gen, waits } = generator({ fetch: hanging, timeoutMs: 5 });
    const error = await gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderBusy);
    expect((error as Error).message).toContain("OpenAI did not answer within 5 ms");
    expect(calls).toBe(3);
    expect(waits).toHaveLength(2);
  });

  it("fails at once with the provider's message on a 401, keys and account ids taken out of it", async () => {
    const seen = openai(failure(401, "Incorrect API key provided: sk-proj-abc123XYZ. Organization org-Abc123Def456 has no access."));
    const { gen, waits } = generator();
    const error = await gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProposalError);
    // The message reaches action.error, which any key of the workspace reads: no secret in it.
    expect((error as Error).message).toBe("OpenAI answered 401: Incorrect API key provided: [redacted key]. Organization [redacted id] has no access.");
    expect(seen).toHaveLength(1);
    expect(waits).toStrictEqual([]);
  });
});
