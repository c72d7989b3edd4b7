import { env, exports } from "cloudflare:workers";
import { Hono } from "hono";
import { describe, expect, it, vi } from "vitest";
import type { AppEnv } from "../src/env";
import { MAX_BODY_BYTES } from "../src/middleware/body";
import { notFound, onError } from "../src/middleware/errors";
import { requestContext } from "../src/middleware/request-id";
import { api, expectError, makeAgent, makeWorkspace, type ApiResponse } from "./helpers";

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Sends a raw body to POST /v1/agents and reads the answer. */
async function postRaw(key: string, body: BodyInit, headers: Record<string, string> = {}): Promise<ApiResponse> {
  const res = await exports.default.fetch("https://cairn.test/v1/agents", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, ...headers },
    body,
  });
  return { status: res.status, headers: res.headers, body: JSON.parse(await res.text()) };
}

/** A JSON object of exactly `size` bytes. */
const jsonOfSize = (size: number) => {
  const shell = JSON.stringify({ name: "x", description: "" });
  return JSON.stringify({ name: "x", description: "d".repeat(size - shell.length) });
};

describe("unknown routes", () => {
  it("answer 404 with the error envelope", async () => {
    const { key } = await makeWorkspace();
    const body = expectError(await api("/v1/nothing-here", { key }), 404, "not_found");
    expect(body.error).toContain("/v1/nothing-here");
    expectError(await api("/v1/agents/agt_x/nope", { key, method: "POST", body: {} }), 404, "not_found");
  });

  it("answer 401 under /v1 without a key, since the key is checked before routing", async () => {
    expectError(await api("/v1/nothing-here"), 401, "unauthorized");
  });

  it("answer 404 outside /v1 without a key", async () => {
    expectError(await api("/"), 404, "not_found");
    expectError(await api("/v2/agents"), 404, "not_found");
  });

  it("answer 404 for a known path with an unsupported method", async () => {
    const { key } = await makeWorkspace();
    expectError(await api("/v1/agents", { key, method: "PUT", body: {} }), 404, "not_found");
  });
});

describe("uncaught exceptions", () => {
  it("answer 500 internal_error without the stack or the message", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const throwing = new Hono<AppEnv>()
      .use(requestContext)
      .get("/boom", () => {
        throw new Error("D1_ERROR: no such column: secret_sauce (SELECT * FROM api_keys)");
      })
      .onError(onError)
      .notFound(notFound);

    const res = await throwing.fetch(new Request("https://cairn.test/boom"), env);
    const text = await res.text();
    const response = { status: res.status, headers: res.headers, body: JSON.parse(text) };
    const body = expectError(response, 500, "internal_error");
    expect(Object.keys(body).sort()).toEqual(["code", "error", "request_id", "status", "timestamp"]);
    expect(text).not.toMatch(/secret_sauce|SELECT|api_keys|D1_ERROR|at\s|\.ts:\d/);

    // The operator still gets the whole story, tied to the request id.
    const logged = log.mock.calls.map((args) => args.join(" ")).join("\n");
    expect(logged).toContain(body.request_id);
    expect(logged).toContain("secret_sauce");
    log.mockRestore();
  });

  it("answer 500 from a real route whose stored row cannot be read", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    // A row no code path writes: its JSON column is corrupt, so reading it throws.
    await env.DB.prepare("UPDATE agents SET monitoring = '{not json' WHERE id = ?").bind(agent.id).run();

    const res = await api(`/v1/agents/${agent.id}`, { key });
    const body = expectError(res, 500, "internal_error");
    expect(JSON.stringify(body)).not.toMatch(/not json|SyntaxError|JSON|stack/);
    expect(log).toHaveBeenCalled();
    log.mockRestore();
  });
});

