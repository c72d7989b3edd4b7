import type { Env } from "../env";
import type { D1Batcher } from "../lib/d1-batcher";
import { addressedElsewhere, reachesPerson, type ActionParams } from "./actions";
import { claimEmails } from "./email-claims";
import { executeAction, ExecutionError, findDone, giveUpDelivery, type Execution } from "./executors";
import { CONTACT, FINISHED_RUN_STATUSES, UNDONE, type RunStatus } from "./machine";
import { actionKey, stepWait, type ActionRow, type RunStore } from "./run-store";
import { inWindow, nextOpening } from "./send-window";
import type { ContactSnapshot, RunPlan } from "./spec";
import { messageOf } from "../lib/errors";

/** How many actions one alarm pass executes before it hands over to the next. */
export const ACTIONS_PER_ALARM = 20;
/** How long an execution or a proposal holds its action or contact before another may take it. */
export const LEASE_MS = 60_000;
/** Executions and proposals are tried this many times, then fail with their last error. */
export const MAX_ATTEMPTS = 5;
/** 15 s, 30 s, 1 min, 2 min ... at most 15 minutes. */
export const retryDelay = (attempts: number) => Math.min(15_000 * 2 ** Math.max(attempts - 1, 0), 15 * 60_000);

const CONTACT_CHANGED = "contact_changed: the contact's address changed; the step is proposed again";

/** Sets the object's alarm no later than `at`: called before any outside call, so a crash there still wakes the run. */
export type ArmBy = (at: number) => Promise<void>;

/** What one pass did: how many items it took, and whether more were due than it took. */
export type Progress = { handled: number; more: boolean };

/** An action taken for an attempt, and what the attempt came to. */
type Taken = { action: ActionRow; attempts: number };
type Tried = Taken & ({ outcome: Execution } | { error: unknown });

/** Contacts whose sequence is still going. */
const UNFINISHED = CONTACT.statuses.filter((s) => !CONTACT.isTerminal(s));

/** Undecided, or decided but never tried: certainly not sent, so safe to take back. */
const untried = (a: ActionRow) => UNDONE.includes(a.status) && a.attempts === 0;

/** The playbook engine: executes, stops and moves contacts along, one safe step at a time (proposals: proposals.ts). */
export class RunEngine {
  constructor(
    private readonly store: RunStore,
    private readonly env: Env,
    private readonly armBy: ArmBy,
    private readonly writes: D1Batcher,
  ) {}

  /** Carries out approved actions that are due, together. */
  async executeDue(now: number): Promise<Progress> {
    const due = this.store.dueActions(now, ACTIONS_PER_ALARM + 1);
    const batch = due.slice(0, ACTIONS_PER_ALARM);
    await this.executeMany(batch, now);
    return { handled: batch.length, more: due.length > ACTIONS_PER_ALARM };
  }

  /** Executes one approved action: executeMany of one. */
  execute(action: ActionRow, now: number): Promise<void> {
    return this.executeMany([action], now);
  }

