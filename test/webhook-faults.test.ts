import { createExecutionContext, createMessageBatch, getQueueResult, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { http, HttpResponse } from "msw";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env, RunMessage, SignalMessage } from "../src/env";
import worker from "../src/index";
import { sweepWebhooks } from "../src/webhooks/dispatch";
import { api, makeWorkspace, type Json } from "./helpers";
import { EMAIL_STEP, drive, makeContact, makeStepsAgent, runSql, runStub, startRun, trigger } from "./engine-helpers";
import { runRow } from "./run-helpers";
import { consume, holdWebhookMessages, makeEndpoint, RECEIVER, receiver, receiverServer, row, rows, testEvent } from "./webhook-helpers";

// Faults are real: the queue's send rejects, D1 refuses writes through SQLite triggers.
const server = receiverServer();

const faults: string[] = [];
/** D1 refuses `event` on `table` (when `when` holds) until `heal()` or the end of the test. */
async function refuse(name: string, event: string, table: string, when = "1") {
  await env.DB.exec(`CREATE TRIGGER ${name} BEFORE ${event} ON ${table} WHEN ${when} BEGIN SELECT RAISE(ABORT, 'injected fault'); END`);
  faults.push(name);
  return () => env.DB.exec(`DROP TRIGGER IF EXISTS ${name}`);
}
afterEach(async () => {
  for (const name of faults.splice(0)) await env.DB.exec(`DROP TRIGGER IF EXISTS ${name}`);
  vi.restoreAllMocks();
});
const quiet = () => vi.spyOn(console, "error").mockImplementation(() => {});

/** Hands messages to the runs queue's consumer as one batch, as the Queue would. */
async function consumeRuns(messages: RunMessage[]) {
  const batch = createMessageBatch<RunMessage>("cairn-runs", messages.map((body, i) => ({ id: `s${i}`, timestamp: new Date(), attempts: 1, body })));
  const ctx = createExecutionContext();
  await (worker as ExportedHandler<Env, RunMessage>).queue!(batch, env as Env, ctx);
  await waitOnExecutionContext(ctx);
  return getQueueResult(batch, ctx);
}

const deliveryRow = (eventId: string) => row("SELECT * FROM webhook_deliveries WHERE event_id = ?", eventId);

async function endpointOfNewWorkspace(events?: string[]) {
  const { key, workspaceId } = await makeWorkspace();
  const endpoint = await makeEndpoint(key, events ? { events } : {});
  return { key, workspaceId, endpoint };
}

// First in the file: the sweep looks at every workspace's deliveries, and D1 is shared by this file's tests.
describe("the cron's sweep", () => {
  it("sends a delivery claimed but never sent once it is two minutes overdue, once", async () => {
    const { key, endpoint } = await endpointOfNewWorkspace();
    quiet();
    const down = vi.spyOn(env.WEBHOOK_QUEUE, "sendBatch").mockRejectedValue(new Error("queue unavailable"));
    const res = await api(`/v1/webhook-endpoints/${endpoint.id}/test`, { method: "POST", key, body: {} });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(down).toHaveBeenCalledTimes(1);
    down.mockRestore();
    const eventId = res.body.delivery.id as string;
    const claimed = (await deliveryRow(eventId))!;
    expect(claimed).toMatchObject({ enqueued: 1, status: "pending", attempts: 0, lease_until: null });

    const held = holdWebhookMessages();
    // Not overdue yet: its message may still be on its way.
    expect(await sweepWebhooks(env as Env)).toBe(0);
    expect(held.messages).toStrictEqual([]);

    const now = (claimed.next_attempt_at as number) + 2 * 60_000 + 1_000;
    expect(await sweepWebhooks(env as Env, now)).toBe(1);
    expect(held.messages).toStrictEqual([{ endpoint_id: endpoint.id, event_id: eventId }]);
    expect((await deliveryRow(eventId))!.next_attempt_at).toBe(now);

    // Due again from `now`: the next sweep leaves it to the message just sent.
    expect(await sweepWebhooks(env as Env, now)).toBe(0);
    expect(held.messages).toHaveLength(1);
  });

  it("sends a delivery whose first message was never claimed at once", async () => {
    const { key, endpoint } = await endpointOfNewWorkspace();
    const held = holdWebhookMessages();
    const { message } = await testEvent(key, endpoint.id, held);
    await row("UPDATE webhook_deliveries SET enqueued = 0 WHERE event_id = ? RETURNING 1", message.event_id);
    held.messages.length = 0;

    expect(await sweepWebhooks(env as Env)).toBe(1);
    expect(held.messages).toStrictEqual([message]);
    expect((await deliveryRow(message.event_id))!.enqueued).toBe(1);
    expect(await sweepWebhooks(env as Env)).toBe(0);
  });
});

