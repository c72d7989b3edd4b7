import { describe, expect, it } from "vitest";
import { approve, contactOf, getRun, makeContact, makeStepsAgent, startRun } from "./engine-helpers";
import { admin, api, expectError, makeAgent, makeWorkspace, type Json } from "./helpers";
import { makeContacts, trigger } from "./run-helpers";

// CONTRACT.md section 9: hostile input is a 400 (or a correct answer), never a 500.

const paths = (body: Json) => (body.details as Json[]).map((d) => d.path as string);

/** `{"a":{"a":...1}}`: `levels` nested objects, as JSON text (too deep for JSON.stringify to be safe). */
const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;

/** An object `levels` deep, for bodies sent as objects. */
const nestedValue = (levels: number): Json => JSON.parse(nested(levels));

let emails = 0;
const email = () => `hostile${++emails}@example.com`;

/** POST /v1/contacts with a raw JSON body. */
const postContactText = (key: string, text: string) => api("/v1/contacts", { method: "POST", key, body: text });

/** POSTs `body` as is, with no Authorization unless `headers` has one. */
const send = (path: string, body: string, headers: Record<string, string> = {}) => api(path, { method: "POST", body, headers });

describe("string filters longer than D1's LIKE pattern limit", () => {
  it("finds contacts by a 200-character search, case-insensitively and with % and _ literal", async () => {
    const { key } = await makeWorkspace();
    const company = `${"A".repeat(100)}%_${"b".repeat(98)}`;
    const match = await makeContact(key, { company });
    await makeContact(key, { company: `${"A".repeat(100)}xy${"b".repeat(98)}` });

    const res = await api(`/v1/contacts?search=${encodeURIComponent(company.toLowerCase())}`, { key });

    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.contacts.map((c: Json) => c.id)).toEqual([match.id]);
    expect(res.body.total).toBe(1);
  });

  it("triggers an agent whose url_contains is 2000 characters, matching the contact whose events contain it", async () => {
    const { key } = await makeWorkspace();
    const url = `https://example.com/${"pricing-".repeat(248)}`.slice(0, 2000);
    const agent = await makeAgent(key, {
      capabilities: ["notes"],
      monitoring: { filter: { event: { type: "page_view", url_contains: url.toUpperCase() } } },
    });
    const [hit, miss] = await makeContacts(key, 2);
    const events = [
      { contact_id: hit!.id, type: "page_view", url },
      { contact_id: miss!.id, type: "page_view", url: url.slice(0, 1999) },
    ];
    expect((await api("/v1/events", { method: "POST", key, body: { events } })).status).toBe(201);

    const res = await trigger(key, agent.id);

    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((await getRun(key, res.body.run_id)).contacts.map((c: Json) => c.contact_id)).toEqual([hit!.id]);
  });
});

describe("free JSON", () => {
  it("refuses contact properties 33 levels deep with a 400 naming the field, and takes 32", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await api("/v1/contacts", { method: "POST", key, body: { email: email(), properties: nestedValue(33) } }), 400, "validation_error");
    expect(paths(body)).toEqual(["properties"]);

    const res = await api("/v1/contacts", { method: "POST", key, body: { email: email(), properties: nestedValue(32) } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });

  it("refuses contact properties over 64 KiB serialised with a 400 naming the field", async () => {
    const { key } = await makeWorkspace();
    const properties = { notes: "x".repeat(64 * 1024) };
    const body = expectError(await api("/v1/contacts", { method: "POST", key, body: { email: email(), properties } }), 400, "validation_error");
    expect(paths(body)).toEqual(["properties"]);

    const contact = await makeContact(key);
    const patched = await api(`/v1/contacts/${contact.id}`, { method: "PATCH", key, body: { properties } });
    expect(paths(expectError(patched, 400, "validation_error"))).toEqual(["properties"]);
  });

  it("refuses contact properties nested 10,000 levels with a 400, not a stack overflow", async () => {
    const { key } = await makeWorkspace();
    const res = await postContactText(key, `{"email":"${email()}","properties":${nested(10_000)}}`);
    const body = expectError(res, 400, "validation_error");
    expect(paths(body)[0]).toMatch(/^properties(\.|$)/);
  });

  it("refuses event properties 33 levels deep, naming the event's field", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const events = [{ contact_id: contact.id, type: "page_view", properties: nestedValue(33) }];
    const body = expectError(await api("/v1/events", { method: "POST", key, body: { events } }), 400, "validation_error");
    expect(paths(body)).toEqual(["events.0.properties"]);
  });

  it("refuses approve params too deep or too big with a 400 naming params, and leaves the action pending", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "note", action: "create_note", template: { note: "Hi" } }]);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id]);

    const path = `/v1/agents/runs/${runId}/contacts/${contact.id}/actions/0/approve`;
    const deepest = await api(path, { method: "POST", key, body: `{"params":${nested(10_000)}}` });
    expect(paths(expectError(deepest, 400, "validation_error"))[0]).toMatch(/^params(\.|$)/);
    expect(paths(expectError(await approve(key, runId, contact.id, 0, { params: nestedValue(33) }), 400, "validation_error"))).toEqual(["params"]);
    const big = { note: "x".repeat(64 * 1024) };
    expect(paths(expectError(await approve(key, runId, contact.id, 0, { params: big }), 400, "validation_error"))).toEqual(["params"]);

    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("pending_approval");
  });
});

