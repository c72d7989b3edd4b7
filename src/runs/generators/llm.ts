import { issuesToDetails } from "../../lib/validate";
import { ACTION_PARAMS, type ActionParams } from "../actions";
import type { ContactSnapshot } from "../spec";
import { builtinGenerator, ProposalError } from "./builtin";
import { outputSchema, systemPrompt, userPrompt, type OutputSchema, type WrittenAction } from "./prompt";
import type { Generation, Proposal, ProposalGenerator, ProposalInput } from "./types";

export type AssistantTurn = {
  role: "assistant";
  /** The answer as text, for providers that replay text. */
  content: string;
  /** The answer in the provider's own shape (Anthropic's content blocks), when it has one. */
  raw?: unknown;
};
export type Turn = { role: "user"; content: string } | AssistantTurn;

/** One question to a model: what every provider client turns into its own request. */
export type ModelRequest = {
  model: string;
  system: string;
  turns: Turn[];
  /** The structured output: its name (the action type), a description and its JSON schema. */
  output: { name: WrittenAction; description: string; schema: OutputSchema };
  temperature?: number;
  maxTokens?: number;
};

/** A model's answer, as a provider client read it. */
export type ModelAnswer = {
  /** The model's JSON: an object, or the text it wrote. */
  output: unknown;
  /** Why the answer has nothing to read (a refusal, no tool call, cut off), when so. */
  problem?: string;
  /** The answer as the conversation replays it before a correction. */
  turn: AssistantTurn;
  inputTokens: number;
  outputTokens: number;
  /** Calls this answer took, quick retries included. */
  attempts: number;
};

/** A model provider behind the shared prompt, validation and accounting. */
export type ModelClient = {
  provider: Generation["provider"];
  defaultModel: string;
  ask(request: ModelRequest): Promise<ModelAnswer>;
};

/** A model that twice answered outside the schema: permanent, with what those calls cost, for the run's usage. */
export class InvalidAnswer extends ProposalError {
  constructor(
    message: string,
    readonly generation: Generation,
  ) {
    super(message);
    this.name = "InvalidAnswer";
  }
}

/** Answers a proposal may take: the first, and one more told what was wrong with it. */
export const MAX_ANSWERS = 2;

/**
 * A generator that asks a model for each step's text: the prompt and schema of `prompt.ts`,
 * the answer checked by the same schema as an approval, one corrected retry, then a
 * `ProposalError` saying why. `sync_to_crm` is a data sync: the builtin generator makes it.
 */
export function modelGenerator(client: ModelClient): ProposalGenerator {
  return {
    needsContext: true,
    async propose(input: ProposalInput): Promise<Proposal> {
      const type = input.step.action;
      if (type === "sync_to_crm") return builtinGenerator.propose(input);
      const recipient = recipientOf(type, input.contact);
      const model = input.llm.model ?? client.defaultModel;
      const request: ModelRequest = {
        model,
        system: systemPrompt(input, type),
        turns: [{ role: "user", content: userPrompt(input) }],
        output: { name: type, description: `Write the ${type} for this contact.`, schema: outputSchema(type) },
        temperature: input.llm.temperature,
        maxTokens: input.llm.max_tokens,
      };
      const generation: Generation = { provider: client.provider, model, input_tokens: 0, output_tokens: 0, latency_ms: 0, attempts: 0 };
      const started = Date.now();
      let errors = "";
      for (let n = 1; n <= MAX_ANSWERS; n++) {
        // The contact may have left while the last answer was on its way: no call for nobody.
        if (input.stillWanted && !input.stillWanted()) throw new ProposalError("The contact left the sequence while its proposal was written");
        const answer = await client.ask(request);
        generation.input_tokens += answer.inputTokens;
        generation.output_tokens += answer.outputTokens;
        generation.attempts += answer.attempts;
        generation.latency_ms = Date.now() - started;
        const read = readAnswer(type, answer, recipient);
        if ("errors" in read) {
          errors = read.errors;
          request.turns.push(answer.turn, { role: "user", content: correction(type, errors) });
          continue;
        }
        return { ...read, generation };
      }
      throw new InvalidAnswer(`The model's answer was not a valid ${type} after ${MAX_ANSWERS} tries: ${errors}`, generation);
    },
  };
}

/** The recipient Cairn sets from the contact: never the model's to write. */
function recipientOf(type: WrittenAction, contact: ContactSnapshot): ActionParams {
  switch (type) {
    case "email_message":
      return { to: contact.email };
    case "linkedin_connection":
    case "linkedin_message":
      if (!contact.linkedin_url) throw new ProposalError("The contact has no linkedin_url");
      return { profile_url: contact.linkedin_url };
    default:
      return {};
  }
}

/** The proposal in a model's answer, or what is wrong with it, in words the model can act on. */
function readAnswer(type: WrittenAction, answer: ModelAnswer, recipient: ActionParams): Omit<Proposal, "generation"> | { errors: string } {
  if (answer.problem) return { errors: answer.problem };
  let value = answer.output;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return { errors: "The answer is not valid JSON" };
    }
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return { errors: "The answer is not a JSON object" };
  const { reasoning, ...fields } = value as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof reasoning !== "string" || !reasoning.trim()) problems.push("reasoning: Write a short reasoning for the reviewer");
  // The recipient goes last: whatever the model wrote there, Cairn's value wins.
  const parsed = ACTION_PARAMS[type].safeParse({ ...fields, ...recipient });
  if (!parsed.success) problems.push(...issuesToDetails(parsed.error.issues).map((d) => `${d.path}: ${d.message}`));
  if (problems.length || !parsed.success) return { errors: problems.join("; ") };
  return { params: parsed.data as ActionParams, reasoning: (reasoning as string).trim() };
}

function correction(type: WrittenAction, errors: string): string {
  const names = Object.keys(outputSchema(type).properties).join(", ");
  return `Your answer was not accepted: ${errors}. Answer again with a JSON object with exactly these fields: ${names}, fixing these errors.`;
}
