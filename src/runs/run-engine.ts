import type { Env } from "../env";
import { issuesToDetails } from "../lib/validate";
import { ACTION_PARAMS, paramsDigest } from "./actions";
import { executeAction, ExecutionError } from "./executors";
import { ProposalError } from "./generators/builtin";
import { generatorFor } from "./generators";
import { CONTACT, FINISHED_RUN_STATUSES, UNDONE, type RunStatus } from "./machine";
import { stepWait, type ActionRow, type ContactRow, type RunStore } from "./run-store";
import { inWindow, nextOpening } from "./send-window";
import type { ContactSnapshot } from "./spec";

/** How much one alarm does before it hands over to the next: bounded CPU and subrequests. */
export const CONTACTS_PER_ALARM = 100;
export const ACTIONS_PER_ALARM = 20;
/** How long an execution or a proposal holds its action or contact before another may take it. */
export const LEASE_MS = 60_000;
/** Executions and proposals are tried this many times, then fail with their last error. */
export const MAX_ATTEMPTS = 5;
/** 15 s, 30 s, 1 min, 2 min ... at most 15 minutes. */
export const retryDelay = (attempts: number) => Math.min(15_000 * 2 ** Math.max(attempts - 1, 0), 15 * 60_000);

const CONTACT_CHANGED = "contact_changed: the contact's address changed; the step is proposed again";
const OUTBOUND = new Set(["email_message", "linkedin_connection", "linkedin_message"]);

/** Sets the object's alarm no later than `at`: called before any outside call, so a crash there still wakes the run. */
export type ArmBy = (at: number) => Promise<void>;

/** What one pass did: how many items it took, and whether more were due than it took. */
export type Progress = { handled: number; more: boolean };

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The playbook engine: proposes, executes and moves contacts along, one safe step at a time. */
export class RunEngine {
  constructor(
    private readonly store: RunStore,
    private readonly env: Env,
    private readonly armBy: ArmBy,
  ) {}

  /** Proposes the current step for contacts that are due. */
  async proposeDue(now: number): Promise<Progress> {
    const due = this.store.dueContacts(now, CONTACTS_PER_ALARM + 1);
    const batch = due.slice(0, CONTACTS_PER_ALARM);
    // Take every lease first, and the alarm that outlives them, before the first outside call.
    const leased = batch.filter((c) => this.store.moveContact(c.contactId, "processing", { leaseUntil: now + LEASE_MS, nextStepAt: null }, ["pending", "waiting", "processing"]));
    if (leased.length > 0) await this.armBy(now + LEASE_MS);
    for (const contact of leased) await this.#propose(this.store.contact(contact.contactId)!, now);
    return { handled: batch.length, more: due.length > CONTACTS_PER_ALARM };
  }

  /** One proposal for a contact this engine holds the lease of. */
  async #propose(contact: ContactRow, now: number): Promise<void> {
    const { spec } = this.store.run()!;
    const step = spec.steps[contact.currentStep]!;
    const { contactId, round } = contact;
    // An earlier attempt that died after writing its proposal: finish its move and stop there.
    const existing = this.store.actionForStep(contactId, contact.currentStep, round);
    if (existing) return this.#afterProposal(contactId, existing.status === "pending_approval");

    const base = { contactId, stepId: step.id, stepIndex: contact.currentStep, round, type: step.action, identityId: spec.sender?.id ?? null, proposedAt: now };
    let proposal;
    try {
      proposal = await generatorFor(spec.llm.provider)!.propose({
        step,
        stepIndex: contact.currentStep,
        contact: contact.snapshot!,
        sender: spec.sender,
        playbookMd: spec.playbookMd,
        llm: spec.llm,
      });
    } catch (error) {
      const attempts = contact.attempts + 1;
      if (!(error instanceof ProposalError) && attempts < MAX_ATTEMPTS) {
        // Try again later: the contact is due again after the backoff.
        this.store.moveContact(contactId, "pending", { attempts, leaseUntil: null, nextStepAt: Date.now() + retryDelay(attempts) }, ["processing"]);
        return;
      }
      return this.#failProposal(contact, { ...base, params: {}, reasoning: "", digest: await paramsDigest({}) }, message(error));
    }
    const digest = await paramsDigest(proposal.params);
    const auto = step.require_approval === false;
    // Nobody reviews an automatic action, so it must be valid as proposed.
    const invalid = auto ? ACTION_PARAMS[step.action].safeParse(proposal.params).error : undefined;
    if (invalid) {
      const error = `The proposal is not a valid ${step.action}: ${issuesToDetails(invalid.issues, ["params"]).map((d) => `${d.path} ${d.message}`).join("; ")}`;
      return this.#failProposal(contact, { ...base, params: proposal.params, reasoning: proposal.reasoning, digest }, error);
    }
    this.store.atomically(() => {
      // A stop, a cancel or an address change may have landed while the proposal was made: then it is dropped.
      if (!this.#stillHeld(contact)) return;
      this.store.insertAction({ ...base, status: auto ? "auto_approved" : "pending_approval", params: proposal.params, reasoning: proposal.reasoning, digest, error: null });
      this.#afterProposal(contactId, !auto);
    });
  }

