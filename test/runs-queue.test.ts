import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import type { Env, RunMessage } from "../src/env";
import worker from "../src/index";
import { createDb } from "../src/db/client";
import { runs } from "../src/db/schema";
import { newId } from "../src/lib/ids";
import { backoffSeconds } from "../src/queues/run-queue";
import { api, makeAgent, makeWorkspace, type Json } from "./helpers";
import { allContacts, drive, getRun, hasObject, makeContacts, objectIds, proposed, runRow, seedQueuedRun, triggerAndWait, waitForMirror, waitForRun } from "./run-helpers";
import { runSql, viewOf } from "./engine-helpers";

// Runs start through the real Queue (a batch waits up to a second) and alarms.
vi.setConfig({ testTimeout: 30_000 });

const db = () => createDb(env.DB);
// The Worker as the runtime sees it: handlers take (event, env, ctx).
const handler = worker as ExportedHandler<Env, RunMessage>;
const RUNS_QUEUE = "cairn-runs";
const DEAD_LETTER_QUEUE = "cairn-runs-dlq";

const actionCount = (run: Json) => (run.contacts as Json[]).reduce((n, c) => n + (c.actions as Json[]).length, 0);

/**
 * Hands `bodies` to the Worker's queue handler as one batch (message i has id `m<i>`) and
 * returns getQueueResult's verdict plus, per retried message, the delay it asked for:
 * the plugin's result records that a message was retried but not its delaySeconds.
 */
async function deliver(queue: string, bodies: unknown[], attempts = 1) {
  const batch = createMessageBatch(
    queue,
    bodies.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts, body })),
  );
  const delays: Record<string, number | undefined> = {};
  for (const message of batch.messages) {
    const retry = message.retry.bind(message);
    message.retry = (options?: QueueRetryOptions) => {
      delays[message.id] = options?.delaySeconds;
      retry(options);
    };
  }
  const ctx = createExecutionContext();
  await handler.queue!(batch as MessageBatch<RunMessage>, env, ctx);
  return { ...(await getQueueResult(batch, ctx)), delays };
}

