import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api, expectError, makeAgent, makeWorkspace } from "./helpers";
import { makeContacts } from "./run-helpers";

// CONTRACT.md section 9: a conflict that says "retry" is not kept under the key, and a
// request whose effect committed is never answered 500. The faults are real D1 triggers.

const sql = (statement: string) => env.DB.prepare(statement).run();

afterEach(async () => {
  for (const name of ["hold_agent", "refuse_completion"]) await sql(`DROP TRIGGER IF EXISTS ${name}`);
  vi.restoreAllMocks();
});

const withKey = (idempotencyKey: string) => ({ "Idempotency-Key": idempotencyKey });
const agentTotal = async (key: string) => (await api("/v1/agents", { key })).body.total as number;

/** Every attempt to record a response under an Idempotency-Key fails. */
const refuseCompletions = () =>
  sql(`CREATE TRIGGER refuse_completion BEFORE UPDATE ON idempotency_keys WHEN NEW.state = 'done'
       BEGIN SELECT RAISE(ABORT, 'injected fault'); END`);

describe("a conflict that says retry", () => {
  it("is not replayed: the same Idempotency-Key runs the PATCH again once the conflict has passed", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    // Every write to this agent silently changes nothing, as if another PATCH always won the race.
    await sql(`CREATE TRIGGER hold_agent BEFORE UPDATE ON agents WHEN OLD.id = '${agent.id}' BEGIN SELECT RAISE(IGNORE); END`);
    const patch = () => api(`/v1/agents/${agent.id}`, { method: "PATCH", key, body: { name: "Renamed" }, headers: withKey("rename") });

    expectError(await patch(), 409, "concurrent_update");
    await sql("DROP TRIGGER hold_agent");
    const retry = await patch();

    expect(retry.status, JSON.stringify(retry.body)).toBe(200);
    expect(retry.headers.get("Idempotent-Replayed")).toBeNull();
    expect(retry.body.agent.name).toBe("Renamed");
    // And that success is what the key now replays.
    expect((await patch()).headers.get("Idempotent-Replayed")).toBe("true");
  });
});

describe("a response that cannot be recorded", () => {
  it("still answers 201 for the agent it created, and the prompt retry creates no second one", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const { key } = await makeWorkspace();
    await refuseCompletions();
    const create = () => api("/v1/agents", { method: "POST", key, body: { name: "Once" }, headers: withKey("create") });

    const first = await create();
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body.agent.name).toBe("Once");
    expect(log.mock.calls.join("\n")).toContain(first.headers.get("Request-Id"));

    expectError(await create(), 409, "idempotency_key_in_use");
    expect(await agentTotal(key)).toBe(1);
  });

  it("still answers 200 for the run it triggered, and the prompt retry starts no second run", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { capabilities: ["notes"] });
    const [contact] = await makeContacts(key, 1);
    await refuseCompletions();
    const fire = () => api(`/v1/agents/${agent.id}/trigger`, { method: "POST", key, body: { contact_ids: [contact!.id] }, headers: withKey("fire") });

    const first = await fire();
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.run_id).toMatch(/^run_/);

    expectError(await fire(), 409, "idempotency_key_in_use");
    expect((await api(`/v1/agents/${agent.id}/runs`, { key })).body.total).toBe(1);
  });
});
