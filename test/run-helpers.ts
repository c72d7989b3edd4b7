import { listDurableObjectIds } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { expect, vi } from "vitest";
import { createDb } from "../src/db/client";
import { runContacts, runs } from "../src/db/schema";
import { newId } from "../src/lib/ids";
import { api, makeAgent, makeWorkspace, type Json } from "./helpers";

let batchCounter = 0;

/** `n` (1-1000) new contacts in one batch request, `extra(i)` merged into the i-th; returned in order. */
export async function makeContacts(key: string, n: number, extra: (i: number) => Json = () => ({})): Promise<Json[]> {
  const tag = `${++batchCounter}-${crypto.randomUUID().slice(0, 8)}`;
  const contacts = Array.from({ length: n }, (_, i) => ({ email: `c${i}-${tag}@run.example`, first_name: `C${i}`, ...extra(i) }));
  const res = await api("/v1/contacts/batch", { method: "POST", key, body: { contacts } });
  expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);
  return res.body.contacts;
}

export const trigger = (key: string, agentId: string, body: Json = {}, headers?: Record<string, string>) =>
  api(`/v1/agents/${agentId}/trigger`, { method: "POST", key, body, headers });

/** GET /v1/agents/runs/:runId, asserted 200; the run with its contacts. */
export async function getRun(key: string, runId: string): Promise<Json> {
  const res = await api(`/v1/agents/runs/${runId}`, { key });
  expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);
  return res.body.run;
}

/** The queue consumer has started the run. */
export const leftQueue = (run: Json) => run.status !== "queued";

/** Every contact's current step has been proposed (or the contact is done). */
export const proposed = (run: Json) => leftQueue(run) && (run.contacts as Json[]).every((c) => c.status !== "pending" && c.status !== "processing");

/**
 * Polls GET /v1/agents/runs/:runId until `until(run)` holds; the Queue and alarms run on
 * their own. Gives up after 10 s, so callers' tests need a longer timeout than vitest's 5 s.
 */
export async function waitForRun(key: string, runId: string, until: (run: Json) => boolean = leftQueue): Promise<Json> {
  return vi.waitFor(
    async () => {
      const run = await getRun(key, runId);
      if (!until(run)) throw new Error(`run ${runId} is still ${run.status}`);
      return run;
    },
    { timeout: 10_000, interval: 50 },
  );
}

/** Triggers the agent (asserting 200) and waits until `until(run)` holds: by default, the run has left `queued`. */
export async function triggerAndWait(key: string, agentId: string, body: Json = {}, until: (run: Json) => boolean = leftQueue) {
  const res = await trigger(key, agentId, body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const run = await waitForRun(key, res.body.run_id, until);
  return { runId: res.body.run_id as string, jobId: res.body.job_id as string, run };
}

/** Polls the run's D1 row (the mirror that run lists read) until `until(row)` holds. */
export async function waitForMirror(runId: string, until: (row: typeof runs.$inferSelect) => boolean) {
  return vi.waitFor(
    async () => {
      const row = await createDb(env.DB).query.runs.findFirst({ where: eq(runs.id, runId) });
      if (!row || !until(row)) throw new Error(`run ${runId}'s D1 row is ${row?.status ?? "missing"}`);
      return row;
    },
    { timeout: 10_000, interval: 50 },
  );
}

// What a trigger snapshots for an agent with capabilities ["notes"] and no steps.
const NOTE_SNAPSHOT = {
  playbook_md: "",
  steps: [{ id: "step_1", action: "create_note", require_approval: true }],
  stop_on: ["reply", "unsubscribe", "bounce"],
  llm_config: { provider: "builtin" },
  identity_id: null,
};

type Seed = { contacts?: number; enqueuedAt?: number; enqueueAttempts?: number };

/**
 * A run row written straight to D1 as the trigger writes it, but whose queue message was
 * never sent: the queue consumer and the reconciler can then be driven by hand.
 */
export async function seedQueuedRun(seed: Seed = {}) {
  const { key, workspaceId } = await makeWorkspace();
  const agent = await makeAgent(key, { capabilities: ["notes"] });
  const made = await makeContacts(key, seed.contacts ?? 2);
  const runId = newId("run");
  const now = Date.now();
  const db = createDb(env.DB);
  await db.batch([
    db
      .insert(runs)
      .values({
        id: runId,
        jobId: newId("job"),
        workspaceId,
        agentId: agent.id,
        status: "queued",
        trigger: "manual",
        contactCount: made.length,
        counts: { pending_approval: 0, approved: 0, rejected: 0, completed: 0, failed: 0 },
        agentSnapshot: NOTE_SNAPSHOT,
        createdAt: new Date(now),
        enqueuedAt: new Date(seed.enqueuedAt ?? now),
        enqueueAttempts: seed.enqueueAttempts ?? 1,
      }),
    db
      .insert(runContacts)
      .values(made.map((c, position) => ({ runId, position, contactId: c.id as string }))),
  ]);
  return { key, agent, runId, contactIds: made.map((c) => c.id as string) };
}

/** The run's D1 row. */
export const runRow = async (runId: string) => (await createDb(env.DB).query.runs.findFirst({ where: eq(runs.id, runId) }))!;
/** Ids of every run Durable Object created so far (a GET of a run creates its object too). */
export const objectIds = async () => (await listDurableObjectIds(env.RUNS)).map((id) => id.toString());
/** Whether the run's Durable Object has ever been created. */
export const hasObject = async (runId: string) => (await objectIds()).includes(env.RUNS.idFromName(runId).toString());