describe("run queue consumer", () => {
  it("starts the run a valid message names, and acks it", async () => {
    const { key, runId, contactIds } = await seedQueuedRun();

    const result = await deliver(RUNS_QUEUE, [{ run_id: runId }]);

    expect(result.explicitAcks).toEqual(["m0"]);
    expect(result.retryMessages).toEqual([]);
    expect(await hasObject(runId)).toBe(true);
    expect((await runRow(runId)).startedAt).not.toBeNull();
    const run = await waitForRun(key, runId, proposed);
    expect((run.contacts as Json[]).map((c) => c.contact_id)).toEqual(contactIds);
    expect((run.contacts as Json[]).map((c) => c.actions.map((a: Json) => [a.type, a.status]))).toEqual([
      [["create_note", "pending_approval"]],
      [["create_note", "pending_approval"]],
    ]);
  });

  it("acks a redelivered message without starting the run again or proposing anything twice", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes"] });
    const made = await makeContacts(key, 3);
    const { runId, run: before } = await triggerAndWait(key, agent.id, { contact_ids: made.map((c) => c.id) }, proposed);
    const objectsBefore = await objectIds();
    const rowBefore = await runRow(runId);

    const result = await deliver(RUNS_QUEUE, [{ run_id: runId }], 2);
    await runDurableObjectAlarm(env.RUNS.getByName(runId));

    expect(result.explicitAcks).toEqual(["m0"]);
    expect(result.retryMessages).toEqual([]);
    expect(await objectIds()).toEqual(objectsBefore);
    const after = await getRun(key, runId);
    expect(actionCount(before)).toBe(3);
    expect(actionCount(after)).toBe(3);
    expect(after.contacts).toEqual(before.contacts);
    expect(after.counts).toEqual({ pending_approval: 3, approved: 0, rejected: 0, completed: 0, failed: 0, invalidated: 0, cancelled: 0 });
    expect((await runRow(runId)).startedAt).toEqual(rowBefore.startedAt);
  });

  it("acks and logs a message whose body can never be read", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const result = await deliver(RUNS_QUEUE, ["not json", { run_id: 42 }, {}, { run_id: "job_123" }]);
      expect(result.explicitAcks.sort()).toEqual(["m0", "m1", "m2", "m3"]);
      expect(result.retryMessages).toEqual([]);
      const logged = errors.mock.calls.map((call) => String(call[0])).filter((line) => line.includes("unreadable run message"));
      expect(logged).toHaveLength(4);
      expect(logged[0]).toContain("not json");
    } finally {
      errors.mockRestore();
    }
  });

  it("acks a message for a run that no longer exists or was cancelled before it started", async () => {
    const { runId } = await seedQueuedRun();
    await db().update(runs).set({ status: "cancelled" }).where(eq(runs.id, runId));
    const result = await deliver(RUNS_QUEUE, [{ run_id: runId }, { run_id: newId("run") }]);
    expect(result.explicitAcks.sort()).toEqual(["m0", "m1"]);
    expect(await hasObject(runId)).toBe(false);
    expect((await runRow(runId)).status).toBe("cancelled");
  });

  it("retries a message whose run fails to start, with a backoff that grows with its attempts", async () => {
    const { runId } = await seedQueuedRun();
    // A run row whose agent snapshot is unreadable: building the run's spec throws.
    await env.DB.prepare("UPDATE runs SET agent_snapshot = 'null' WHERE id = ?").bind(runId).run();
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const first = await deliver(RUNS_QUEUE, [{ run_id: runId }], 1);
      const third = await deliver(RUNS_QUEUE, [{ run_id: runId }], 3);

      expect(first.explicitAcks).toEqual([]);
      expect(first.retryMessages).toEqual([{ msgId: "m0" }]);
      expect(first.delays).toEqual({ m0: 5 });
      expect(third.retryMessages).toEqual([{ msgId: "m0" }]);
      expect(third.delays).toEqual({ m0: 20 });
      expect((await runRow(runId)).status).toBe("queued");
      expect(await hasObject(runId)).toBe(false);
      expect(errors.mock.calls.some((call) => String(call[0]).includes(runId))).toBe(true);
    } finally {
      errors.mockRestore();
    }
  });

  it("starts the run even when D1 refuses its first summary, and the summary lands once D1 takes it", async () => {
    const { key, runId } = await seedQueuedRun();
    const guard = `fail_mirror_${runId.toLowerCase()}`;
    // A real D1 failure inside the run object: every write of the run's summary is refused.
    await env.DB.exec(`CREATE TRIGGER ${guard} BEFORE UPDATE ON runs WHEN OLD.id = '${runId}' BEGIN SELECT RAISE(ABORT, 'D1 unavailable'); END`);
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const first = await deliver(RUNS_QUEUE, [{ run_id: runId }], 1);
      expect(first.explicitAcks).toEqual(["m0"]);
      await drive(runId);
    } finally {
      await env.DB.exec(`DROP TRIGGER ${guard}`);
      errors.mockRestore();
    }
    // Nothing was lost: the proposals are there; only the D1 row is behind, with a retry scheduled.
    expect((await viewOf(runId))?.counts.pending_approval).toBe(2);
    expect((await runRow(runId)).status).toBe("queued");
    const [mirror] = await runSql(runId, "SELECT mirror_failures, mirror_retry_at FROM run");
    expect(mirror).toMatchObject({ mirror_failures: 1, mirror_retry_at: expect.any(Number) });

    await runSql(runId, "UPDATE run SET mirror_retry_at = ?", Date.now() - 1);
    await drive(runId);

    expect(await runRow(runId)).toMatchObject({ status: "awaiting_approval", counts: expect.objectContaining({ pending_approval: 2 }) });
    expect((await getRun(key, runId)).counts.pending_approval).toBe(2);
  });

  it("decides per message: in one batch a good message is acked, a failing one retried, an unreadable one acked", async () => {
    const good = await seedQueuedRun();
    const bad = await seedQueuedRun();
    await env.DB.prepare("UPDATE runs SET agent_snapshot = 'null' WHERE id = ?").bind(bad.runId).run();
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const result = await deliver(RUNS_QUEUE, [{ run_id: bad.runId }, { run_id: good.runId }, "garbage"]);
      expect(result.explicitAcks.sort()).toEqual(["m1", "m2"]);
      expect(result.retryMessages).toEqual([{ msgId: "m0" }]);
      expect(result.delays).toEqual({ m0: 5 });
      expect(result.ackAll).toBe(false);
      expect(result.retryBatch.retry).toBe(false);
    } finally {
      errors.mockRestore();
    }
    await drive(good.runId);
    expect((await runRow(good.runId)).status).not.toBe("queued");
    expect((await runRow(bad.runId)).status).toBe("queued");
  });

  it("backs off 5, 10, 20 ... seconds, capped at five minutes", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map(backoffSeconds)).toEqual([5, 10, 20, 40, 80, 160, 300, 300, 300]);
    expect(backoffSeconds(0)).toBe(5);
  });

  it("carries a 1000-contact run until every contact has a pending action", { timeout: 120_000 }, async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const made = await makeContacts(key, 1000);
    const ids = made.map((c) => c.id as string);
    const { runId } = await triggerAndWait(key, agent.id, { contact_ids: ids });

    // The engine proposes for 100 contacts per alarm; run the alarms rather than wait for them.
    const stub = env.RUNS.getByName(runId);
    let alarms = 0;
    for (; alarms < 30; alarms++) {
      const ran = await runDurableObjectAlarm(stub);
      const { counts } = await runRow(runId);
      if (!ran || counts.pending_approval === 1000) break;
    }
    await waitForRun(key, runId, (r) => r.counts.pending_approval === 1000);
    const run = await getRun(key, runId);

    expect(alarms).toBeLessThan(30);
    expect(run.status).toBe("awaiting_approval");
    expect(run.counts).toEqual({ pending_approval: 1000, approved: 0, rejected: 0, completed: 0, failed: 0, invalidated: 0, cancelled: 0 });
    const contacts = await allContacts(key, runId);
    expect(contacts.map((c) => c.contact_id)).toEqual(ids);
    expect(contacts.every((c) => c.status === "awaiting_approval" && c.actions.length === 1 && c.actions[0].status === "pending_approval")).toBe(true);
    expect(new Set(contacts.map((c) => c.actions[0].params.to)).size).toBe(1000);

    await waitForMirror(runId, (row) => row.counts.pending_approval === 1000);
    const listed = await api(`/v1/agents/${agent.id}/runs`, { key });
    expect(listed.body.runs).toHaveLength(1);
    expect(listed.body.runs[0]).toMatchObject({ id: runId, status: "awaiting_approval", contact_count: 1000, counts: run.counts });
  });
});

