import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { runs } from "../src/db/schema";
import type { RunObject } from "../src/runs/run-object";
import { makeWorkspace } from "./helpers";
import { EMAIL_STEP, makeContact, makeStepsAgent, runStub, startRun } from "./engine-helpers";

const db = () => createDb(env.DB);

async function pendingRun() {
  const { key } = await makeWorkspace();
  const agent = await makeStepsAgent(key, [EMAIL_STEP]);
  const contact = await makeContact(key);
  return startRun(key, agent.id, [contact.id]);
}

async function settleByAlarm(runId: string) {
  await runInDurableObject(runStub(runId), (_i, state) => state.storage.setAlarm(Date.now()));
  await runDurableObjectAlarm(runStub(runId));
}

describe("the D1 mirror of a run", () => {
  it("never lets an older summary overwrite a newer one", async () => {
    const runId = await pendingRun();
    // A newer write (by sequence) already landed with another status.
    await db().update(runs).set({ mirrorSeq: 1_000_000, status: "running" }).where(eq(runs.id, runId));

    await settleByAlarm(runId);

    const [row] = await db().select().from(runs).where(eq(runs.id, runId));
    expect(row).toMatchObject({ status: "running", mirrorSeq: 1_000_000 });
  });

  it("stops a run whose D1 row is gone instead of working on for a deleted agent", async () => {
    const runId = await pendingRun();
    await db().delete(runs).where(eq(runs.id, runId));

    await settleByAlarm(runId);

    const view = await runInDurableObject(runStub(runId), (instance: RunObject) => instance.view());
    expect(view?.status).toBe("cancelled");
    expect(await runInDurableObject(runStub(runId), (_i, state) => state.storage.getAlarm())).toBeNull();
  });
});
