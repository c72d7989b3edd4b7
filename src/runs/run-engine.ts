import { FINISHED_RUN_STATUSES, type RunStatus } from "../db/schema";
import type { Env } from "../env";
import { issuesToDetails } from "../lib/validate";
import { ACTION_PARAMS, paramsDigest } from "./actions";
import { executeAction } from "./executors";
import { ProposalError } from "./generators/builtin";
import { generatorFor } from "./generators";
import { TERMINAL_CONTACT, UNDONE, stepWait, type ActionRow, type ContactRow, type RunStore } from "./run-store";
import { inWindow, nextOpening } from "./send-window";

/** How much one alarm does before it hands over to the next: bounded CPU and subrequests. */
export const CONTACTS_PER_ALARM = 100;
export const ACTIONS_PER_ALARM = 20;
export const EXECUTION_LEASE_MS = 60_000;

const OUTBOUND = new Set(["email_message", "linkedin_connection", "linkedin_message"]);

/** The playbook engine: proposes, executes and moves contacts along, one safe step at a time. */
export class RunEngine {
  constructor(
    private readonly store: RunStore,
    private readonly env: Env,
  ) {}

  /** Proposes the current step for contacts that are due. True when more are due than were done. */
  async proposeDue(now: number): Promise<boolean> {
    const due = this.store.dueContacts(now, CONTACTS_PER_ALARM + 1);
    for (const contact of due.slice(0, CONTACTS_PER_ALARM)) await this.#propose(contact, now);
    return due.length > CONTACTS_PER_ALARM;
  }

  async #propose(contact: ContactRow, now: number): Promise<void> {
    const { spec } = this.store.run()!;
    const step = spec.steps[contact.currentStep]!;
    // A retried alarm finds the proposal already made and leaves it alone.
    if (this.store.actionForStep(contact.contactId, contact.currentStep)) return;
    this.store.updateContact(contact.contactId, { status: "processing", nextStepAt: null });

    const base = { contactId: contact.contactId, stepId: step.id, stepIndex: contact.currentStep, type: step.action, identityId: spec.sender?.id ?? null };
    const blank = { originalParams: null, decidedAt: null, decision: null, scheduledFor: null, executedAt: null, result: null };
    let proposal;
    try {
      proposal = await generatorFor(spec.llm.provider)!.propose({
        step,
        stepIndex: contact.currentStep,
        contact: contact.snapshot,
        sender: spec.sender,
        playbookMd: spec.playbookMd,
        llm: spec.llm,
      });
    } catch (error) {
      if (!(error instanceof ProposalError)) throw error;
      this.store.insertAction({ ...base, ...blank, status: "failed", params: {}, reasoning: "", digest: await paramsDigest({}), proposedAt: now, error: error.message });
      this.store.updateContact(contact.contactId, { status: "failed", stopReason: "error" });
      return;
    }
    const digest = await paramsDigest(proposal.params);
    // A stop or cancel may have landed while the proposal was generated.
    if (this.store.contact(contact.contactId)!.status !== "processing") return;