describe("dead-letter consumer", () => {
  it("marks a run that is still queued failed, with an error, and acks", async () => {
    const { key, runId } = await seedQueuedRun();
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const result = await deliver(DEAD_LETTER_QUEUE, [{ run_id: runId }]);
      expect(result.explicitAcks).toEqual(["m0"]);
      expect(result.retryMessages).toEqual([]);
    } finally {
      errors.mockRestore();
    }
    expect(await hasObject(runId)).toBe(false);
    const run = await getRun(key, runId);
    expect(run).toMatchObject({ status: "failed", error: expect.stringMatching(/could not be started/), completed_at: expect.any(String) });
  });

  it("leaves a run that has started alone, and acks", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes"] });
    const [a] = await makeContacts(key, 1);
    const { runId, run: before } = await triggerAndWait(key, agent.id, { contact_ids: [a!.id] }, proposed);
    const rowBefore = await waitForMirror(runId, (row) => row.status === "awaiting_approval");
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const result = await deliver(DEAD_LETTER_QUEUE, [{ run_id: runId }]);
      expect(result.explicitAcks).toEqual(["m0"]);
    } finally {
      errors.mockRestore();
    }
    expect(await runRow(runId)).toEqual(rowBefore);
    const after = await getRun(key, runId);
    expect(after).toMatchObject({ status: "awaiting_approval", error: null, completed_at: null });
    expect(after.contacts).toEqual(before.contacts);
  });

  it("acks an unreadable dead letter", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const result = await deliver(DEAD_LETTER_QUEUE, ["garbage", { run_id: 7 }]);
      expect(result.explicitAcks.sort()).toEqual(["m0", "m1"]);
      expect(result.retryMessages).toEqual([]);
    } finally {
      errors.mockRestore();
    }
  });
});