describe("prototype keys and lone surrogates", () => {
  it("refuses __proto__ in contact properties, naming the path, instead of dropping it", async () => {
    const { key } = await makeWorkspace();
    const res = await postContactText(key, `{"email":"${email()}","properties":{"plan":"pro","__proto__":{"admin":true}}}`);
    expect(paths(expectError(res, 400, "validation_error"))).toEqual(["properties.__proto__"]);
  });

  it("refuses constructor and prototype anywhere in a body, filters included", async () => {
    const { key } = await makeWorkspace();
    const agent = await api("/v1/agents", {
      method: "POST",
      key,
      body: { name: "Proto", capabilities: ["notes"], monitoring: { filter: { properties: { constructor: "x" } } } },
    });
    expect(paths(expectError(agent, 400, "validation_error"))).toEqual(["monitoring.filter.properties.constructor"]);

    const contact = await api("/v1/contacts", { method: "POST", key, body: { email: email(), properties: { a: [{ prototype: 1 }] } } });
    expect(paths(expectError(contact, 400, "validation_error"))).toEqual(["properties.a.0.prototype"]);
  });

  it("refuses a string value with a lone surrogate, naming the path, instead of rewriting it", async () => {
    const { key } = await makeWorkspace();
    const res = await postContactText(key, `{"email":"${email()}","first_name":"Ann\\ud800"}`);
    expect(paths(expectError(res, 400, "validation_error"))).toEqual(["first_name"]);
    const nestedString = await postContactText(key, `{"email":"${email()}","properties":{"tags":["ok","\\udc00"]}}`);
    expect(paths(expectError(nestedString, 400, "validation_error"))).toEqual(["properties.tags.1"]);

    // A surrogate pair is one well-formed character.
    const pair = await postContactText(key, `{"email":"${email()}","first_name":"Ann \\ud83d\\ude00","properties":{"meta":{"\\ud83d\\ude00":"ok"}}}`);
    expect(pair.status, JSON.stringify(pair.body)).toBe(201);
    expect(pair.body.contact.first_name).toBe("Ann \u{1F600}");
  });

  it("refuses a key with a lone surrogate, naming its path", async () => {
    const { key } = await makeWorkspace();
    const res = await postContactText(key, `{"email":"${email()}","properties":{"meta":{"x\\ud800":1}}}`);
    const body = expectError(res, 400, "validation_error");
    expect(paths(body)).toEqual(["properties.meta.x\ufffd"]);
  });

  it("refuses a body nested deeper than 64 levels on any route, even one that ignores its body", async () => {
    const { key } = await makeWorkspace();
    const contact = await makeContact(key);
    const res = await api(`/v1/contacts/${contact.id}`, { method: "DELETE", key, body: `{"x":${nested(64)}}` });
    const body = expectError(res, 400, "validation_error");
    expect(paths(body)[0]).toMatch(/^x\.a/);
    expect((await api(`/v1/contacts/${contact.id}`, { key })).status).toBe(200);
  });
});

describe("path integers", () => {
  it("answers 404 for an action index that is not a canonical decimal", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [{ id: "note", action: "create_note", template: { note: "Hi" } }]);
    const contact = await makeContact(key);
    const runId = await startRun(key, agent.id, [contact.id]);
    const at = (index: string) => `/v1/agents/runs/${runId}/contacts/${contact.id}/actions/${index}/approve`;

    for (const index of ["00", "01", "000", "0000"]) {
      expectError(await api(at(index), { method: "POST", key, body: {} }), 404, "not_found");
    }
    expect(contactOf(await getRun(key, runId), contact.id).actions[0].status).toBe("pending_approval");
    expect((await api(at("0"), { method: "POST", key, body: {} })).status).toBe(200);
  });
});

describe("the key is checked before the body is read", () => {
  const twoMegabytes = JSON.stringify({ name: "x".repeat(2 * 1024 * 1024) });

  it("answers 401 without a valid key, whatever the body", async () => {
    const json = { "Content-Type": "application/json" };
    expectError(await send("/v1/agents", twoMegabytes, json), 401, "unauthorized");
    expectError(await send("/v1/agents", "name=x", { "Content-Type": "text/plain" }), 401, "unauthorized");
    expectError(await send("/v1/agents", "{not json", json), 401, "unauthorized");
    expectError(await send("/v1/agents", twoMegabytes, { ...json, Authorization: "Bearer cairn_sk_unknown" }), 401, "unauthorized");
    expectError(await send("/v1/nothing-here", twoMegabytes, json), 401, "unauthorized");

    // With a valid key the body is read as before.
    const { key } = await makeWorkspace();
    const auth = { Authorization: `Bearer ${key}` };
    expectError(await send("/v1/agents", twoMegabytes, { ...auth, ...json }), 413, "payload_too_large");
    expectError(await send("/v1/agents", "name=x", { ...auth, "Content-Type": "text/plain" }), 415, "unsupported_media_type");
    expectError(await send("/v1/agents", "{not json", { ...auth, ...json }), 400, "validation_error");
  });

  it("answers 401 on operator routes without the admin token, whatever the body", async () => {
    const json = { "Content-Type": "application/json" };
    expectError(await send("/v1/admin/workspaces", twoMegabytes, json), 401, "unauthorized");
    expectError(await send("/v1/admin/workspaces", "name=x", { "Content-Type": "text/plain", Authorization: "Bearer wrong" }), 401, "unauthorized");

    // With the token the body is read as before.
    expectError(await admin("/v1/admin/workspaces", { method: "POST", body: "{not json" }), 400, "validation_error");
    expectError(await admin("/v1/admin/workspaces", { method: "POST", body: "name=x", headers: { "Content-Type": "text/plain" } }), 415, "unsupported_media_type");
  });
});
