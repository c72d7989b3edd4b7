import { createExecutionContext, createMessageBatch, getQueueResult, listDurableObjectIds, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { expect } from "vitest";
import worker from "../src/index";
import type { RunMessage } from "../src/env";
import type { RunObject } from "../src/runs/run-object";
import { createDb } from "../src/db/client";
import { runContacts, runs } from "../src/db/schema";
import { newId } from "../src/lib/ids";
import { emptyCounts } from "../src/runs/machine";
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

/** How many runs the agent has (the `total` of its run list). */
export const runCount = async (key: string, agentId: string) => (await api(`/v1/agents/${agentId}/runs`, { key })).body.total as number;

/** POST /v1/events with these events, asserted 201. */
export async function sendEvents(key: string, events: Json[]) {
  const res = await api("/v1/events", { method: "POST", key, body: { events } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

/** GET /v1/agents/runs/:runId, asserted 200; the run with its contacts. */
export async function getRun(key: string, runId: string, query = ""): Promise<Json> {
  const res = await api(`/v1/agents/runs/${runId}${query}`, { key });
  expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);
  return res.body.run;
}

/** Every contact of the run, following `contacts_next_offset` page by page. */
export async function allContacts(key: string, runId: string): Promise<Json[]> {
  const contacts: Json[] = [];
  for (let offset: number | null = 0; offset !== null; ) {
    const page = await getRun(key, runId, `?contacts_limit=1000&contacts_offset=${offset}`);
    contacts.push(...page.contacts);
    offset = page.contacts_next_offset;
  }
  return contacts;
}

/** The queue consumer has started the run. */
export const leftQueue = (run: Json) => run.status !== "queued";

/** Every contact's current step has been proposed (or the contact is done). */
export const proposed = (run: Json) => leftQueue(run) && (run.contacts as Json[]).every((c) => c.status !== "pending" && c.status !== "processing");

/**
 * Runs the run the way production would, without waiting on timers: delivers its start
 * message to the queue consumer (a no-op if the Queue already did), then runs its alarm
 * until nothing is due now. Alarm passes never overlap (the object chains them), so a pass
 * the runtime fired by itself has finished before the next one here starts. Alarms set for
 * later (step waits, send windows) are left alone: `advance` in engine-helpers moves time.
 */
export async function drive(runId: string, maxPasses = 100): Promise<void> {
  const row = await runRow(runId);
  if (row?.status === "queued") await deliverStart(runId);
  const stub = env.RUNS.getByName(runId);
  for (let pass = 0; pass < maxPasses; pass++) {
    const settled = await runInDurableObject(stub, async (instance: RunObject, state) => {
      if ((await state.storage.getAlarm()) === null) return true;
      await state.storage.deleteAlarm();
      await instance.alarm();
      const next = await state.storage.getAlarm();
      return next === null || next > Date.now();
    });
    if (settled) return;
  }
  throw new Error(`run ${runId} still had work due after ${maxPasses} alarm passes`);
}

/** Hands the run's start message to the queue consumer, as the Queue would. */
export async function deliverStart(runId: string, attempts = 1) {
  const batch = createMessageBatch<RunMessage>("cairn-runs", [{ id: `start-${runId}-${attempts}`, timestamp: new Date(), attempts, body: { run_id: runId } }]);
  const ctx = createExecutionContext();
  await (worker as ExportedHandler<typeof env, RunMessage>).queue!(batch, env, ctx);
  await waitOnExecutionContext(ctx);
  return getQueueResult(batch, ctx);
}

/** Drives the run (see `drive`) and returns it once `until(run)` holds; fails if it does not. */
export async function waitForRun(key: string, runId: string, until: (run: Json) => boolean = leftQueue): Promise<Json> {
  await drive(runId);
  const run = await getRun(key, runId);
  if (!until(run)) throw new Error(`run ${runId} is ${run.status}: ${JSON.stringify(run).slice(0, 400)}`);
  return run;
}

/** Triggers the agent (asserting 200) and drives it until `until(run)` holds: by default, the run has left `queued`. */
export async function triggerAndWait(key: string, agentId: string, body: Json = {}, until: (run: Json) => boolean = leftQueue) {
  const res = await trigger(key, agentId, body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const run = await waitForRun(key, res.body.run_id, until);
  return { runId: res.body.run_id as string, jobId: res.body.job_id as string, run };
}

/** Drives the run, then returns its D1 row (the mirror that run lists read), asserting `until(row)`. */
export async function waitForMirror(runId: string, until: (row: typeof runs.$inferSelect) => boolean) {
  await drive(runId);
  const row = await runRow(runId);
  if (!row || !until(row)) throw new Error(`run ${runId}'s D1 row is ${row?.status ?? "missing"}`);
  return row;
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
        counts: emptyCounts(),
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
