import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import type { Env, RunMessage } from "../src/env";
import worker from "../src/index";
import { createDb } from "../src/db/client";
import { runs } from "../src/db/schema";
import { MAX_ENQUEUES, reconcileQueuedRuns, RESEND_AFTER_MS } from "../src/runs/reconcile";
import { makeAgent, makeWorkspace } from "./helpers";
import { getRun, hasObject, makeContacts, proposed, runRow, seedQueuedRun, triggerAndWait, waitForMirror, waitForRun } from "./run-helpers";

// Runs start through the real Queue (a batch waits up to a second) and alarms.
vi.setConfig({ testTimeout: 30_000 });

const db = () => createDb(env.DB);
// The Worker as the runtime sees it: handlers take (event, env, ctx).
const handler = worker as ExportedHandler<Env, RunMessage>;

describe("queued-run reconciler", () => {
  const stale = () => Date.now() - RESEND_AFTER_MS - 60_000;

  it("re-sends a run left queued past two minutes from the cron, and the run then starts", async () => {
    const { key, runId } = await seedQueuedRun({ enqueuedAt: stale() });
    const before = Date.now();

    const ctx = createExecutionContext();
    await handler.scheduled!(createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);

    const row = await runRow(runId);
    expect(row.enqueueAttempts).toBe(2);
    expect(row.enqueuedAt.getTime()).toBeGreaterThanOrEqual(before);
    const run = await waitForRun(key, runId, proposed);
    expect(run.counts.pending_approval).toBe(2);
  });

  it("does not re-send a run queued less than two minutes ago", async () => {
    const { runId } = await seedQueuedRun();
    const { enqueuedAt } = await runRow(runId);

    await reconcileQueuedRuns(db(), env);

    expect(await runRow(runId)).toMatchObject({ status: "queued", enqueueAttempts: 1, enqueuedAt });
    expect(await hasObject(runId)).toBe(false);
  });

  it("does not touch a run that has started, however old its last send", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes"] });
    const [a] = await makeContacts(key, 1);
    const { runId } = await triggerAndWait(key, agent.id, { contact_ids: [a!.id] }, proposed);
    await waitForMirror(runId, (row) => row.status === "awaiting_approval");
    await db().update(runs).set({ enqueuedAt: new Date(stale()) }).where(eq(runs.id, runId));

    await reconcileQueuedRuns(db(), env);

    expect(await runRow(runId)).toMatchObject({ status: "awaiting_approval", enqueueAttempts: 1 });
  });

  it("marks a run failed once its message has been sent five times", async () => {
    const { key, runId } = await seedQueuedRun({ enqueuedAt: stale(), enqueueAttempts: MAX_ENQUEUES });

    await reconcileQueuedRuns(db(), env);

    expect(await hasObject(runId)).toBe(false);
    expect((await runRow(runId)).enqueueAttempts).toBe(MAX_ENQUEUES);
    const run = await getRun(key, runId);
    expect(run).toMatchObject({ status: "failed", error: expect.stringMatching(/five times/), completed_at: expect.any(String) });
  });

  it("sends a run's fifth message, then fails it at the next pass if it is still queued", async () => {
    const { runId } = await seedQueuedRun({ enqueuedAt: stale(), enqueueAttempts: MAX_ENQUEUES - 1 });
    // Its start fails every time, so the re-sent message cannot rescue it.
    await env.DB.prepare("UPDATE runs SET agent_snapshot = 'null' WHERE id = ?").bind(runId).run();
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      await reconcileQueuedRuns(db(), env);
      expect(await runRow(runId)).toMatchObject({ status: "queued", enqueueAttempts: MAX_ENQUEUES });

      await db().update(runs).set({ enqueuedAt: new Date(stale()) }).where(eq(runs.id, runId));
      await reconcileQueuedRuns(db(), env);
      expect(await runRow(runId)).toMatchObject({ status: "failed", enqueueAttempts: MAX_ENQUEUES });
    } finally {
      errors.mockRestore();
    }
  });
});