describe("Request-Id", () => {
  it("is on every success response, one per request", async () => {
    const { key } = await makeWorkspace();
    const [a, b] = [await api("/v1/agents", { key }), await api("/v1/health")];
    expect(a.status).toBe(200);
    expect(a.headers.get("Request-Id")).toMatch(/^req_[0-9A-Z]{26}$/);
    expect(b.headers.get("Request-Id")).toMatch(/^req_[0-9A-Z]{26}$/);
    expect(a.headers.get("Request-Id")).not.toBe(b.headers.get("Request-Id"));
    const created = await api("/v1/agents", { key, method: "POST", body: { name: "x" } });
    expect(created.status).toBe(201);
    expect(created.headers.get("Request-Id")).toMatch(/^req_/);
  });

  it("equals the body's request_id on error responses", async () => {
    const { key } = await makeWorkspace(["agents:read"]);
    // expectError asserts the header agrees with the body.
    expectError(await api("/v1/agents"), 401, "unauthorized");
    expectError(await api("/v1/agents", { key, method: "POST", body: { name: "x" } }), 403, "insufficient_scope");
    expectError(await api("/v1/agents?limit=0", { key }), 400, "validation_error");
    expectError(await api("/v1/agents/agt_missing", { key }), 404, "not_found");
    expectError(await api("/v1/nope", { key }), 404, "not_found");
  });
});

describe("request bodies", () => {
  it("answers 413 for a body over 1 MiB with a Content-Length", async () => {
    const { key } = await makeWorkspace();
    const body = jsonOfSize(MAX_BODY_BYTES + 1);
    expect(MAX_BODY_BYTES).toBe(1024 * 1024);
    const res = await postRaw(key, body, { "Content-Type": "application/json" });
    expectError(res, 413, "payload_too_large");
  });

  it("answers 413 for a streamed body over 1 MiB without a Content-Length", async () => {
    const { key } = await makeWorkspace();
    const chunk = new TextEncoder().encode("d".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode('{"name":"x","description":"'));
        if (sent > MAX_BODY_BYTES + chunk.byteLength) {
          controller.enqueue(new TextEncoder().encode('"}'));
          controller.close();
          return;
        }
        controller.enqueue(chunk);
        sent += chunk.byteLength;
      },
    });
    const res = await postRaw(key, stream, { "Content-Type": "application/json" });
    expectError(res, 413, "payload_too_large");
  });

  it("reads a body of exactly 1 MiB", async () => {
    const { key } = await makeWorkspace();
    const body = jsonOfSize(MAX_BODY_BYTES);
    expect(new TextEncoder().encode(body).byteLength).toBe(MAX_BODY_BYTES);
    // Read and parsed, then refused by the schema (description is at most 2000 chars), not by size.
    const res = await postRaw(key, body, { "Content-Type": "application/json" });
    expect(expectError(res, 400, "validation_error").details).toContainEqual(expect.objectContaining({ path: "description" }));
  });

  it("answers 415 for a body that is not JSON", async () => {
    const { key } = await makeWorkspace();
    expectError(await postRaw(key, "name=x", { "Content-Type": "application/x-www-form-urlencoded" }), 415, "unsupported_media_type");
    expectError(await postRaw(key, '{"name":"x"}', { "Content-Type": "text/plain" }), 415, "unsupported_media_type");
  });

  it("accepts JSON with a charset parameter", async () => {
    const { key } = await makeWorkspace();
    const res = await postRaw(key, '{"name":"x"}', { "Content-Type": "application/json; charset=utf-8" });
    expect(res.status).toBe(201);
  });

  it("answers 400 for malformed JSON", async () => {
    const { key } = await makeWorkspace();
    expectError(await api("/v1/agents", { key, method: "POST", body: '{"name":' }), 400, "validation_error");
    expectError(await api("/v1/agents", { key, method: "POST", body: "{'name':'x'}" }), 400, "validation_error");
  });

  it("answers 400 for a JSON body that is not an object", async () => {
    const { key } = await makeWorkspace();
    expectError(await api("/v1/agents", { key, method: "POST", body: "[]" }), 400, "validation_error");
    expectError(await api("/v1/agents", { key, method: "POST", body: "null" }), 400, "validation_error");
  });

  it("rejects unknown body fields and names them", async () => {
    const { key } = await makeWorkspace();
    const res = await api("/v1/agents", { key, method: "POST", body: { name: "x", bogus: 1 } });
    const body = expectError(res, 400, "validation_error");
    expect(body.details).toContainEqual({ path: "bogus", message: expect.any(String) });
  });

  it("names unknown fields inside nested objects by their full path", async () => {
    const { key } = await makeWorkspace();
    const res = await api("/v1/agents", { key, method: "POST", body: { name: "x", llm_config: { provider: "builtin", temp: 1 } } });
    expect(expectError(res, 400, "validation_error").details).toContainEqual(expect.objectContaining({ path: "llm_config.temp" }));
  });

  it("rejects unknown fields on PATCH too", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key);
    const res = await api(`/v1/agents/${agent.id}`, { key, method: "PATCH", body: { name: "y", bogus: true } });
    expect(expectError(res, 400, "validation_error").details).toContainEqual(expect.objectContaining({ path: "bogus" }));
  });
});

