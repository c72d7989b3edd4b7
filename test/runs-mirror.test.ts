import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/client";
import { runs } from "../src/db/schema";
import { expectError, makeWorkspace } from "./helpers";
import { EMAIL_STEP, approve, deliveryRows, drive, makeContact, makeStepsAgent, reject, runStub, startRun, viewOf } from "./engine-helpers";

const db = () => createDb(env.DB);

async function pendingRun() {
  const { key } = await makeWorkspace();
  const agent = await makeStepsAgent(key, [EMAIL_STEP]);
  const contact = await makeContact(key);
  const runId = await startRun(key, agent.id, [contact.id]);
  return { key, runId, contactId: contact.id as string };
}

describe("the D1 mirror of a run", () => {
  it("never lets an older summary overwrite a newer one", async () => {
    const { key, runId, contactId } = await pendingRun();
    // A newer write (by version) already landed with another status.
    await db().update(runs).set({ mirrorSeq: 1_000_000, status: "running" }).where(eq(runs.id, runId));

    // The rejection completes the run; its older summary must not land over the newer one.
    expect((await reject(key, runId, contactId, 0)).status).toBe(200);
    await drive(runId);
    expect((await viewOf(runId))?.status).toBe("completed");

    const [row] = await db().select().from(runs).where(eq(runs.id, runId));
    expect(row).toMatchObject({ status: "running", mirrorSeq: 1_000_000 });
  });

  it("stops a run whose D1 row is gone instead of working on for a deleted agent", async () => {
    const { key, runId, contactId } = await pendingRun();
    await db().delete(runs).where(eq(runs.id, runId));

    // Nothing goes out for a run D1 no longer has, and the object stops itself at its next write.
    expectError(await approve(key, runId, contactId, 0), 409, "action_not_pending");
    await drive(runId);

    const view = await viewOf(runId);
    expect(view?.status).toBe("cancelled");
    expect(await deliveryRows(runId, contactId, 0)).toHaveLength(0);
    expect(await runInDurableObject(runStub(runId), (_i, state) => state.storage.getAlarm())).toBeNull();
  });
});
