/**
 * Every status a run, a run's contact and an action can be in, and the moves between
 * them: the one source for the TypeScript unions, the API's zod enums and the OpenAPI
 * document. Stores write a status only through `sources(...)`: a compare-and-set from the
 * states that may move to it, so a write that lost a race changes nothing.
 */
function machine<const S extends string>(moves: { [K in S]: readonly NoInfer<S>[] }) {
  const statuses = Object.keys(moves) as [S, ...S[]];
  const terminal = statuses.filter((s) => moves[s].length === 0);
  return {
    statuses,
    terminal,
    /** Whether `from` may move to `to`. */
    /** The states that may move to `to`: the `WHERE status IN (...)` of its compare-and-set. */
    sources: (to: S) => statuses.filter((s) => moves[s].includes(to)),
    isTerminal: (s: S) => moves[s].length === 0,
  };
}

export const RUN = machine({
  queued: ["running", "cancelled", "failed"],
  running: ["awaiting_approval", "completed", "failed", "cancelled"],
  awaiting_approval: ["running", "completed", "failed", "cancelled"],
  completed: [],
  failed: [],
  cancelled: [],
});

export const CONTACT = machine({
  /** Due for its first step at `next_step_at`. */
  pending: ["processing", "stopped"],
  /** Between steps, due again at `next_step_at`. */
  waiting: ["processing", "stopped"],
  /** A proposal is being made (under a lease), or an approved action is being carried out. */
  processing: ["awaiting_approval", "processing", "pending", "waiting", "completed", "stopped", "failed"],
  awaiting_approval: ["processing", "pending", "stopped"],
  completed: [],
  stopped: [],
  failed: [],
});

export const ACTION = machine({
  pending_approval: ["approved", "rejected", "invalidated", "cancelled"],
  approved: ["running", "scheduled", "invalidated", "cancelled"],
  auto_approved: ["running", "scheduled", "invalidated", "cancelled"],
  /** Waiting for its time: the send window's next opening, or a retry's backoff. */
  scheduled: ["running", "scheduled", "invalidated", "cancelled"],
  /** Being carried out under a lease (`lease_until`); a lapsed lease may be taken again. */
  running: ["running", "completed", "scheduled", "failed", "invalidated", "cancelled"],
  completed: [],
  rejected: [],
  failed: [],
  cancelled: [],
  invalidated: [],
});

export type RunStatus = (typeof RUN.statuses)[number];
export type ContactStatus = (typeof CONTACT.statuses)[number];
export type ActionStatus = (typeof ACTION.statuses)[number];

export const RUN_STATUSES = RUN.statuses;
export const ACTIVE_RUN_STATUSES: RunStatus[] = RUN.statuses.filter((s) => !RUN.isTerminal(s));
export const FINISHED_RUN_STATUSES: RunStatus[] = RUN.terminal;

/** Why a contact's sequence ended, as `stop_reason` shows it. */
export const STOP_REASONS = ["reply", "unsubscribe", "bounce", "contact_deleted", "rejected", "cancelled", "error"] as const;
export type StopReason = (typeof STOP_REASONS)[number];

/** Actions a stop or a cancel takes back at once, when no execution of them was ever tried. */
export const UNDONE: ActionStatus[] = ["pending_approval", "approved", "auto_approved", "scheduled"];
/** Actions still on their way: a run is not finished while any is. */
export const OPEN_ACTIONS: ActionStatus[] = ["approved", "auto_approved", "scheduled", "running"];

/** The run's `counts`: each action status lands in one bucket, and the buckets add up. */
export const COUNT_BUCKET: Record<ActionStatus, keyof RunCounts> = {
  pending_approval: "pending_approval",
  approved: "approved",
  auto_approved: "approved",
  scheduled: "approved",
  running: "approved",
  completed: "completed",
  rejected: "rejected",
  failed: "failed",
  cancelled: "cancelled",
  invalidated: "invalidated",
};
export type RunCounts = {
  pending_approval: number;
  approved: number;
  rejected: number;
  completed: number;
  failed: number;
  invalidated: number;
  cancelled: number;
};
export const emptyCounts = (): RunCounts => ({ pending_approval: 0, approved: 0, rejected: 0, completed: 0, failed: 0, invalidated: 0, cancelled: 0 });
