import { describe, expect, it } from "vitest";
import { ACTION_PARAMS } from "../src/runs/actions";
import { ProposalError } from "../src/runs/generators/builtin";
import { outputSchema } from "../src/runs/generators/prompt";
import { ProviderBusy } from "../src/runs/generators/types";
import { workersAiGenerator, type AiRunner } from "../src/runs/generators/workers-ai";
import { connect, contact, emailAnswer, input, PLAYBOOK, PROMPT_FACTS, sleepRecorder } from "./generator-fixtures";

type Seen = { model: string; inputs: Record<string, any> };

/** A stub of the `AI` binding: each call gets the next outcome (the last one repeats); an Error is thrown. */
function stubAi(...outcomes: unknown[]) {
  const seen: Seen[] = [];
  const ai: AiRunner = {
    async run(model, inputs) {
      seen.push({ model, inputs });
      const outcome = outcomes[Math.min(seen.length, outcomes.length) - 1];
      if (outcome instanceof Error) throw outcome;
      if (outcome === "hang") return new Promise(() => {});
      return outcome;
    },
  };
  return { ai, seen };
}

function generator(stub: ReturnType<typeof stubAi>, timeoutMs?: number) {
  const recorder = sleepRecorder();
  return { ...recorder, gen: workersAiGenerator({ ai: stub.ai, sleep: recorder.sleep, random: () => 0.5, timeoutMs }) };
}

const answer = (response: unknown, usage: object | null = { prompt_tokens: 700, completion_tokens: 80, total_tokens: 780 }) => ({ response, ...(usage && { usage }) });
const llm = { provider: "workers-ai", model: "@cf/test/model", temperature: 0.2, max_tokens: 500 } as const;

describe("workers-ai generator", () => {
  it("runs the model on the binding with the prompt and a json_schema response format", async () => {
    const stub = stubAi(answer(emailAnswer));
    await generator(stub).gen.propose(input({ llm }));

    const { model, inputs } = stub.seen[0]!;
    expect(model).toBe("@cf/test/model");
    expect(inputs.response_format).toStrictEqual({ type: "json_schema", json_schema: outputSchema("email_message") });
    expect(inputs.max_tokens).toBe(500);
    expect(inputs.temperature).toBe(0.2);
    const [system, user] = inputs.messages;
    expect(system.role).toBe("system");
    expect(system.content).toContain(PLAYBOOK);
    expect(user.role).toBe("user");
    for (const fact of PROMPT_FACTS) expect(user.content).toContain(fact);
  });

  it("builds the proposal from a response object and counts the generation", async () => {
    const stub = stubAi(answer(emailAnswer));
    const proposal = await generator(stub).gen.propose(input({ llm }));
    expect(proposal.params).toStrictEqual({ to: "ada@acme.example", subject: "Quick call about Acme's plan?", body: emailAnswer.body });
    expect(ACTION_PARAMS.email_message.safeParse(proposal.params).success).toBe(true);
    expect(proposal.generation).toStrictEqual({ provider: "workers-ai", model: "@cf/test/model", input_tokens: 700, output_tokens: 80, latency_ms: expect.any(Number), attempts: 1 });
  });

  it("reads a response given as JSON text, or in the OpenAI shape, with the default model and no usage", async () => {
    const text = stubAi(answer(JSON.stringify(emailAnswer), null));
    const proposal = await generator(text).gen.propose(input({ llm: { provider: "workers-ai" } }));
    expect(text.seen[0]!.model).toBe("@cf/meta/llama-3.3-70b-instruct-fp8-fast");
    expect(text.seen[0]!.inputs).not.toHaveProperty("max_tokens");
    expect(text.seen[0]!.inputs).not.toHaveProperty("temperature");
    expect(proposal.params.subject).toBe("Quick call about Acme's plan?");
    expect(proposal.generation).toMatchObject({ model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast", input_tokens: 0, output_tokens: 0 });

    const chat = stubAi({ choices: [{ message: { role: "assistant", content: JSON.stringify(emailAnswer) } }], usage: { prompt_tokens: 5, completion_tokens: 6 } });
    expect((await generator(chat).gen.propose(input())).params.subject).toBe("Quick call about Acme's plan?");
  });

  it("corrects an answer that could not meet the JSON schema, then takes the next one", async () => {
    const stub = stubAi(new Error("AiError: JSON Mode couldn't be met"), answer(emailAnswer));
    const { gen, waits } = generator(stub);
    const proposal = await gen.propose(input());
    expect(stub.seen).toHaveLength(2);
    expect(waits).toStrictEqual([]);
    expect(stub.seen[1]!.inputs.messages.at(-1).content).toContain("could not meet the JSON schema");
    expect(proposal.generation?.attempts).toBe(2);
  });

  it("fails with a ProposalError after two answers that fail the schema", async () => {
    const stub = stubAi(answer({ subject: "Hi", reasoning: "no body" }));
    const error = await generator(stub).gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProposalError);
    expect((error as Error).message).toMatch(/not a valid email_message after 2 tries: body: /);
    expect(stub.seen).toHaveLength(2);
  });

  it("refuses a LinkedIn step for a contact without linkedin_url before any call", async () => {
    const stub = stubAi(answer({ message: "x", reasoning: "y" }));
    await expect(generator(stub).gen.propose(input({ step: connect, contact: contact({ linkedin_url: null }) }))).rejects.toThrow(ProposalError);
    expect(stub.seen).toHaveLength(0);
  });

  it("retries when Workers AI is out of capacity, then takes the answer", async () => {
    const capacity = new Error("3040: Capacity temporarily exceeded, please try again.");
    const stub = stubAi(capacity, capacity, answer(emailAnswer));
    const { gen, waits } = generator(stub);
    const proposal = await gen.propose(input());
    expect(waits).toStrictEqual([250, 500]);
    expect(proposal.generation?.attempts).toBe(3);
  });

  it("hands a binding that keeps failing back to the engine as ProviderBusy", async () => {
    const stub = stubAi(new Error("InferenceUpstreamError: upstream connect error"));
    const error = await generator(stub).gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderBusy);
    expect((error as Error).message).toBe("Workers AI failed: InferenceUpstreamError: upstream connect error (after 3 attempts)");
    expect(stub.seen).toHaveLength(3);
  });

  it("waits for the daily allocation to come back without sleeping", async () => {
    const stub = stubAi(new Error("3036: You have used up your daily free allocation of 10,000 neurons."));
    const { gen, waits } = generator(stub);
    const error = (await gen.propose(input()).catch((e: unknown) => e)) as ProviderBusy;
    expect(error).toBeInstanceOf(ProviderBusy);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(24 * 3600_000);
    expect(waits).toStrictEqual([]);
  });

  it("fails at once on a model that does not exist", async () => {
    const stub = stubAi(new Error("5007: No such model @cf/test/model or task"));
    const error = await generator(stub).gen.propose(input({ llm })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProposalError);
    expect((error as Error).message).toBe("Workers AI refused the request: 5007: No such model @cf/test/model or task");
    expect(stub.seen).toHaveLength(1);
  });

  it("times out a run that never answers, retries it, then hands it to the engine", async () => {
    const stub = stubAi("hang");
    const { gen, waits } = generator(stub, 5);
    const error = await gen.propose(input()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderBusy);
    expect((error as Error).message).toContain("Workers AI did not answer within 5 ms");
    expect(stub.seen).toHaveLength(3);
    expect(waits).toHaveLength(2);
  });
});
