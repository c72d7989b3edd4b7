import { postJson, type CallOptions } from "./http";
import { modelGenerator } from "./llm";
import type { ProposalGenerator } from "./types";

export const OPENAI_BASE_URL = "https://api.openai.com/v1";
/** A small non-reasoning model: it takes `temperature` and `max_tokens`, and strict JSON schemas. */
export const OPENAI_DEFAULT_MODEL = "gpt-4.1-mini";

export type OpenAiOptions = CallOptions & {
  apiKey: string;
  /** Any OpenAI-compatible endpoint (AI Gateway, Groq, vLLM, Ollama); default `https://api.openai.com/v1`. */
  baseUrl?: string;
  defaultModel?: string;
};

type ChatCompletion = {
  choices?: { message?: { content?: string | null; refusal?: string | null }; finish_reason?: string }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
};

/** Proposals written through the Chat Completions API, with a strict `json_schema` response format. */
export function openAiGenerator(options: OpenAiOptions): ProposalGenerator {
  const url = `${(options.baseUrl || OPENAI_BASE_URL).replace(/\/+$/, "")}/chat/completions`;
  return modelGenerator({
    provider: "openai",
    defaultModel: options.defaultModel ?? OPENAI_DEFAULT_MODEL,
    async ask(request) {
      const body = {
        model: request.model,
        messages: [{ role: "system", content: request.system }, ...request.turns.map(({ role, content }) => ({ role, content }))],
        ...(request.temperature !== undefined && { temperature: request.temperature }),
        ...(request.maxTokens !== undefined && { max_tokens: request.maxTokens }),
        response_format: { type: "json_schema", json_schema: { name: request.output.name, strict: true, schema: request.output.schema } },
      };
      const { value, attempts } = await postJson("OpenAI", url, body, { authorization: `Bearer ${options.apiKey}` }, options);
      const answer = value as ChatCompletion;
      const choice = answer.choices?.[0];
      const content = choice?.message?.content;
      const refusal = choice?.message?.refusal;
      return {
        output: content,
        problem: refusal
          ? `The model refused: ${refusal}`
          : choice?.finish_reason === "length"
            ? "The answer was cut off at max_tokens"
            : typeof content === "string"
              ? undefined
              : "The answer has no content",
        turn: { role: "assistant", content: content ?? refusal ?? "" },
        inputTokens: answer.usage?.prompt_tokens ?? 0,
        outputTokens: answer.usage?.completion_tokens ?? 0,
        attempts,
      };
    },
  });
}
