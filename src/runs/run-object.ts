import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { D1Batcher } from "../lib/d1-batcher";
import { issuesToDetails } from "../lib/validate";
import { ACTION_PARAMS, canonicalJson, paramsDigest, RECIPIENT_FIELDS } from "./actions";
import { FINISHED_RUN_STATUSES } from "./machine";
import { mirrorRun } from "./mirror";
import { trySend } from "../webhooks/dispatch";
import { Proposer } from "./proposals";
import { LEASE_MS, RunEngine, retryDelay } from "./run-engine";
import { actionKey, RunStore } from "./run-store";
import type { ContactSnapshot, RunSpec } from "./spec";
import { bulkOutcome, invalidProposal, missing, repeat, type BulkItem, type BulkOutcome, type DecisionInput, type DecisionResult } from "./decisions";
import { runSummary, runView, toActionJson, withSendEstimates, type ContactsPage } from "./views";

/** While approvals keep arriving, the D1 mirror is written at most this often. */
const MIRROR_BATCH_MS = 1000;
/** Outbox entries (webhook events, inbox changes) one mirror write copies to D1; a longer outbox takes more writes, at once. */
const OUTBOX_PER_MIRROR = 200;
const DAY_MS = 24 * 60 * 60 * 1000;

/** One run: its contacts, their steps and actions, woken by alarms (STYLE.md). */
export class RunObject extends DurableObject<Env> {
  readonly #store: RunStore;
  readonly #engine: RunEngine;
  readonly #proposer: Proposer;
  /** The alarm pass under way: the next one waits for it. */
  #pass: Promise<void> = Promise.resolve();
  /**
   * The alarm as this object last set it: setting it costs a storage write, so an unchanged
   * time is not written again. Unknown (undefined) until this instance first sets it.
   */
  #alarmAt: number | null | undefined;
  /** Approvals executing in this object right now, and when the mirror was last written. */
  #deciding = 0;
  #mirroredAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#store = new RunStore(ctx.storage);
    // Issued in the same turn as the lease it covers, so the two are written together.
    this.#engine = new RunEngine(this.#store, env, (at) => this.#armBy(at), new D1Batcher(env.DB));
    this.#proposer = new Proposer(this.#store, env, (at) => this.#armBy(at));
  }

  /** Starts the run; a second start of the same run (a redelivered message) proposes nothing new. */
  async start(spec: RunSpec): Promise<{ started: boolean }> {
    if (this.#store.run()) {
      await this.#settle();
      return { started: false };
    }
    this.#store.migrate();
    this.#store.createRun(spec, Date.now());
    await this.#settle(true);
    return { started: true };
  }

  /**
   * Advances whatever is due (executions first, then proposals), mirrors the run to D1, and
   * sets the next alarm. Passes never overlap, even when one is invoked directly while
   * another is under way: each waits for the one before it.
   */
  override alarm(): Promise<void> {
    // Before anything else: should this pass die anywhere, the run wakes again.
    const watchdog = this.#setAlarm(Date.now() + LEASE_MS);
    const pass = this.#pass.then(() => watchdog).then(() => this.#advance());
    this.#pass = pass.catch(() => {});
    return pass;
  }

  async #advance(): Promise<void> {
    const run = this.#store.run();
    // Never started: what a stop signal kept for it is not needed any more.
    if (!run) return this.destroy();
    const now = Date.now();
    // A finished run only settles actions an earlier attempt may have sent; it proposes nothing.
    const executed = await this.#engine.executeDue(now);
    const proposed = FINISHED_RUN_STATUSES.includes(run.status) ? { handled: 0, more: false } : await this.#proposer.proposeDue(now);
    const more = executed.more || proposed.more;
    if (executed.handled + proposed.handled > 0) {
      this.#engine.refreshStatus(Date.now());
      this.#store.touch();
    }
    await this.#mirror();
    await this.#schedule(more);
  }

  /** One page of the run for the API: null when the run is not this workspace's or has not started. */
  async view(workspaceId: string, page: ContactsPage) {
    const run = this.#store.run();
    if (!run || run.spec.workspaceId !== workspaceId) return null;
    return withSendEstimates(this.env.DB, this.#store.sql, run.spec, runView(this.#store, run, page));
  }

  async approve(workspaceId: string, contactId: string, index: number, input: DecisionInput): Promise<DecisionResult> {
    const found = this.#decidable(workspaceId, contactId, index, input.digest);
    if (!found.ok) return found.result;
    const { action } = found;
    if (action.status !== "pending_approval") return repeat(action, "approve");

    // What is approved must be a valid action of its type, edited or not (a template can
    // render an empty body). Validated, not normalised: trims would rewrite untouched fields.
    const readdressed = RECIPIENT_FIELDS.filter((f) => input.params && f in input.params && input.params[f] !== action.params[f]);
    if (readdressed.length > 0) {
      const details = readdressed.map((f) => ({ path: `params.${f}`, message: "The recipient is the run's contact and cannot be edited" }));
      return { ok: false, status: 400, code: "validation_error", message: "Edits may not change who the action is for", details };
    }
    const params = input.params ? { ...action.params, ...input.params } : action.params;
    const parsed = ACTION_PARAMS[action.type].safeParse(params);
    if (!parsed.success) {
      const message = input.params ? `Edited params are not a valid ${action.type}` : `The proposed params are not a valid ${action.type}; send corrected params`;
      return { ok: false, status: 400, code: "validation_error", message, details: issuesToDetails(parsed.error.issues, ["params"]) };
    }
    const edited = canonicalJson(params) !== canonicalJson(action.params);
    const digest = edited ? await paramsDigest(params) : action.digest;

    const now = Date.now();
    const decision = { kind: "approve" as const, by_key_id: input.keyId, reason: input.reason ?? null, edited };
    const won = this.#store.moveAction(contactId, index, "approved", { params, originalParams: edited ? action.params : null, digest, decidedAt: now, decision });
    if (!won) return repeat(this.#store.action(contactId, index)!, "approve");

    this.#deciding++;
    try {
      await this.#engine.execute(this.#store.action(contactId, index)!, now);
    } finally {
      this.#deciding--;
      // Even if execution failed, the alarm is set to retry it.
      await this.#settle();
    }
    // Approved, but the contact left before it went out, or the send failed: no success.
    return repeat(this.#store.action(contactId, index)!, "approve");
  }

  /**
   * Decides many actions of this run at once (POST /v1/approvals/decide): each item as the
   * single decision would answer it, all in one storage transaction; then the approved ones
   * are carried out together (RunEngine.executeMany). A dry run moves nothing.
   */
  async decideMany(workspaceId: string, kind: "approve" | "reject", items: BulkItem[], input: { keyId: string; reason?: string; dryRun: boolean }): Promise<BulkOutcome[]> {
    const run = this.#store.run();
    if (run?.spec.workspaceId !== workspaceId) return items.map((item) => ({ ...item, status: "not_found", code: "not_found", message: "No such run, or it has not started yet" }));
    const now = Date.now();
    const decision = { kind, by_key_id: input.keyId, reason: input.reason ?? null, edited: false };
    // The workspace was checked once above; every item's action is read at once, and moved at once.
    const named = this.#store.actionsAt(items);
    const to = kind === "approve" ? "approved" : "rejected";
    const outcomes = this.#store.atomically(() => {
      const decidable: BulkItem[] = [];
      const answered = items.map((item): BulkOutcome | null => {
        const found = this.#checked(item.contactId, item.index, item.digest, named.get(actionKey(item)) ?? null);
        if (!found.ok) return bulkOutcome(item, found.result, found.action?.status);
        const { action } = found;
        if (action.status !== "pending_approval") return bulkOutcome(item, repeat(action, kind), action.status);
        const invalid = kind === "approve" ? invalidProposal(action) : null;
        if (invalid) return bulkOutcome(item, invalid, action.status);
        decidable.push(item);
        return null;
      });
      if (!input.dryRun) for (const action of this.#store.moveActions(decidable, to, { decidedAt: now, decision })) named.set(actionKey(action), action);
      const moved = new Set(decidable.map(actionKey).filter((key) => input.dryRun || named.get(key)!.status === to));
      if (kind === "reject" && !input.dryRun) for (const key of moved) this.#engine.stopContact(named.get(key)!.contactId, "rejected");
      return items.map((item, i): BulkOutcome => {
        if (answered[i]) return answered[i];
        if (moved.has(actionKey(item))) return { ...item, status: to };
        const current = this.#store.action(item.contactId, item.index)!;
        return bulkOutcome(item, repeat(current, kind), current.status);
      });
    });
    if (input.dryRun) return outcomes;
    // As they stand now: the ones just approved as the move left them, the others as read.
    const approved = outcomes.filter((o) => o.status === "approved");
    this.#deciding++;
    try {
      await this.#engine.executeMany(approved.map((o) => named.get(actionKey(o))!), now);
    } finally {
      this.#deciding--;
      await this.#settle();
    }
    // Approved and carried out (or on its way): the status it has now.
    const after = this.#store.statusesAt(approved);
    return outcomes.map((o) => (o.status === "approved" ? { ...o, status: after.get(actionKey(o))! } : o));
  }

  async reject(workspaceId: string, contactId: string, index: number, input: DecisionInput): Promise<DecisionResult> {
    const found = this.#decidable(workspaceId, contactId, index, input.digest);
    if (!found.ok) return found.result;
    const decision = { kind: "reject" as const, by_key_id: input.keyId, reason: input.reason ?? null, edited: false };
    if (!this.#store.moveAction(contactId, index, "rejected", { decidedAt: Date.now(), decision })) return repeat(this.#store.action(contactId, index)!, "reject");
    this.#engine.stopContact(contactId, "rejected");
    await this.#settle();
    return { ok: true, action: toActionJson(this.#store.action(contactId, index)!) };
  }

  /** The action a decision names, with its digest checked whatever its status (CONTRACT.md section 8). */
  #decidable(workspaceId: string, contactId: string, index: number, digest: string | undefined) {
    if (this.#store.run()?.spec.workspaceId !== workspaceId) return { ok: false as const, result: missing("run") };
    return this.#checked(contactId, index, digest);
  }

  /** The action (read unless given), its digest checked: a refusal carries the action when there is one. */
  #checked(contactId: string, index: number, digest: string | undefined, action = this.#store.action(contactId, index)) {
    if (!action) return { ok: false as const, result: missing("action") };
    if (digest !== undefined && digest !== action.digest) {
      const result: DecisionResult = { ok: false, status: 409, code: "digest_mismatch", message: `The action's digest is ${action.digest}; it changed since you looked` };
      return { ok: false as const, result, action };
    }
    return { ok: true as const, action };
  }

  /**
   * Stop conditions for contacts of this run: reply, unsubscribe, bounce, deletion. They
   * stop the sequence whatever the playbook's `stop_on`; before the run starts they are
   * kept and applied when it does.
   */
  async stopContacts(signals: { contactId: string; reason: string }[]): Promise<number> {
    const run = this.#store.run();
    if (!run) {
      this.#store.migrate();
      for (const { contactId, reason } of signals) this.#store.rememberStop(contactId, reason);
      // Cleared a day later if the run never starts (cancelled, failed or deleted while queued).
      if ((await this.ctx.storage.getAlarm()) === null) await this.#setAlarm(Date.now() + DAY_MS);
      return 0;
    }
    if (FINISHED_RUN_STATUSES.includes(run.status)) return 0;
    const stopped = signals.filter(({ contactId, reason }) => this.#engine.stopContact(contactId, reason)).length;
    if (stopped > 0) await this.#settle();
    return stopped;
  }

  /** New details of contacts of this run: actions written for an old address are proposed again. */
  async contactsChanged(changes: { contactId: string; snapshot: ContactSnapshot }[]): Promise<number> {
    const run = this.#store.run();
    if (!run || FINISHED_RUN_STATUSES.includes(run.status)) return 0;
    const changed = changes.filter(({ contactId, snapshot }) => this.#engine.contactChanged(contactId, snapshot)).length;
    if (changed > 0) await this.#settle(true);
    return changed;
  }

  /** Cancels the run and answers its summary; null when it has not started, or has finished. */
  async cancel(workspaceId: string) {
    const run = this.#store.run();
    if (!run || run.spec.workspaceId !== workspaceId || FINISHED_RUN_STATUSES.includes(run.status)) return null;
    this.#engine.cancel(Date.now());
    this.#store.touch();
    // The alarm first, so the mirror and the cancel's events are written even if this call dies.
    await this.#schedule();
    // Run lists read D1: a cancel shows there at once (and is retried by the alarm if D1 fails).
    await this.#mirror();
    await this.#schedule();
    return runSummary(this.#store, this.#store.run()!);
  }

  /** Forgets the run entirely: its deletion with the agent. */
  async destroy(): Promise<void> {
    this.#alarmAt = undefined;
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.#store.forget();
  }

  /** Records the run's status and wakes the object for what is due, its D1 mirror included. No outside call. */
  async #settle(workRemains = false): Promise<void> {
    this.#engine.refreshStatus(Date.now());
    this.#store.touch();
    await this.#schedule(workRemains);
  }

  async #schedule(workRemains = false): Promise<void> {
    const now = Date.now();
    const times = [workRemains ? now : this.#store.nextWakeAt(), this.#mirrorAt(now)].filter((t) => t !== null);
    if (times.length === 0) await this.#setAlarm(null);
    else await this.#setAlarm(Math.max(Math.min(...times), now));
  }

  #setAlarm(at: number | null): Promise<void> {
    if (at === this.#alarmAt) return Promise.resolve();
    this.#alarmAt = at;
    return at === null ? this.ctx.storage.deleteAlarm() : this.ctx.storage.setAlarm(at);
  }

  /**
   * Makes sure the object wakes by `at`: called in the same turn as the lease it covers, so
   * the lease and the alarm are written together, before any outside call.
   */
  #armBy(at: number): Promise<void> {
    if (typeof this.#alarmAt === "number" && this.#alarmAt <= at) return Promise.resolve();
    return this.#setAlarm(at);
  }

  /**
   * When to write the D1 mirror: as soon as it is behind (its summary or outbox not yet
   * copied), except while approvals keep arriving, when one write a second carries them all.
   */
  #mirrorAt(now: number): number | null {
    const { version, mirrorSeq, retryAt } = this.#store.mirrorState();
    if (version <= mirrorSeq && this.#store.outbox.isEmpty()) return null;
    const due = retryAt ?? 0;
    return this.#deciding > 0 ? Math.max(due, this.#mirroredAt + MIRROR_BATCH_MS) : Math.max(due, now);
  }

  /**
   * Copies the run's summary and its outbox (webhook events, inbox changes) to D1 when either is behind, then
   * hands the deliveries that made to the webhooks queue. A failed write is retried with
   * backoff by the alarm; an event is forgotten here only once D1 holds it.
   */
  async #mirror(): Promise<void> {
    const state = this.#store.mirrorState();
    const behind = state.version > state.mirrorSeq;
    const run = this.#store.run();
    if (!run || (state.retryAt ?? 0) > Date.now()) return;
    const { upTo, ...outbox } = this.#store.outbox.pending(run.spec.workspaceId, OUTBOX_PER_MIRROR);
    if (!behind && upTo === 0) return;
    let mirrored;
    try {
      mirrored = await mirrorRun(this.env.DB, this.#store, behind ? state.version : null, outbox);
    } catch (error) {
      const failures = state.failures + 1;
      console.error(JSON.stringify({ level: "warn", message: "run mirror failed", run_id: run.spec.runId, failures, error: String(error) }));
      // It keeps trying, at most every 15 minutes: a D1 row left behind would misreport the run.
      this.#store.mirrorFailed(Date.now() + retryDelay(failures));
      return;
    }
    this.#store.outbox.clear(upTo);
    if (behind) this.#store.mirrored(state.version);
    this.#mirroredAt = Date.now();
    await trySend(this.env, async () => mirrored.claimed, { run_id: run.spec.runId });
    if (mirrored.outcome === "written") return;
    // Cancelled or failed in D1 while this run was starting, or deleted with its agent: stop here too.
    this.#engine.cancel(Date.now());
    // D1 announced that end itself, when it moved the row out of `queued` (runs_unstarted_event),
    // and took none of this object's events (insertEvents): it tells no more of this run.
    if (mirrored.outcome !== "deleted") this.#store.outbox.discardEvents();
    this.#store.touch();
    // A deleted or abandoned row takes no more writes; a cancelled one takes the cancelled summary next.
    if (mirrored.outcome !== "cancelled") this.#store.mirrored(this.#store.mirrorState().version);
  }
}