describe("a receiver answering with a redirect", () => {
  it("is not followed: the 302 is a failed attempt, retried on the schedule", async () => {
    const { key, endpoint } = await endpointOfNewWorkspace();
    const held = holdWebhookMessages();
    const elsewhere = "https://elsewhere.test/hook";
    const got = receiver(server, async () => new HttpResponse(null, { status: 302, headers: { Location: elsewhere } }));
    const followed: string[] = [];
    server.use(http.all(elsewhere, ({ request }) => (followed.push(request.method), new HttpResponse("ok", { status: 200 }))));
    const { message } = await testEvent(key, endpoint.id, held);

    const result = await consume([message]);
    expect(got).toHaveLength(1);
    expect(followed).toStrictEqual([]);
    expect(result.retryMessages).toHaveLength(1);
    // The first retry: 5 s within ±10 %, rounded up to whole seconds.
    expect(result.retryMessages[0]!.delaySeconds).toBeGreaterThanOrEqual(5);
    expect(result.retryMessages[0]!.delaySeconds).toBeLessThanOrEqual(6);
    expect(await deliveryRow(message.event_id)).toMatchObject({ status: "pending", attempts: 1, last_error: "The endpoint answered 302" });
    expect(await rows("SELECT number, status_code FROM webhook_attempts WHERE event_id = ?", message.event_id)).toStrictEqual([{ number: 1, status_code: 302 }]);
  });
});

describe("D1 failing after the receiver answered", () => {
  it("retries the message in 30 s with the lease held, and the next attempt records one attempt (the receiver got two)", async () => {
    const { key, endpoint } = await endpointOfNewWorkspace();
    const held = holdWebhookMessages();
    const got = receiver(server, 200);
    const { message } = await testEvent(key, endpoint.id, held);
    const heal = await refuse("fault_attempts", "INSERT", "webhook_attempts", `NEW.event_id = '${message.event_id}'`);
    quiet();

    const failed = await consume([message]);
    expect(failed.explicitAcks).toStrictEqual([]);
    expect(failed.retryMessages).toStrictEqual([{ msgId: "w0", delaySeconds: 30 }]);
    expect(got).toHaveLength(1);
    const leased = (await deliveryRow(message.event_id))!;
    expect(leased).toMatchObject({ status: "pending", attempts: 0 });
    expect(leased.lease_until).toBeGreaterThan(Date.now());
    await heal();

    // While the lease holds, a duplicate message makes no attempt.
    const early = await consume([message]);
    expect(early.retryMessages).toHaveLength(1);
    expect(got).toHaveLength(1);

    await row("UPDATE webhook_deliveries SET lease_until = ? WHERE event_id = ? RETURNING 1", Date.now() - 1, message.event_id);
    const delivered = await consume([message]);
    expect(delivered.explicitAcks).toStrictEqual(["w0"]);
    // At least once: the receiver got it twice, and the first answer was never recorded.
    expect(got).toHaveLength(2);
    expect(await rows("SELECT number, status_code FROM webhook_attempts WHERE event_id = ?", message.event_id)).toStrictEqual([{ number: 1, status_code: 200 }]);
    expect(await deliveryRow(message.event_id)).toMatchObject({ status: "succeeded", attempts: 1, lease_until: null });
  });
});