    const auto = step.require_approval === false;
    // Nobody reviews an automatic action, so it must be valid as proposed.
    const invalid = auto ? ACTION_PARAMS[step.action].safeParse(proposal.params).error : undefined;
    if (invalid) {
      const error = `The proposal is not a valid ${step.action}: ${issuesToDetails(invalid.issues, ["params"]).map((d) => `${d.path} ${d.message}`).join("; ")}`;
      this.store.insertAction({ ...base, ...blank, status: "failed", params: proposal.params, reasoning: proposal.reasoning, digest, proposedAt: now, error });
      this.store.updateContact(contact.contactId, { status: "failed", stopReason: "error" });
      return;
    }
    this.store.insertAction({
      ...base,
      ...blank,
      status: auto ? "auto_approved" : "pending_approval",
      params: proposal.params,
      reasoning: proposal.reasoning,
      digest,
      proposedAt: now,
      error: null,
    });
    if (!auto) this.store.updateContact(contact.contactId, { status: "awaiting_approval" });
  }

  /** Carries out approved actions that are due. True when more are due than were done. */
  async executeDue(now: number): Promise<boolean> {
    const due = this.store.dueActions(now, ACTIONS_PER_ALARM + 1);
    for (const action of due.slice(0, ACTIONS_PER_ALARM)) await this.execute(action, now);
    return due.length > ACTIONS_PER_ALARM;
  }

  /** Executes one approved action, at most once, then moves its contact to the next step. */
  async execute(action: ActionRow, now: number): Promise<void> {
    const { spec } = this.store.run()!;
    const window = spec.sender?.send_window;
    if (window && OUTBOUND.has(action.type) && !inWindow(window, now)) {
      const at = nextOpening(window, now);
      this.store.transitionAction(action.contactId, action.index, ["approved", "auto_approved", "scheduled"], "scheduled", { scheduledFor: at });
      this.store.updateContact(action.contactId, { status: "processing", nextStepAt: at });
      return;
    }
    // The lease keeps an alarm from executing an action an approval is executing right now;
    // an execution that died is picked up again once it lapses.
    const leased = this.store.transitionAction(action.contactId, action.index, ["approved", "auto_approved", "scheduled", "running"], "running", {
      scheduledFor: now + EXECUTION_LEASE_MS,
    });
    if (!leased) return;
    this.store.updateContact(action.contactId, { status: "processing", nextStepAt: null });

    const outcome = await executeAction(this.env, spec, action);
    const scheduledFor = action.status === "scheduled" ? action.scheduledFor : null;
    if (outcome.kind === "stopped") {
      this.store.transitionAction(action.contactId, action.index, ["running"], "invalidated", { scheduledFor, error: `Not sent: ${outcome.reason}` });
      this.stopContact(action.contactId, outcome.reason);
      return;
    }
    const done = { executedAt: Date.now(), result: outcome.result, scheduledFor };
    if (!this.store.transitionAction(action.contactId, action.index, ["running"], "completed", done)) return;
    this.#nextStep(action.contactId, Date.now());
  }

  #nextStep(contactId: string, now: number): void {
    const { spec } = this.store.run()!;
    const contact = this.store.contact(contactId)!;
    if (TERMINAL_CONTACT.includes(contact.status)) return;
    const next = contact.currentStep + 1;
    if (next >= spec.steps.length) {
      this.store.updateContact(contactId, { status: "completed", currentStep: next, nextStepAt: null });
    } else {
      this.store.updateContact(contactId, { status: "waiting", currentStep: next, nextStepAt: now + stepWait(spec, next) });
    }
  }

  /** Ends a contact's sequence: what is not yet decided or sent is invalidated. */
  stopContact(contactId: string, reason: string, undone: "invalidated" | "cancelled" = "invalidated"): boolean {
    const contact = this.store.contact(contactId);
    if (!contact || TERMINAL_CONTACT.includes(contact.status)) return false;
    for (const action of this.store.actionsOf(contactId)) {
      this.store.transitionAction(contactId, action.index, UNDONE, undone);
    }
    this.store.updateContact(contactId, { status: "stopped", stopReason: reason, nextStepAt: null });
    return true;
  }

  /** Stops every unfinished contact and the run with them. */
  cancel(now: number): void {
    for (const contact of this.store.contacts()) this.stopContact(contact.contactId, "cancelled", "cancelled");
    this.store.setRunStatus("cancelled", now);
  }

  /** Derives the run's status from its contacts and records it. */
  refreshStatus(now: number): RunStatus {
    const run = this.store.run()!;
    if (FINISHED_RUN_STATUSES.includes(run.status)) return run.status;
    const byStatus = this.store.contactStatusCounts();
    const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
    const finished = TERMINAL_CONTACT.reduce((sum, s) => sum + (byStatus[s] ?? 0), 0);
    let status: RunStatus = byStatus.awaiting_approval ? "awaiting_approval" : "running";
    let error: string | null = null;
    if (finished === total) {
      const failed = byStatus.failed ?? 0;
      status = total > 0 && failed === total ? "failed" : "completed";
      if (status === "failed") error = "Every contact failed; see each contact's actions";
    }
    if (status !== run.status || error) this.store.setRunStatus(status, now, error);
    return status;
  }
}
