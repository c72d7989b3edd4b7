import { describe, expect, it } from "vitest";
import { api, expectError, makeAgent, makeWorkspace, type Json } from "./helpers";

const create = (key: string, body: Json) => api("/v1/agents", { method: "POST", key, body: { name: "Valid", ...body } });

/** Creates with `body` and asserts a 400 whose details name `path`; returns the details. */
async function rejects(body: Json, path: string): Promise<Json[]> {
  const { key } = await makeWorkspace();
  const res = await create(key, body);
  const error = expectError(res, 400, "validation_error");
  const details = error.details as Json[];
  expect(details.map((d) => d.path), JSON.stringify(details)).toContain(path);
  for (const detail of details) expect(detail.message).toEqual(expect.any(String));
  expect((await api("/v1/agents", { key })).body.total).toBe(0);
  return details;
}

const patch = (key: string, id: string, body: Json) => api(`/v1/agents/${id}`, { method: "PATCH", key, body });

async function makeIdentity(key: string): Promise<string> {
  const res = await api("/v1/identities", { method: "POST", key, body: { first_name: "Sam" } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.identity.id;
}

async function accepts(body: Json): Promise<Json> {
  const { key } = await makeWorkspace();
  const res = await create(key, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.agent;
}

const playbook = (steps: Json[], extra: Json = {}) => ({ playbook_md: "# Plan", steps, ...extra });
const email = { action: "email_message" };
const ALL_CAPABILITIES = ["email", "linkedin", "notes", "crm_sync", "tasks"];

describe("name, description, playbook_md", () => {
  it("requires a name", () => rejects({ name: undefined }, "name"));
  it("rejects an empty name", () => rejects({ name: "" }, "name"));
  it("rejects a blank name", () => rejects({ name: "   " }, "name"));
  it("rejects a name over 200 characters", () => rejects({ name: "n".repeat(201) }, "name"));
  it("accepts a name of 200 characters", () => accepts({ name: "n".repeat(200) }));
  it("rejects a description over 2000 characters", () => rejects({ description: "d".repeat(2001) }, "description"));
  it("accepts a description of 2000 characters", () => accepts({ description: "d".repeat(2000) }));
  it("rejects playbook_md over 20000 characters", () => rejects({ playbook: { playbook_md: "p".repeat(20001) } }, "playbook.playbook_md"));
  it("accepts playbook_md of 20000 characters", () => accepts({ playbook: { playbook_md: "p".repeat(20000) } }));
  it("rejects an unknown playbook_template", () => rejects({ playbook_template: "nope" }, "playbook_template"));
});

describe("playbook steps", () => {
  it("rejects an empty step list", () => rejects({ capabilities: ["email"], playbook: playbook([]) }, "playbook.steps"));
  it("rejects 21 steps", () => rejects({ capabilities: ["email"], playbook: playbook(Array(21).fill(email)) }, "playbook.steps"));

  it("accepts 20 steps and numbers those without an id step_1, step_2, ...", async () => {
    const agent = await accepts({ capabilities: ["email"], playbook: playbook(Array(20).fill(email)) });
    expect(agent.playbook.steps.map((s: Json) => s.id)).toEqual(Array.from({ length: 20 }, (_, i) => `step_${i + 1}`));
  });

  it("rejects an unknown action", () =>
    rejects({ capabilities: ALL_CAPABILITIES, playbook: playbook([email, { action: "send_fax" }]) }, "playbook.steps.1.action"));

  it("rejects template fields that do not belong to the action", async () => {
    await rejects({ capabilities: ["email"], playbook: playbook([{ ...email, template: { message: "hi" } }]) }, "playbook.steps.0.template.message");
    await rejects(
      { capabilities: ["linkedin"], playbook: playbook([{ action: "linkedin_message", template: { subject: "hi" } }]) },
      "playbook.steps.0.template.subject",
    );
    await rejects({ capabilities: ["notes"], playbook: playbook([{ action: "create_note", template: { body: "hi" } }]) }, "playbook.steps.0.template.body");
    await rejects({ capabilities: ["crm_sync"], playbook: playbook([{ action: "sync_to_crm", template: {} }]) }, "playbook.steps.0.template");
  });

  it("accepts each action's own template fields", async () => {
    const agent = await accepts({
      capabilities: ALL_CAPABILITIES,
      playbook: playbook([
        { ...email, template: { subject: "s", body: "b" } },
        { action: "linkedin_connection", template: { message: "m" } },
        { action: "linkedin_message", template: { message: "m" } },
        { action: "create_task", template: { message: "m" } },
        { action: "create_note", template: { note: "n" } },
        { action: "sync_to_crm" },
      ]),
    });
    expect(agent.playbook.steps).toHaveLength(6);
  });

  it("rejects duplicate step ids", () =>
    rejects({ capabilities: ["email"], playbook: playbook([{ ...email, id: "a" }, { ...email, id: "a" }]) }, "playbook.steps.1.id"));

  it("rejects an explicit id that clashes with a generated one", () =>
    rejects({ capabilities: ["email"], playbook: playbook([email, { ...email, id: "step_1" }]) }, "playbook.steps.1.id"));

  it("rejects a malformed step id", () => rejects({ capabilities: ["email"], playbook: playbook([{ ...email, id: "has space" }]) }, "playbook.steps.0.id"));

  it("defaults require_approval to true and keeps an explicit false", async () => {
    const agent = await accepts({ capabilities: ["email"], playbook: playbook([email, { ...email, require_approval: false }]) });
    expect(agent.playbook.steps.map((s: Json) => s.require_approval)).toEqual([true, false]);
  });

  it("rejects a negative wait and unknown wait units", async () => {
    await rejects({ capabilities: ["email"], playbook: playbook([{ ...email, wait: { days: -1 } }]) }, "playbook.steps.0.wait.days");
    await rejects({ capabilities: ["email"], playbook: playbook([{ ...email, wait: { weeks: 1 } }]) }, "playbook.steps.0.wait.weeks");
  });

  it("defaults stop_on to reply, unsubscribe and bounce", async () => {
    const agent = await accepts({ capabilities: ["email"], playbook: playbook([email]) });
    expect(agent.playbook.stop_on).toEqual(["reply", "unsubscribe", "bounce"]);
  });

  it("rejects an unknown stop_on value", () =>
    rejects({ capabilities: ["email"], playbook: playbook([email], { stop_on: ["reply", "out_of_office"] }) }, "playbook.stop_on.1"));
});

describe("capabilities", () => {
  it("rejects an unknown capability", () => rejects({ capabilities: ["email", "telepathy"] }, "capabilities.1"));
  it("rejects duplicates", () => rejects({ capabilities: ["email", "email"] }, "capabilities"));

  it("rejects a step whose action needs a capability the agent lacks", async () => {
    const details = await rejects(
      { capabilities: ["email"], playbook: playbook([email, { action: "create_task" }, { action: "sync_to_crm" }]) },
      "playbook.steps.1.action",
    );
    expect(details.map((d) => d.path)).toEqual(["playbook.steps.1.action", "playbook.steps.2.action"]);
    expect(details[0]!.message).toContain("tasks");
  });

  it("rejects steps when no capabilities are given", () => rejects({ capabilities: undefined, playbook: playbook([email]) }, "playbook.steps.0.action"));
});

describe("llm_config", () => {
  it("rejects an unknown provider", () => rejects({ llm_config: { provider: "skynet" } }, "llm_config.provider"));
  it("rejects temperature below 0", () => rejects({ llm_config: { provider: "openai", temperature: -0.1 } }, "llm_config.temperature"));
  it("rejects temperature above 2", () => rejects({ llm_config: { provider: "openai", temperature: 2.1 } }, "llm_config.temperature"));
  it("accepts temperature 2", async () => {
    expect((await accepts({ llm_config: { provider: "openai", temperature: 2 } })).llm_config).toEqual({ provider: "openai", temperature: 2 });
  });
  it("rejects max_tokens 0", () => rejects({ llm_config: { max_tokens: 0 } }, "llm_config.max_tokens"));
  it("rejects max_tokens 8193", () => rejects({ llm_config: { max_tokens: 8193 } }, "llm_config.max_tokens"));
  it("rejects fractional max_tokens", () => rejects({ llm_config: { max_tokens: 1.5 } }, "llm_config.max_tokens"));
  it("defaults the provider to builtin", async () => {
    expect((await accepts({ llm_config: { max_tokens: 8192 } })).llm_config).toEqual({ provider: "builtin", max_tokens: 8192 });
  });
});

describe("monitoring", () => {
  it.each(["* * *", "61 * * * *", "* * * * 8", "* 24 * * *", "* * 0 * *", "* * * 13 *", "*/0 * * * *", "5-1 * * * *", "* * * * * *", "MON * * * *"])(
    "rejects the cron expression %j",
    async (cron) => {
      await rejects({ monitoring: { schedule_cron: cron } }, "monitoring.schedule_cron");
    },
  );

  it.each(["*/15 9-17 * * MON-FRI", "0 9 * * 1-5", "0 0 1 JAN,JUL *", "30 8 * * 7", "0,30 * * * *"])("accepts the cron expression %j", async (cron) => {
    expect((await accepts({ monitoring: { schedule_cron: cron } })).monitoring.schedule_cron).toBe(cron);
  });

  it("rejects a time zone that does not exist", () => rejects({ monitoring: { timezone: "Mars/Olympus" } }, "monitoring.timezone"));
  it("rejects an empty time zone", () => rejects({ monitoring: { timezone: "" } }, "monitoring.timezone"));
  it("rejects a UTC offset in place of a time zone", () => rejects({ monitoring: { timezone: "+01:00" } }, "monitoring.timezone"));

  it("accepts an IANA time zone", async () => {
    expect((await accepts({ monitoring: { timezone: "America/New_York" } })).monitoring).toEqual({
      timezone: "America/New_York",
      max_contacts_per_run: 50,
      cooldown_days: 30,
    });
  });

  it("rejects max_contacts_per_run 0", () => rejects({ monitoring: { max_contacts_per_run: 0 } }, "monitoring.max_contacts_per_run"));
  it("rejects max_contacts_per_run 1001", () => rejects({ monitoring: { max_contacts_per_run: 1001 } }, "monitoring.max_contacts_per_run"));
  it("accepts max_contacts_per_run 1 and 1000", async () => {
    await accepts({ monitoring: { max_contacts_per_run: 1 } });
    await accepts({ monitoring: { max_contacts_per_run: 1000 } });
  });

  it.each([-1, 366, 1.5, "30", null])("rejects cooldown_days %j", async (days) => {
    await rejects({ monitoring: { cooldown_days: days } }, "monitoring.cooldown_days");
  });
  it("accepts cooldown_days 0 (off) and 365", async () => {
    expect((await accepts({ monitoring: { cooldown_days: 0 } })).monitoring.cooldown_days).toBe(0);
    expect((await accepts({ monitoring: { cooldown_days: 365 } })).monitoring.cooldown_days).toBe(365);
  });

  it("rejects a filter with an unknown lifecycle stage", () =>
    rejects({ monitoring: { filter: { lifecycle_stage: ["lead", "alien"] } } }, "monitoring.filter.lifecycle_stage.1"));

  it("rejects unknown filter members", () => rejects({ monitoring: { filter: { country: "US" } } }, "monitoring.filter.country"));

  it("rejects a filter event without a type", () =>
    rejects({ monitoring: { filter: { event: { url_contains: "/pricing" } } } }, "monitoring.filter.event.type"));
});

describe("identity_id", () => {
  it.each(["ct_01JABCDEFGHJKMNPQRSTVWXYZ0", "id_", "identity", "id_has space", 42])("rejects the identity id %j", async (identityId) => {
    await rejects({ identity_id: identityId }, "identity_id");
  });

  it("rejects an identity that does not exist with 400 and changes nothing on PATCH", async () => {
    const { key } = await makeWorkspace();
    const unknown = "id_01JABCDEFGHJKMNPQRSTVWXYZ0";
    const created = await api("/v1/agents", { method: "POST", key, body: { name: "x", identity_id: unknown } });
    expect(expectError(created, 400, "validation_error").details).toEqual([expect.objectContaining({ path: "identity_id" })]);

    const agent = await makeAgent(key, { identity_id: await makeIdentity(key) });
    const patched = expectError(await patch(key, agent.id, { identity_id: unknown }), 400, "validation_error");
    expect(patched.details).toEqual([expect.objectContaining({ path: "identity_id" })]);
    expect((await api(`/v1/agents/${agent.id}`, { key })).body.agent).toStrictEqual(agent);
  });

  it("rejects another workspace's identity with 400", async () => {
    const owner = await makeWorkspace();
    const other = await makeWorkspace();
    const foreign = await makeIdentity(other.key);
    const res = await api("/v1/agents", { method: "POST", key: owner.key, body: { name: "x", identity_id: foreign } });
    expect(expectError(res, 400, "validation_error").details).toEqual([expect.objectContaining({ path: "identity_id" })]);
    const agent = await makeAgent(owner.key);
    expectError(await patch(owner.key, agent.id, { identity_id: foreign }), 400, "validation_error");
  });

  it("keeps an agent's identity through a PATCH of other fields", async () => {
    const { key } = await makeWorkspace();
    const identityId = await makeIdentity(key);
    const agent = await makeAgent(key, { identity_id: identityId });
    const res = await patch(key, agent.id, { name: "Renamed" });
    expect(res.body.agent.identity_id).toBe(identityId);
  });
});

describe("unknown fields", () => {
  it("names an unknown top-level field", async () => {
    const details = await rejects({ colour: "blue" }, "colour");
    expect(details).toEqual([{ path: "colour", message: expect.any(String) }]);
  });

  it("names unknown nested fields by their full path", async () => {
    await rejects({ llm_config: { provider: "openai", foo: 1 } }, "llm_config.foo");
    await rejects({ monitoring: { cron: "* * * * *" } }, "monitoring.cron");
    await rejects({ capabilities: ["email"], playbook: playbook([{ ...email, delay: 1 }]) }, "playbook.steps.0.delay");
    await rejects({ playbook: { playbook_md: "#", extra: true } }, "playbook.extra");
  });

  it("reports every problem at once", async () => {
    const details = await rejects({ name: "", llm_config: { temperature: 3 }, monitoring: { timezone: "Nowhere" }, foo: 1 }, "name");
    expect(details.map((d) => d.path).sort()).toEqual(["foo", "llm_config.temperature", "monitoring.timezone", "name"]);
  });
});

describe("types", () => {
  it("rejects a body that is not an object", async () => {
    const { key } = await makeWorkspace();
    expectError(await api("/v1/agents", { method: "POST", key, body: [] }), 400, "validation_error");
    expectError(await api("/v1/agents", { method: "POST", key, body: "not json" }), 400, "validation_error");
  });

  it("rejects a non-boolean enabled", () => rejects({ enabled: "true" }, "enabled"));
  it("rejects capabilities that are not a list", () => rejects({ capabilities: "email" }, "capabilities"));
});
