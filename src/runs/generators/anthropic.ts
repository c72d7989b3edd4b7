import { postJson, type CallOptions } from "./http";
import { modelGenerator, type Turn } from "./llm";
import type { ProposalGenerator } from "./types";

export const ANTHROPIC_BASE_URL = "https://api.anthropic.com";
/** Fast and small; it takes `temperature` and a forced tool (Haiku 5.5 refuses both while it thinks). */
export const ANTHROPIC_DEFAULT_MODEL = "claude-haiku-4-5";
/** The Messages API requires `max_tokens`: this when the agent sets none. */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 1024;

export type AnthropicOptions = CallOptions & {
  apiKey: string;
  /** Default `https://api.anthropic.com`. */
  baseUrl?: string;
  defaultModel?: string;
};

type Block = { type: string; id?: string; name?: string; input?: unknown; text?: string };
type MessagesAnswer = { content?: Block[]; stop_reason?: string; usage?: { input_tokens?: number; output_tokens?: number } };

/** Proposals written through the Messages API: the params come as the input of one forced tool call. */
export function anthropicGenerator(options: AnthropicOptions): ProposalGenerator {
  const url = `${(options.baseUrl || ANTHROPIC_BASE_URL).replace(/\/+$/, "")}/v1/messages`;
  const headers = { "x-api-key": options.apiKey, "anthropic-version": "2023-06-01" };
  return modelGenerator({
    provider: "anthropic",
    defaultModel: options.defaultModel ?? ANTHROPIC_DEFAULT_MODEL,
    async ask(request) {
      const { name, description, schema } = request.output;
      const body = {
        model: request.model,
        max_tokens: request.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
        system: request.system,
        messages: toMessages(request.turns),
        tools: [{ name, description, input_schema: schema }],
        tool_choice: { type: "tool", name },
        ...(request.temperature !== undefined && { temperature: request.temperature }),
      };
      const { value, attempts } = await postJson("Anthropic", url, body, headers, options);
      const answer = value as MessagesAnswer;
      const blocks = answer.content ?? [];
      const call = blocks.find((b) => b.type === "tool_use" && b.name === name);
      const text = blocks.flatMap((b) => (b.type === "text" && b.text ? [b.text] : [])).join("\n");
      return {
        output: call?.input,
        problem: call ? undefined : answer.stop_reason === "max_tokens" ? "The answer was cut off at max_tokens" : `The answer did not call the ${name} tool`,
        turn: { role: "assistant", content: call ? JSON.stringify(call.input) : text || "(no answer)", raw: blocks },
        inputTokens: answer.usage?.input_tokens ?? 0,
        outputTokens: answer.usage?.output_tokens ?? 0,
        attempts,
      };
    },
  });
}

/** The conversation in the Messages API's shape: a correction after a tool call is that call's error result. */
function toMessages(turns: Turn[]) {
  return turns.map((turn, i) => {
    if (turn.role === "assistant") return { role: "assistant", content: Array.isArray(turn.raw) && turn.raw.length ? turn.raw : turn.content };
    const before = turns[i - 1];
    const call = before?.role === "assistant" && Array.isArray(before.raw) ? (before.raw as Block[]).find((b) => b.type === "tool_use") : undefined;
    if (!call?.id) return { role: "user", content: turn.content };
    return { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, is_error: true, content: turn.content }] };
  });
}