describe("list paging", () => {
  it.each([
    "limit=0",
    "limit=101",
    "limit=1.5",
    "limit=abc",
    "limit=",
    "limit=-5",
    "limit=0x10",
    "limit=1e1",
    "limit=%205",
    "limit=10&limit=20",
    "offset=-1",
    "offset=1.5",
    "offset=abc",
    "offset=",
    "offset=1e3",
    "offset=0b1",
  ])(
    "answers 400 for %s",
    async (query) => {
      const { key } = await makeWorkspace();
      const body = expectError(await api(`/v1/agents?${query}`, { key }), 400, "validation_error");
      expect(body.details).toContainEqual(expect.objectContaining({ path: query.split("=")[0] }));
    },
  );

  it("says why a paging value was refused", async () => {
    const { key } = await makeWorkspace();
    const details = async (query: string) => expectError(await api(`/v1/agents?${query}`, { key }), 400, "validation_error").details;
    expect(await details("limit=0")).toEqual([{ path: "limit", message: "Must be at least 1" }]);
    expect(await details("limit=101")).toEqual([{ path: "limit", message: "Must be at most 100" }]);
    expect(await details("limit=abc")).toEqual([{ path: "limit", message: "Must be a whole number" }]);
    expect(await details("offset=-1")).toEqual([{ path: "offset", message: "Must be a whole number" }]);
  });

  it("accepts the bounds", async () => {
    const { key } = await makeWorkspace();
    const max = await api("/v1/agents?limit=100&offset=0", { key });
    expect(max.status).toBe(200);
    expect(max.body).toMatchObject({ limit: 100, offset: 0, total: 0, agents: [] });
    const min = await api("/v1/agents?limit=1&offset=5", { key });
    expect(min.body).toMatchObject({ limit: 1, offset: 5 });
  });

  it("defaults to limit 20, offset 0", async () => {
    const { key } = await makeWorkspace();
    expect((await api("/v1/agents", { key })).body).toMatchObject({ limit: 20, offset: 0 });
  });
});

describe("agent ids", () => {
  it.each([
    ["an unknown well-formed id", "agt_01JZZZZZZZZZZZZZZZZZZZZZZZ"],
    ["a malformed id", "not-an-id"],
    ["another resource's id", "ws_01JZZZZZZZZZZZZZZZZZZZZZZZ"],
    ["an over-long id", `agt_${"A".repeat(200)}`],
    ["an id with SQL in it", encodeURIComponent("agt_x' OR '1'='1")],
    ["an id with unicode", encodeURIComponent("agt_\u00e9\u{1F600}")],
  ])("answers 404 for %s on GET, PATCH and DELETE", async (_label, id) => {
    const { key } = await makeWorkspace();
    await makeAgent(key);
    expectError(await api(`/v1/agents/${id}`, { key }), 404, "not_found");
    expectError(await api(`/v1/agents/${id}`, { key, method: "PATCH", body: { name: "y" } }), 404, "not_found");
    expectError(await api(`/v1/agents/${id}`, { key, method: "DELETE" }), 404, "not_found");
  });

  it("answers 404 for another workspace's agent", async () => {
    const mine = await makeWorkspace();
    const theirs = await makeWorkspace();
    const agent = await makeAgent(theirs.key);
    expectError(await api(`/v1/agents/${agent.id}`, { key: mine.key }), 404, "not_found");
  });
});

describe("error envelope", () => {
  it("has exactly the documented fields", async () => {
    const { key } = await makeWorkspace();
    const res = await api("/v1/agents", { key, method: "POST", body: { name: "" } });
    const body = expectError(res, 400, "validation_error");
    expect(Object.keys(body).sort()).toEqual(["code", "details", "error", "request_id", "status", "timestamp"]);
    expect(body.timestamp).toMatch(ISO_MS);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  });
});
