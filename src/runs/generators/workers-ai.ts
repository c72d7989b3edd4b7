import { ProposalError } from "./builtin";
import { DEFAULT_TIMEOUT_MS, RetryableError, withRetries, type CallOptions } from "./http";
import { modelGenerator } from "./llm";
import type { ProposalGenerator } from "./types";
import { messageOf } from "../../lib/errors";

/** On Workers AI's JSON-mode list, instruction-tuned, and the fast variant of the largest Llama there. */
export const WORKERS_AI_DEFAULT_MODEL = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";

/** The part of the `AI` binding this uses: `env.AI` fits it, and so does a test's stub. */
export type AiRunner = { run(model: string, inputs: Record<string, unknown>): Promise<unknown> };

export type WorkersAiOptions = Omit<CallOptions, "fetch"> & { ai: AiRunner; defaultModel?: string };

type TextGeneration = {
  response?: unknown;
  choices?: { message?: { content?: unknown } }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
};

/** Workers AI's error codes that no retry mends: a bad model name, bad input, an account without access. */
const PERMANENT = new Set([3003, 3006, 3023, 3039, 3041, 3042, 5004, 5005, 5007, 5016, 5018, 5019]);
/** The account's daily free allocation is used up: it comes back at midnight UTC. */
const DAILY_LIMIT = 3036;
const JSON_MODE_FAILED = /JSON Mode couldn't be met/i;

/** Proposals written by a model on Workers AI through the `AI` binding, in JSON mode. */
export function workersAiGenerator(options: WorkersAiOptions): ProposalGenerator {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return modelGenerator({
    provider: "workers-ai",
    defaultModel: options.defaultModel ?? WORKERS_AI_DEFAULT_MODEL,
    async ask(request) {
      const inputs = {
        messages: [{ role: "system", content: request.system }, ...request.turns.map(({ role, content }) => ({ role, content }))],
        response_format: { type: "json_schema", json_schema: request.output.schema },
        ...(request.maxTokens !== undefined && { max_tokens: request.maxTokens }),
        ...(request.temperature !== undefined && { temperature: request.temperature }),
      };
      const { value, attempts } = await withRetries(() => runOnce(options.ai, request.model, inputs, timeoutMs), options);
      if (value instanceof Error) return { output: undefined, problem: value.message, turn: { role: "assistant", content: "" }, inputTokens: 0, outputTokens: 0, attempts };
      const answer: TextGeneration = typeof value === "string" ? { response: value } : ((value ?? {}) as TextGeneration);
      // Older models answer `response` (an object in JSON mode, or its text); newer ones the OpenAI shape.
      const output = answer.response ?? answer.choices?.[0]?.message?.content;
      return {
        output,
        problem: output === undefined || output === null ? "The answer has no response" : undefined,
        turn: { role: "assistant", content: typeof output === "string" ? output : JSON.stringify(output ?? null) },
        inputTokens: answer.usage?.prompt_tokens ?? 0,
        outputTokens: answer.usage?.completion_tokens ?? 0,
        attempts,
      };
    },
  });
}

/**
 * One call of the binding, within the timeout. A model that could not meet the schema is an
 * answer to correct (returned as an Error); other errors are sorted into permanent and retryable.
 */
async function runOnce(ai: AiRunner, model: string, inputs: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RetryableError(`Workers AI did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([ai.run(model, inputs), timeout]);
  } catch (error) {
    if (error instanceof RetryableError) throw error;
    const text = messageOf(error);
    if (JSON_MODE_FAILED.test(text)) return new Error(`The model could not meet the JSON schema: ${text}`);
    const code = Number(/\b([35]\d{3})\b/.exec(text)?.[1]);
    if (PERMANENT.has(code)) throw new ProposalError(`Workers AI refused the request: ${text}`);
    if (code === DAILY_LIMIT) throw new RetryableError(`Workers AI: ${text}`, untilMidnightUtc());
    throw new RetryableError(`Workers AI failed: ${text}`);
  } finally {
    clearTimeout(timer);
  }
}

function untilMidnightUtc(now = Date.now()): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) - now;
}
