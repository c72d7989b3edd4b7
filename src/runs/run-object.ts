import { DurableObject } from "cloudflare:workers";
import { FINISHED_RUN_STATUSES } from "../db/schema";
import type { Env } from "../env";
import type { ErrorDetail } from "../lib/errors";
import { issuesToDetails } from "../lib/validate";
import { ACTION_PARAMS, canonicalJson, paramsDigest, type ActionParams } from "./actions";
import { mirrorRun } from "./mirror";
import { RunEngine } from "./run-engine";
import { RunStore, type ActionRow } from "./run-store";
import type { RunSpec } from "./spec";
import { toActionJson, toContactProgress, type ActionJson } from "./views";

export type DecisionInput = { keyId: string; reason?: string; params?: ActionParams; digest?: string };
export type DecisionResult =
  | { ok: true; action: ActionJson }
  | { ok: false; status: 400 | 404 | 409; code: string; message: string; details?: ErrorDetail[] };

/** Params that say who an action reaches: stop checks follow the contact, so these stay put. */
const RECIPIENT_FIELDS = ["to", "profile_url", "contact_id"];

/** One run: its contacts, their steps and actions, woken by alarms (STYLE.md). */
export class RunObject extends DurableObject<Env> {
  readonly #store: RunStore;
  readonly #engine: RunEngine;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#store = new RunStore(ctx.storage.sql);
    this.#engine = new RunEngine(this.#store, env);
    void ctx.blockConcurrencyWhile(async () => this.#store.migrate());
  }

  /** Starts the run; a second start of the same run (a redelivered message) proposes nothing new. */
  async start(spec: RunSpec): Promise<{ started: boolean }> {
    if (this.#store.run()) {
      // A first start that failed after storing the run (say, D1 refused the mirror) left no
      // alarm and a stale D1 row: the retried message finishes it.
      await this.#settle();
      return { started: false };
    }
    this.#store.createRun(spec, Date.now());
    await this.#settle(true);
    return { started: true };
  }

  /** Advances whatever is due (executions first, then proposals), then sets the next alarm. */
  override async alarm(): Promise<void> {
    const run = this.#store.run();
    if (!run || FINISHED_RUN_STATUSES.includes(run.status)) return;
    const now = Date.now();
    const moreActions = await this.#engine.executeDue(now);
    const moreContacts = await this.#engine.proposeDue(now);
    await this.#settle(moreActions || moreContacts);
  }

  view() {
    const run = this.#store.run();
    if (!run) return null;
    const actions = Map.groupBy(this.#store.allActions(), (a) => a.contactId);
    return {
      status: run.status,
      counts: this.#store.counts(),
      started_at: run.startedAt,
      completed_at: run.completedAt,
      error: run.error,
      contacts: this.#store.contacts().map((c) => toContactProgress(run.spec, c, actions.get(c.contactId) ?? [])),
    };
  }

  async approve(contactId: string, index: number, input: DecisionInput): Promise<DecisionResult> {
    const action = this.#store.action(contactId, index);
    if (!action) return missing();
    if (action.status !== "pending_approval") return repeat(action, "approve");
    if (input.digest !== undefined && input.digest !== action.digest) {
      return { ok: false, status: 409, code: "digest_mismatch", message: `The action's digest is ${action.digest}; it changed since you looked` };
    }

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
    const won = this.#store.transitionAction(contactId, index, ["pending_approval"], "approved", {
      params,
      originalParams: edited ? action.params : null,
      digest,
      decidedAt: now,
      decision,
    });
    if (!won) return repeat(this.#store.action(contactId, index)!, "approve");

    try {
      await this.#engine.execute(this.#store.action(contactId, index)!, now);
    } finally {
      // Even if execution failed, the alarm is set to retry it and D1 hears of the decision.
      await this.#settle();
    }
    return { ok: true, action: toActionJson(this.#store.action(contactId, index)!) };
  }

  async reject(contactId: string, index: number, input: DecisionInput): Promise<DecisionResult> {
    const action = this.#store.action(contactId, index);
    if (!action) return missing();
    const now = Date.now();
    const won = this.#store.transitionAction(contactId, index, ["pending_approval"], "rejected", {
      decidedAt: now,
      decision: { kind: "reject", by_key_id: input.keyId, reason: input.reason ?? null, edited: false },
    });
    if (!won) return repeat(this.#store.action(contactId, index)!, "reject");
    this.#engine.stopContact(contactId, "rejected");
    await this.#settle();
    return { ok: true, action: toActionJson(this.#store.action(contactId, index)!) };
  }

  /** Stop conditions (reply, unsubscribe, bounce) for contacts of this run, where the playbook stops on them. */
  async stopContacts(signals: { contactId: string; reason: string }[]): Promise<number> {
    const run = this.#store.run();
    if (!run || FINISHED_RUN_STATUSES.includes(run.status)) return 0;
    const stopped = signals.filter(({ contactId, reason }) => run.spec.stopOn.includes(reason) && this.#engine.stopContact(contactId, reason)).length;
    if (stopped > 0) await this.#settle();
    return stopped;
  }

  async cancel(): Promise<{ cancelled: boolean }> {
    const run = this.#store.run();
    if (!run || FINISHED_RUN_STATUSES.includes(run.status)) return { cancelled: false };
    this.#engine.cancel(Date.now());
    await this.#settle();
    return { cancelled: true };
  }

  /** Forgets the run entirely: its deletion with the agent. */
  async destroy(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.#store.migrate();
  }

  /** Records the run's status, mirrors it to D1 and sets the next alarm. */
  async #settle(workRemains = false): Promise<void> {
    const now = Date.now();
    let status = this.#engine.refreshStatus(now);
    const outcome = await mirrorRun(this.env.DB, this.#store);
    if (outcome !== "written") {
      // Cancelled in D1 while this run was starting, or deleted with its agent: stop here too.
      this.#engine.cancel(now);
      status = "cancelled";
      if (outcome === "cancelled") await mirrorRun(this.env.DB, this.#store);
    }
    if (FINISHED_RUN_STATUSES.includes(status)) {
      await this.ctx.storage.deleteAlarm();
      return;
    }
    const wake = workRemains ? now : this.#store.nextWakeAt();
    if (wake === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(wake, now));
  }
}

const missing = (): DecisionResult => ({ ok: false, status: 404, code: "not_found", message: "No such action" });

/** Deciding an action again: the same decision is answered with the action, the other is a conflict. */
function repeat(action: ActionRow, kind: "approve" | "reject"): DecisionResult {
  const autoApproved = action.decision === null && AUTO_PATH.includes(action.status);
  const same = kind === "approve" ? action.decision?.kind === "approve" || autoApproved : action.decision?.kind === "reject";
  if (same) return { ok: true, action: toActionJson(action) };
  return { ok: false, status: 409, code: "action_not_pending", message: `The action is ${action.status}; it can no longer be ${kind === "approve" ? "approved" : "rejected"}` };
}

/** Statuses an action reaches without a human decision when its step needs no approval. */
const AUTO_PATH = ["auto_approved", "scheduled", "running", "completed"];
