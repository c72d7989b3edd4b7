import { describe, expect, it } from "vitest";
import { app } from "../src/app";
import { SCOPES } from "../src/lib/scopes";
import { openApiDocument } from "../src/openapi/document";
import { ADMIN_TOKEN, api, expectError, makeWorkspace } from "./helpers";

const METHODS = ["get", "post", "put", "patch", "delete"];
type Operation = { "x-required-scope"?: string; parameters?: { name: string; in: string }[]; security?: unknown[] };

const doc = () => openApiDocument(app.routes);
const operations = () =>
  Object.entries(doc().paths as Record<string, Record<string, Operation>>).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
  );
/** A concrete URL of a documented path: every parameter an id that names nothing. */
const concrete = (path: string) => path.replace(/\{(\w+)\}/g, (_, name: string) => (name === "actionIndex" ? "0" : `${name}_nothing`));

describe("GET /v1/openapi.json", () => {
  it("serves the document built from the app's routes, without a key", async () => {
    const res = await api("/v1/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    expect(res.body.openapi).toBe("3.1.0");
    expect(res.body).toEqual(JSON.parse(JSON.stringify(doc())));
  });
});

describe("the document and the routes", () => {
  it("documents each route's scope as the one the route enforces: a key with every other scope gets 403", async () => {
    const scoped = operations().filter(({ operation }) => operation["x-required-scope"]);
    expect(scoped.length).toBeGreaterThan(30);
    for (const { method, path, operation } of scoped) {
      const scope = operation["x-required-scope"]!;
      const { key } = await makeWorkspace(SCOPES.filter((s) => s !== scope));
      const refused = await api(concrete(path), { method, key });
      expectError(refused, 403, "insufficient_scope");
      expect(refused.body.details, `${method} ${path}`).toEqual([{ path: "scope", message: `Requires ${scope}` }]);
    }
  });

  it("offers Idempotency-Key only where the route honours it: a malformed key is refused on each", async () => {
    const { key } = await makeWorkspace();
    const offering = operations().filter(({ operation }) => operation.parameters?.some((p) => p.name === "Idempotency-Key" && p.in === "header"));
    expect(offering.length).toBeGreaterThan(15);
    for (const { method, path, operation } of offering) {
      const caller = JSON.stringify(operation.security) === '[{"adminToken":[]}]' ? ADMIN_TOKEN : key;
      const res = await api(concrete(path), { method, key: caller, headers: { "Idempotency-Key": "two words" }, body: {} });
      expect(res.status, `${method} ${path}`).toBe(400);
      expect(res.body.details, `${method} ${path}`).toEqual([{ path: "Idempotency-Key", message: "Invalid header value" }]);
    }
  });
});