  /**
   * Executes approved actions under a lease, each at most once, then moves their contacts to
   * the next step. All are taken in one transaction and the alarm covering their lease is set
   * in the same turn, before any outside call; the emails among them claim their sends in one
   * D1 statement (email-claims.ts); every outcome is recorded in one transaction. A failure
   * is retried with backoff; every take counts as an attempt.
   */
  async executeMany(actions: ActionRow[], now: number): Promise<void> {
    const run = this.store.run()!;
    const window = run.spec.sender?.send_window;
    // Outside the send window, what reaches a person waits for its next opening.
    const opening = window && !inWindow(window, now) ? nextOpening(window, now) : null;
    const leaseUntil = now + LEASE_MS;
    const unsent: [ActionRow, string | null][] = [];
    const taken = this.store.atomically(() => {
      const contacts = this.store.contactsAt(actions.map((a) => a.contactId));
      const ready = new Map<string, ActionRow>();
      for (const action of actions) {
        const { contactId, index } = action;
        // Its contact or its run ended, or its attempts are spent: it is not sent again, only settled.
        const contact = contacts.get(contactId)!;
        if (CONTACT.isTerminal(contact.status) || FINISHED_RUN_STATUSES.includes(run.status) || action.attempts >= MAX_ATTEMPTS) {
          unsent.push([action, contact.stopReason ?? (FINISHED_RUN_STATUSES.includes(run.status) ? "cancelled" : null)]);
        } else if (opening !== null && reachesPerson(action.type)) {
          this.store.moveAction(contactId, index, "scheduled", { scheduledFor: opening, leaseUntil: null }, { from: ["approved", "auto_approved", "scheduled", "running"] });
          this.store.moveContact(contactId, "processing", { nextStepAt: opening }, ["awaiting_approval", "processing"]);
        } else ready.set(actionKey(action), action);
      }
      // Each taken for its next attempt, counted on its own.
      const moves = [...ready.values()].map((a) => ({ contactId: a.contactId, index: a.index, fields: { attempts: a.attempts + 1 } }));
      const moved = this.store.moveActions(moves, "running", { leaseUntil }, { now });
      this.store.moveContacts(moved.map((a) => a.contactId), "processing", { nextStepAt: null }, ["awaiting_approval", "processing"]);
      return moved.map((m): Taken => ({ action: ready.get(actionKey(m))!, attempts: m.attempts }));
    });
    await Promise.all([...unsent.map(([action, reason]) => this.#settleUnsent(action, now, reason)), this.#attempt(run.spec, taken, leaseUntil)]);
  }

  /** The outside calls of the actions taken, then their outcomes, recorded together. */
  async #attempt(spec: RunPlan, taken: Taken[], leaseUntil: number): Promise<void> {
    if (taken.length === 0) return;
    await this.armBy(leaseUntil);
    const emails = taken.filter((t) => t.action.type === "email_message").map((t) => t.action);
    const claims = emails.length > 0 && spec.sender ? claimEmails(this.env, this.writes, spec, emails) : undefined;
    // Each email's execution answers its claim's failure; none is left unhandled.
    claims?.catch(() => undefined);
    const tried = await Promise.all(
      taken.map(async (t): Promise<Tried> => {
        try {
          return { ...t, outcome: await executeAction(this.env, this.writes, spec, t.action, claims) };
        } catch (error) {
          return { ...t, error };
        }
      }),
    );
    // Frees a later day's slot an email given up on held; should that write fail, the slot stays taken, which only errs on the side of sending less.
    const givenUp = tried.flatMap((t) => ("error" in t && !this.#retries(t.attempts, t.error) ? [t] : []));
    await Promise.all(givenUp.map((t) => giveUpDelivery(this.env, spec, t.action, messageOf(t.error)).catch(() => undefined)));
    this.store.atomically(() => {
      const done = tried.flatMap((t) => ("outcome" in t && t.outcome.kind === "done" ? [{ contactId: t.action.contactId, index: t.action.index, result: t.outcome.result }] : []));
      this.#completeAll(done);
      for (const t of tried) if (!("outcome" in t && t.outcome.kind === "done")) this.#record(t);
    });
  }

  #retries(attempts: number, error: unknown): boolean {
    return !(error instanceof ExecutionError && error.permanent) && attempts < MAX_ATTEMPTS;
  }

  /** What one attempt came to: tried again later, failed, waiting for a day, stopped, or done. */
  #record(tried: Tried): void {
    const { action, attempts } = tried;
    const { contactId, index } = action;
    if ("error" in tried) {
      const { error } = tried;
      if (!this.#retries(attempts, error)) return this.#fail(contactId, index, messageOf(error));
      const wait = Math.max(retryDelay(attempts), (error instanceof ExecutionError && error.retryAfterMs) || 0);
      this.store.moveAction(contactId, index, "scheduled", { scheduledFor: Date.now() + wait, leaseUntil: null, error: messageOf(error) }, { from: ["running"] });
      return;
    }
    const { outcome } = tried;
    if (outcome.kind === "deferred") {
      // Today's sends of the identity are spent: the action waits for the day whose slot it holds.
      // Waiting for a day is not a failed try: the attempt is handed back, keeping one as the mark
      // that a slot is held (a stop then settles the action, which gives the slot back).
      const kept = Math.max(action.attempts, 1);
      this.store.moveAction(contactId, index, "scheduled", { scheduledFor: outcome.at, leaseUntil: null, error: null, attempts: kept }, { from: ["running"] });
      this.store.moveContact(contactId, "processing", { nextStepAt: outcome.at }, ["processing"]);
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
    this.#completeAll([{ contactId, index, result: outcome.result }]);
  }

  /** Records actions done (each with its result), and moves their contacts to the next step. */
  #completeAll(done: { contactId: string; index: number; result: ActionParams }[]): void {
    const now = Date.now();
    const moves = done.map(({ contactId, index, result }) => ({ contactId, index, fields: { result } }));
    const completed = this.store.moveActions(moves, "completed", { executedAt: now, leaseUntil: null, error: null }, { from: ["running"] });
    this.#nextSteps(completed.map((a) => a.contactId), now);
  }

  #fail(contactId: string, index: number, error: string): void {
    this.store.atomically(() => {
      if (this.store.moveAction(contactId, index, "failed", { leaseUntil: null, error }, { from: ["running"] })) {
        this.store.moveContact(contactId, "failed", { stopReason: "error" }, ["processing"]);
      }
    });
  }

  /**
   * An action an earlier attempt may have delivered, that must not be tried again: recorded
   * `completed` if that attempt got through, otherwise ended (`invalidated` or `cancelled`
   * when its contact or run stopped, `failed` when its attempts ran out). Never sends.
   */
  async #settleUnsent(action: ActionRow, now: number, stopReason: string | null): Promise<void> {
    const spec = this.store.plan();
    const { contactId, index } = action;
    const attempts = action.attempts + 1;
    if (!this.store.moveAction(contactId, index, "running", { leaseUntil: now + LEASE_MS, attempts }, { now })) return;
    await this.armBy(now + LEASE_MS);
    let done;
    try {
      done = await findDone(this.env, spec, action);
    } catch (error) {
      // Asked a bounded number of times too; then it is given up as failed, unconfirmed.
      if (attempts < MAX_ATTEMPTS + 3) this.store.moveAction(contactId, index, "scheduled", { scheduledFor: Date.now() + retryDelay(attempts), leaseUntil: null }, { from: ["running"] });
      else this.#fail(contactId, index, `Could not confirm whether it was delivered: ${messageOf(error)}`);
      return;
    }
    if (done && "done" in done) return this.#completeAll([{ contactId, index, result: done.done }]);
    if (done) return this.#fail(contactId, index, done.unconfirmed);
    if (stopReason === null) return this.#fail(contactId, index, action.error ?? `Not sent after ${action.attempts} attempts`);
    const to = stopReason === "cancelled" ? "cancelled" : "invalidated";
    this.store.moveAction(contactId, index, to, { leaseUntil: null, error: `Not sent: ${stopReason}` }, { from: ["running"] });
  }

  /** Moves contacts on from their current step: to the next one's wait, or done. */
  #nextSteps(contactIds: string[], now: number): void {
    const spec = this.store.plan();
    const byNext = Map.groupBy([...this.store.contactsAt(contactIds).values()], (c) => c.currentStep + 1);
    for (const [next, contacts] of byNext) {
      const ids = contacts.map((c) => c.contactId);
      if (next >= spec.steps.length) this.store.moveContacts(ids, "completed", { currentStep: next, nextStepAt: null }, ["processing"]);
      else this.store.moveContacts(ids, "waiting", { currentStep: next, nextStepAt: now + stepWait(spec, next), attempts: 0 }, ["processing"]);
    }
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
      const actions = this.store.actionsOf(contactId);
      // Tried actions are left to the executor, which sends only to the current address.
      const stale = actions.filter((a) => untried(a) && addressedElsewhere(a, snapshot));
      const invalidated = stale.filter((a) => this.store.moveAction(contactId, a.index, "invalidated", { error: CONTACT_CHANGED }));
      // A proposal being written right now is for the old details: a new round drops it when it lands.
      const writing = contact.status === "processing" && !actions.some((a) => a.stepIndex === contact.currentStep && a.round === contact.round);
      if (invalidated.length > 0 || writing) this.#proposeAgain(contactId);
      return invalidated.length > 0 || writing;
    });
  }

  /** Ends a contact's sequence: what is not yet decided or started is invalidated (or cancelled). */
  stopContact(contactId: string, reason: string): boolean {
    return this.store.atomically(() => this.#stop(contactId, reason, "invalidated"));
  }

  #stop(contactId: string, reason: string, undone: "invalidated" | "cancelled"): boolean {
    if (!this.store.moveContact(contactId, "stopped", { stopReason: reason, nextStepAt: null, leaseUntil: null })) return false;
    if (reason === "contact_deleted") this.store.setSnapshot(contactId, null);
    // An action that was tried may have gone out: the executor settles it, without sending, and
    // at once when it was waiting (for a retry, or for a day's slot it holds, which it gives back).
    for (const action of this.store.actionsOf(contactId)) {
      if (untried(action)) this.store.moveAction(contactId, action.index, undone, undone === "invalidated" ? { error: `Not sent: ${reason}` } : {});
      else if (action.status === "scheduled") this.store.moveAction(contactId, action.index, "scheduled", { scheduledFor: Date.now() }, { from: ["scheduled"] });
    }
    return true;
  }

  /** Stops every unfinished contact and the run with them. */
  cancel(now: number): void {
    this.store.atomically(() => {
      // Finished contacts have nothing to stop: only the others are read.
      for (const contactId of this.store.contactIdsIn(UNFINISHED)) this.#stop(contactId, "cancelled", "cancelled");
      this.store.setRunStatus("cancelled", now);
    });
  }

  /** Derives the run's status from its contacts and records it. */
  refreshStatus(now: number): RunStatus {
    const run = this.store.run()!;
    if (FINISHED_RUN_STATUSES.includes(run.status)) return run.status;
    let status: RunStatus = this.store.anyContactIn(["awaiting_approval"]) ? "awaiting_approval" : "running";
    let error: string | null = null;
    if (!this.store.anyContactIn(UNFINISHED) && this.store.openActionCount() === 0) {
      const allFailed = !this.store.anyContactIn(["completed", "stopped"]) && this.store.anyContactIn(["failed"]);
      status = allFailed ? "failed" : "completed";
      if (allFailed) error = "Every contact failed; see each contact's actions";
    }
    if (status !== run.status || error) this.store.setRunStatus(status, now, error);
    return status;
  }
}