describe("Idempotency-Key on the routes that answer a secret", () => {
  const storedBody = async (key: string) => (await row("SELECT response_body FROM idempotency_keys WHERE key = ? AND state = 'done'", key))!.response_body as string;
  const expectHidden = (stored: string, secret: string) => {
    expect(stored).not.toContain(secret);
    expect(stored).not.toContain(secret.slice("whsec_".length));
  };

  it("stores the create's answer sealed, and the replay shows the same secret", async () => {
    const { key } = await makeWorkspace();
    const idempotencyKey = `create-${crypto.randomUUID()}`;
    const send = () => api("/v1/webhook-endpoints", { method: "POST", key, body: { url: RECEIVER }, headers: { "Idempotency-Key": idempotencyKey } });
    const first = await send();
    expect(first.status).toBe(201);
    const secret = first.body.webhook_endpoint.secret as string;
    expect(secret).toMatch(/^whsec_/);
    expectHidden(await storedBody(idempotencyKey), secret);

    const replay = await send();
    expect(replay.status).toBe(201);
    expect(replay.headers.get("Idempotent-Replayed")).toBe("true");
    expect(replay.body.webhook_endpoint).toStrictEqual(first.body.webhook_endpoint);
    expect((await api("/v1/webhook-endpoints", { key })).body.webhook_endpoints).toHaveLength(1);
  });

  it("stores rotate-secret's answer sealed, and the replay shows the same secret without rotating again", async () => {
    const { key } = await makeWorkspace();
    const endpoint = await makeEndpoint(key);
    const idempotencyKey = `rotate-${crypto.randomUUID()}`;
    const send = () => api(`/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, { method: "POST", key, headers: { "Idempotency-Key": idempotencyKey } });
    const first = await send();
    expect(first.status).toBe(200);
    const secret = first.body.webhook_endpoint.secret as string;
    expect(secret).not.toBe(endpoint.secret);
    expectHidden(await storedBody(idempotencyKey), secret);
    const sealed = await row("SELECT secret, previous_secret FROM webhook_endpoints WHERE id = ?", endpoint.id);

    const replay = await send();
    expect(replay.status).toBe(200);
    expect(replay.headers.get("Idempotent-Replayed")).toBe("true");
    expect(replay.body.webhook_endpoint.secret).toBe(secret);
    expect(await row("SELECT secret, previous_secret FROM webhook_endpoints WHERE id = ?", endpoint.id)).toStrictEqual(sealed);
  });
});

/**
 * A run whose object started and proposed while D1 refused its mirror, so its D1 row is still
 * `queued`; `end` then moves that row as D1 itself would, and the object's next mirror runs.
 */
async function endedUnstarted(end: (runId: string) => Promise<unknown>) {
  const { key, workspaceId } = await endpointOfNewWorkspace(["*"]);
  holdWebhookMessages();
  const agent = await makeStepsAgent(key, [EMAIL_STEP]);
  const contact = await makeContact(key, { first_name: "Ada" });
  // Before the trigger, so the queue cannot start the run and mirror it first: D1 refuses
  // the object's mirror (it moves mirror_seq), not D1's own move below.
  const heal = await refuse("fault_mirror", "UPDATE OF status", "runs", `OLD.workspace_id = '${workspaceId}' AND NEW.mirror_seq <> OLD.mirror_seq`);
  quiet();
  const runId = await trigger(key, agent.id, [contact.id]);
  await drive(runId);
  expect((await runRow(runId)).status).toBe("queued");
  const waiting = await runSql(runId, "SELECT type FROM outbox WHERE kind = 'event' ORDER BY seq");
  expect(waiting.map((e) => e.type)).toEqual(expect.arrayContaining(["run.started", "action.proposed"]));

  await end(runId);
  await heal();
  await runSql(runId, "UPDATE run SET mirror_retry_at = NULL");
  await runInDurableObject(runStub(runId), (_instance, state) => state.storage.setAlarm(Date.now()));
  await drive(runId);
  const events = await rows("SELECT type, data FROM webhook_events WHERE workspace_id = ? ORDER BY id", workspaceId);
  return { runId, events: events.map((e): Json => ({ type: e.type, data: JSON.parse(e.data as string) })) };
}

describe("a run D1 ended while queued, whose object had already started", () => {
  it("cancelled: tells only D1's run.cancelled, lists nothing in the approvals inbox, and the object ends cancelled", async () => {
    // As the cancel route does for a row still `queued`.
    const { runId, events } = await endedUnstarted((runId) =>
      row("UPDATE runs SET status = 'cancelled', completed_at = ? WHERE id = ? AND status = 'queued' RETURNING 1", Date.now(), runId),
    );
    expect(events.map((e) => e.type)).toStrictEqual(["run.cancelled"]);
    expect(events[0]!.data).toMatchObject({ run_id: runId, status: "cancelled" });
    expect(await rows("SELECT * FROM approvals WHERE run_id = ?", runId)).toStrictEqual([]);
    expect(await runSql(runId, "SELECT status FROM run")).toStrictEqual([{ status: "cancelled" }]);
    expect((await runRow(runId)).status).toBe("cancelled");
  });

  // The mirror's summary never lands on a row D1 failed while `queued` (it would make it active
  // again, and the object's events and inbox rows would follow D1's run.failed).
  it("failed (the reconciler's fifth send): tells only D1's run.failed, lists nothing, and the row stays failed", async () => {
    // As src/runs/reconcile.ts does for a row still `queued` after five sends.
    const { runId, events } = await endedUnstarted((runId) =>
      row("UPDATE runs SET status = 'failed', error = 'never started', completed_at = ? WHERE id = ? AND status = 'queued' RETURNING 1", Date.now(), runId),
    );
    expect(await rows("SELECT * FROM approvals WHERE run_id = ?", runId)).toStrictEqual([]);
    expect((await runRow(runId)).status).toBe("failed");
    expect(events.map((e) => e.type)).toStrictEqual(["run.failed"]);
  });
});

describe("a stop signal delivered twice by the queue", () => {
  it("emits contact.stopped once", async () => {
    const { key, workspaceId } = await endpointOfNewWorkspace(["*"]);
    holdWebhookMessages();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const [ada, bo] = [await makeContact(key, { first_name: "Ada" }), await makeContact(key, { first_name: "Bo" })];
    // Two contacts: the run stays active after the first stop, so the second delivery reaches it.
    const runId = await startRun(key, agent.id, [ada.id, bo.id]);
    const signal: SignalMessage = { kind: "signal", run_id: runId, stops: [{ contactId: ada.id, reason: "reply" }], changes: [] };

    expect((await consumeRuns([signal])).explicitAcks).toStrictEqual(["s0"]);
    await drive(runId);
    expect((await consumeRuns([signal])).explicitAcks).toStrictEqual(["s0"]);
    await drive(runId);

    const stopped = await rows("SELECT data FROM webhook_events WHERE workspace_id = ? AND type = 'contact.stopped'", workspaceId);
    expect(stopped.map((e): Json => JSON.parse(e.data as string))).toStrictEqual([
      { run_id: runId, agent_id: agent.id, contact_id: ada.id, status: "stopped", stop_reason: "reply" },
    ]);
    expect((await runRow(runId)).status).not.toBe("completed");
  });
});
