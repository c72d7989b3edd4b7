import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { configFromRow } from "../src/agents/agent-record";
import { createDb } from "../src/db/client";
import { transportProblem } from "../src/delivery/email-sender";
import type { Env } from "../src/env";
import { findAgent } from "../src/routes/agents";
import { readiness } from "../src/runs/readiness";
import { makeWorkspace } from "./helpers";
import { EMAIL_STEP, makeStepsAgent } from "./engine-helpers";

// This pool's Worker sends through the outbox; the other configurations are asked of the
// same checks with the bindings a deployment would have.
const configured = { ...env, UNSUBSCRIBE_SECRET: "s", PUBLIC_URL: "https://cairn.example" } as Env;

describe("the email transport a deployment names", () => {
  it("is ready when each transport has what it needs", () => {
    expect(transportProblem({ ...configured, EMAIL_TRANSPORT: undefined })).toBeNull();
    expect(transportProblem({ ...configured, EMAIL_TRANSPORT: "outbox", UNSUBSCRIBE_SECRET: undefined })).toBeNull();
    expect(transportProblem({ ...configured, EMAIL_TRANSPORT: "resend", RESEND_API_KEY: "re_x" })).toBeNull();
    expect(transportProblem({ ...configured, EMAIL_TRANSPORT: " Cloudflare " })).toBeNull();
  });

  it("says what is missing", () => {
    expect(transportProblem({ ...configured, EMAIL_TRANSPORT: "smtp" })).toBe('EMAIL_TRANSPORT must be one of outbox, resend, cloudflare, not "smtp"');
    expect(transportProblem({ ...configured, EMAIL_TRANSPORT: "resend" })).toBe("EMAIL_TRANSPORT is resend but RESEND_API_KEY is not set");
    expect(transportProblem({ ...configured, EMAIL_TRANSPORT: "cloudflare", EMAIL: undefined })).toBe("EMAIL_TRANSPORT is cloudflare but the send_email binding EMAIL is missing");
    expect(transportProblem({ ...configured, EMAIL_TRANSPORT: "resend", RESEND_API_KEY: "re_x", PUBLIC_URL: undefined })).toMatch(/^UNSUBSCRIBE_SECRET and PUBLIC_URL must be set/);
  });

  it("refuses to start a run with email steps, and only those, while it cannot send", async () => {
    const { key, workspaceId } = await makeWorkspace();
    const db = createDb(env.DB);
    const emailAgent = await makeStepsAgent(key, [EMAIL_STEP]);
    const noteAgent = await makeStepsAgent(key, [{ id: "log", action: "create_note" }]);
    const broken = { ...configured, EMAIL_TRANSPORT: "resend" } as Env;
    const email = configFromRow((await findAgent(db, workspaceId, emailAgent.id))!);
    const note = configFromRow((await findAgent(db, workspaceId, noteAgent.id))!);
    expect(readiness(email, broken)).toEqual({ ok: false, code: "email_transport_not_configured", message: "EMAIL_TRANSPORT is resend but RESEND_API_KEY is not set" });
    expect(readiness(note, broken).ok).toBe(true);
    expect(readiness(email, configured).ok).toBe(true);
  });
});