  #stillHeld(contact: ContactRow): boolean {
    const now = this.store.contact(contact.contactId);
    return now?.status === "processing" && now.round === contact.round && now.currentStep === contact.currentStep;
  }

  #afterProposal(contactId: string, needsApproval: boolean): void {
    if (needsApproval) this.store.moveContact(contactId, "awaiting_approval", { leaseUntil: null, attempts: 0 }, ["processing"]);
    // An automatic action is due at once; the contact stays processing while it is carried out.
    else this.store.moveContact(contactId, "processing", { leaseUntil: null, attempts: 0 }, ["processing"]);
  }

  #failProposal(contact: ContactRow, action: Omit<Parameters<RunStore["insertAction"]>[0], "status" | "error">, error: string): void {
    this.store.atomically(() => {
      if (!this.#stillHeld(contact)) return;
      this.store.insertAction({ ...action, status: "failed", error });
      this.store.moveContact(contact.contactId, "failed", { leaseUntil: null, stopReason: "error" }, ["processing"]);
    });
  }

  /** Carries out approved actions that are due. */
  async executeDue(now: number): Promise<Progress> {
    const due = this.store.dueActions(now, ACTIONS_PER_ALARM + 1);
    const batch = due.slice(0, ACTIONS_PER_ALARM);
    for (const action of batch) await this.execute(action, now);
    return { handled: batch.length, more: due.length > ACTIONS_PER_ALARM };
  }

  /**
   * Executes one approved action under a lease, at most once, then moves its contact to the
   * next step. A failure is retried with backoff up to MAX_ATTEMPTS, then the action fails.
   */
  async execute(action: ActionRow, now: number): Promise<void> {
    const { spec } = this.store.run()!;
    const { contactId, index } = action;
    const window = spec.sender?.send_window;
    if (window && OUTBOUND.has(action.type) && !inWindow(window, now)) {
      const at = nextOpening(window, now);
      this.store.moveAction(contactId, index, "scheduled", { scheduledFor: at, leaseUntil: null }, { from: ["approved", "auto_approved", "scheduled", "running"] });
      this.store.moveContact(contactId, "processing", { nextStepAt: at }, ["awaiting_approval", "processing"]);
      return;
    }
    const attempts = action.attempts + 1;
    const leaseUntil = now + LEASE_MS;
    if (!this.store.moveAction(contactId, index, "running", { leaseUntil, attempts }, { now })) return;
    this.store.moveContact(contactId, "processing", { nextStepAt: null }, ["awaiting_approval", "processing"]);
    await this.armBy(leaseUntil);

    let outcome;
    try {
      outcome = await executeAction(this.env, spec, action);
    } catch (error) {
      const permanent = error instanceof ExecutionError && error.permanent;
      if (!permanent && attempts < MAX_ATTEMPTS) {
        this.store.moveAction(contactId, index, "scheduled", { scheduledFor: Date.now() + retryDelay(attempts), leaseUntil: null, error: message(error) }, { from: ["running"] });
        return;
      }
      this.store.atomically(() => {
        if (this.store.moveAction(contactId, index, "failed", { leaseUntil: null, error: message(error) }, { from: ["running"] })) {
          this.store.moveContact(contactId, "failed", { stopReason: "error" }, ["processing"]);
        }
      });
      return;
    }
    if (outcome.kind === "stopped") {
      this.store.moveAction(contactId, index, "invalidated", { leaseUntil: null, error: `Not sent: ${outcome.reason}` }, { from: ["running"] });
      // The run itself is gone from D1 or cancelled there: nothing of it goes on.
      if (outcome.reason === "cancelled") this.cancel(Date.now());
      else this.stopContact(contactId, outcome.reason);
      return;
    }
    if (outcome.kind === "changed") {
      this.store.moveAction(contactId, index, "invalidated", { leaseUntil: null, error: CONTACT_CHANGED }, { from: ["running"] });
      // The run was not told: it learns the new details here, and writes the step for them.
      this.store.setSnapshot(contactId, outcome.snapshot);
      this.#proposeAgain(contactId);
      return;
    }
    const done = { executedAt: Date.now(), result: outcome.result, leaseUntil: null, error: null };
    if (!this.store.moveAction(contactId, index, "completed", done, { from: ["running"] })) return;
    this.#nextStep(contactId, Date.now());
  }

  #nextStep(contactId: string, now: number): void {
    const { spec } = this.store.run()!;
    const contact = this.store.contact(contactId)!;
    const next = contact.currentStep + 1;
    if (next >= spec.steps.length) this.store.moveContact(contactId, "completed", { currentStep: next, nextStepAt: null }, ["processing"]);
    else this.store.moveContact(contactId, "waiting", { currentStep: next, nextStepAt: now + stepWait(spec, next), attempts: 0 }, ["processing"]);
  }

  /** The current step is proposed again in a new round: the old proposal no longer fits the contact. */
  #proposeAgain(contactId: string): void {
    const contact = this.store.contact(contactId);
    if (!contact) return;
    this.store.moveContact(contactId, "pending", { round: contact.round + 1, nextStepAt: Date.now(), leaseUntil: null, attempts: 0 }, ["awaiting_approval", "processing"]);
  }

  /**
   * The contact's details changed. Undecided and not yet started actions written for an
   * address it no longer has are invalidated and the step is proposed again to the new one;
   * a running one is caught by the executor, which sends only to the current address.
   */
  contactChanged(contactId: string, snapshot: ContactSnapshot): boolean {
    const contact = this.store.contact(contactId);
    if (!contact || CONTACT.isTerminal(contact.status)) return false;
    return this.store.atomically(() => {
      this.store.setSnapshot(contactId, snapshot);
      const stale = this.store
        .actionsOf(contactId)
        .filter((a) => UNDONE.includes(a.status) && (a.type === "email_message" ? String(a.params.to).toLowerCase() !== snapshot.email.toLowerCase() : a.type.startsWith("linkedin_") && a.params.profile_url !== snapshot.linkedin_url));
      const invalidated = stale.filter((a) => this.store.moveAction(contactId, a.index, "invalidated", { error: CONTACT_CHANGED }));
      if (invalidated.length > 0) this.#proposeAgain(contactId);
      return invalidated.length > 0;
    });
  }

  /** Ends a contact's sequence: what is not yet decided or started is invalidated (or cancelled). */
  stopContact(contactId: string, reason: string): boolean {
    return this.store.atomically(() => this.#stop(contactId, reason, "invalidated"));
  }

  #stop(contactId: string, reason: string, undone: "invalidated" | "cancelled"): boolean {
    if (!this.store.moveContact(contactId, "stopped", { stopReason: reason, nextStepAt: null, leaseUntil: null })) return false;
    for (const action of this.store.actionsOf(contactId)) {
      if (UNDONE.includes(action.status)) this.store.moveAction(contactId, action.index, undone, undone === "invalidated" ? { error: `Not sent: ${reason}` } : {});
    }
    return true;
  }

  /** Stops every unfinished contact and the run with them. */
  cancel(now: number): void {
    this.store.atomically(() => {
      for (const contact of this.store.contacts()) this.#stop(contact.contactId, "cancelled", "cancelled");
      this.store.setRunStatus("cancelled", now);
    });
  }

  /** Derives the run's status from its contacts and records it. */
  refreshStatus(now: number): RunStatus {
    const run = this.store.run()!;
    if (FINISHED_RUN_STATUSES.includes(run.status)) return run.status;
    const byStatus = this.store.contactStatusCounts();
    const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
    const finished = CONTACT.terminal.reduce((sum, s) => sum + (byStatus[s] ?? 0), 0);
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
