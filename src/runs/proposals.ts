import type { Env } from "../env";
import { iso } from "../lib/time";
import { issuesToDetails } from "../lib/validate";
import { ACTION_PARAMS, paramsDigest } from "./actions";
import { loadContexts } from "./contact-context";
import { ProposalError } from "./generators/builtin";
import { generatorFor } from "./generators";
import { InvalidAnswer } from "./generators/llm";
import { ProviderBusy, type Generation, type PriorAction, type ProposalGenerator, type ProposalInput } from "./generators/types";
import { MAX_ATTEMPTS, retryDelay, type ArmBy, type Progress } from "./run-engine";
import type { ActionRow, ContactRow, RunStore } from "./run-store";
import { messageOf } from "../lib/errors";

/** How many contacts one alarm pass takes, at most, and how long it keeps starting new ones. */
export const CONTACTS_PER_ALARM = 100;
export const PROPOSAL_PASS_MS = 60_000;
/**
 * A proposal holds its contact this long: a model's calls (a 30 s timeout, quick retries, a
 * second call when the answer fails its schema) fit inside it.
 */
export const PROPOSAL_LEASE_MS = 5 * 60_000;
/** Proposals made at once: the Workers limit of simultaneous outbound connections per invocation. */
export const DEFAULT_CONCURRENCY = 6;
/** The longest a provider's `Retry-After` holds a contact back: a run never waits days on one header. */
export const MAX_WAIT_MS = 15 * 60_000;
/** The digest of `{}`, for actions that failed before they had params. */
let emptyDigest: Promise<string> | undefined;
const EMPTY_DIGEST = () => (emptyDigest ??= paramsDigest({}));

type NewAction = Omit<Parameters<RunStore["insertAction"]>[0], "status" | "error">;

/** Proposes each contact's current step: one per contact, several at once, under leases. */
export class Proposer {
  constructor(
    private readonly store: RunStore,
    private readonly env: Env,
    private readonly armBy: ArmBy,
  ) {}

  /** Proposes for the contacts that are due, `concurrency` at a time, within a bounded pass. */
  async proposeDue(now: number): Promise<Progress> {
    const { spec } = this.store.run()!;
    // A provider whose secret was removed after the trigger fails each contact's step rather than stall the run.
    const generator = generatorFor(spec.llm.provider, this.env) ?? unconfigured(spec.llm.provider);
    const due = this.store.dueContacts(now, CONTACTS_PER_ALARM + 1);
    const batch = due.slice(0, CONTACTS_PER_ALARM);
    if (batch.length === 0) return { handled: 0, more: false };
    // A model is told the contact's properties and recent events: read for the whole pass at once.
    const contexts = generator.needsContext ? await loadContexts(this.env.DB, batch.map((c) => c.contactId)) : new Map();

    const deadline = now + PROPOSAL_PASS_MS;
    let next = 0;
    let handled = 0;
    // A provider that said it is busy is not asked for more contacts in this pass.
    const pass = { busyUntil: 0 };
    const worker = async () => {
      while (next < batch.length && Date.now() < deadline && pass.busyUntil === 0) {
        const contact = batch[next++]!;
        const leaseUntil = Date.now() + PROPOSAL_LEASE_MS;
        // Each take counts as an attempt, so a proposal that keeps killing the process ends too.
        const fields = { leaseUntil, nextStepAt: null, attempts: contact.attempts + 1 };
        if (!this.store.moveContact(contact.contactId, "processing", fields, ["pending", "waiting", "processing"])) continue;
        await this.armBy(leaseUntil);
        handled++;
        const held = this.store.contact(contact.contactId)!;
        try {
          await this.#propose(generator, held, Date.now(), contexts.get(contact.contactId), pass);
        } catch (error) {
          // Whatever went wrong, the contact is not left holding a lease: it is due again later.
          console.error(JSON.stringify({ level: "error", message: "proposal failed unexpectedly", contact_id: contact.contactId, error: String(error) }));
          this.#retryLater(held, retryDelay(held.attempts));
        }
      }
    };
    await Promise.allSettled(Array.from({ length: Math.min(concurrency(this.env), batch.length) }, worker));
    if (pass.busyUntil > 0) {
      this.store.deferDue(batch.slice(next).map((c) => c.contactId), pass.busyUntil);
      return { handled, more: false };
    }
    return { handled, more: due.length > CONTACTS_PER_ALARM || next < batch.length };
  }

  #retryLater(contact: ContactRow, waitMs: number): void {
    if (this.#stillHeld(contact)) this.store.moveContact(contact.contactId, "pending", { leaseUntil: null, nextStepAt: Date.now() + Math.min(waitMs, MAX_WAIT_MS) }, ["processing"]);
  }

  /** One proposal for a contact this pass holds the lease of. */
  async #propose(generator: ProposalGenerator, contact: ContactRow, now: number, context: ProposalInput["context"], pass: { busyUntil: number }): Promise<void> {
    const { spec } = this.store.run()!;
    const step = spec.steps[contact.currentStep]!;
    const { contactId, round } = contact;
    // An earlier attempt that died after writing its proposal: finish its move and stop there.
    const existing = this.store.actionForStep(contactId, contact.currentStep, round);
    if (existing) return this.#afterProposal(contactId, existing.status === "pending_approval");

    const base = { contactId, stepId: step.id, stepIndex: contact.currentStep, round, type: step.action, identityId: spec.sender?.id ?? null, proposedAt: now, generation: null };
    const blank = { params: {}, reasoning: "", digest: await EMPTY_DIGEST() };
    if (contact.attempts > MAX_ATTEMPTS) return this.#fail(contact, { ...base, ...blank }, `No proposal after ${MAX_ATTEMPTS} attempts`);
    let proposal;
    try {
      proposal = await generator.propose({
        step,
        stepIndex: contact.currentStep,
        contact: contact.snapshot!,
        sender: spec.sender,
        playbookMd: spec.playbookMd,
        llm: spec.llm,
        capabilities: spec.capabilities ?? [],
        context,
        history: this.store.actionsOf(contactId).map(toPrior),
        stillWanted: () => this.#stillHeld(contact),
      });
    } catch (error) {
      if (!this.#stillHeld(contact)) return;
      if (!(error instanceof ProposalError) && contact.attempts < MAX_ATTEMPTS) {
        // Try again later, within the contact's attempts: a busy provider slows the run down, never fails it.
        const wait = Math.max(error instanceof ProviderBusy ? error.retryAfterMs : 0, retryDelay(contact.attempts));
        if (error instanceof ProviderBusy) pass.busyUntil = Math.max(pass.busyUntil, Date.now() + Math.min(wait, MAX_WAIT_MS));
        return this.#retryLater(contact, wait);
      }
      // A model whose answers never passed still cost tokens: they count in the run's usage.
      const generation = error instanceof InvalidAnswer ? rounded(error.generation) : null;
      return this.#fail(contact, { ...base, ...blank, generation }, messageOf(error));
    }
    const digest = await paramsDigest(proposal.params);
    const generation = proposal.generation ? rounded(proposal.generation) : null;
    const made = { ...base, params: proposal.params, reasoning: proposal.reasoning, digest, generation };
    const auto = step.require_approval === false;
    // Nobody reviews an automatic action, so it must be valid as proposed.
    const invalid = auto ? ACTION_PARAMS[step.action].safeParse(proposal.params).error : undefined;
    if (invalid) {
      const error = `The proposal is not a valid ${step.action}: ${issuesToDetails(invalid.issues, ["params"]).map((d) => `${d.path} ${d.message}`).join("; ")}`;
      return this.#fail(contact, made, error);
    }
    this.store.atomically(() => {
      // A stop, a cancel or an address change may have landed while the proposal was made: then it is dropped.
      if (!this.#stillHeld(contact)) return;
      this.store.insertAction({ ...made, status: auto ? "auto_approved" : "pending_approval", error: null });
      this.#afterProposal(contactId, !auto);
    });
  }

  #stillHeld(contact: ContactRow): boolean {
    const now = this.store.contact(contact.contactId);
    return now?.status === "processing" && now.round === contact.round && now.currentStep === contact.currentStep;
  }

  #afterProposal(contactId: string, needsApproval: boolean): void {
    // An automatic action is due at once; the contact stays processing while it is carried out.
    this.store.moveContact(contactId, needsApproval ? "awaiting_approval" : "processing", { leaseUntil: null, attempts: 0 }, ["processing"]);
  }

  #fail(contact: ContactRow, action: NewAction, error: string): void {
    this.store.atomically(() => {
      if (!this.#stillHeld(contact)) return;
      this.store.insertAction({ ...action, status: "failed", error });
      this.store.moveContact(contact.contactId, "failed", { leaseUntil: null, stopReason: "error" }, ["processing"]);
    });
  }
}

const unconfigured = (provider: string): ProposalGenerator => ({
  propose: () => Promise.reject(new ProposalError(`LLM provider ${provider} is no longer configured in this deployment`)),
});

const rounded = (g: Generation): Generation => ({ ...g, latency_ms: Math.round(g.latency_ms) });

/** `PROPOSAL_CONCURRENCY` (1-20), or the default. */
function concurrency(env: Env): number {
  const set = Number(env.PROPOSAL_CONCURRENCY);
  return Number.isInteger(set) && set >= 1 && set <= 20 ? set : DEFAULT_CONCURRENCY;
}

/** What the model is told of an earlier action: what was approved (edits included), and whether it went out. */
const toPrior = (a: ActionRow): PriorAction => ({
  step_id: a.stepId,
  type: a.type,
  status: a.status,
  params: a.params,
  edited: a.decision?.edited ?? false,
  executed_at: iso(a.executedAt),
});
