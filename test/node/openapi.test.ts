import { Validator } from "@seriousme/openapi-schema-validator";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { app } from "../../src/app";
import type { AppEnv } from "../../src/env";
import { SCOPES } from "../../src/lib/scopes";
import { validate } from "../../src/lib/validate";
import { requireKey, requireScope } from "../../src/middleware/auth";
import { idempotency } from "../../src/middleware/idempotency";
import { buildDocument } from "../../src/openapi/build";
import { openApiDocument } from "../../src/openapi/document";
import { describeRoute } from "../../src/openapi/route-doc";

type Json = Record<string, unknown>;
type OperationObject = Json & { "x-required-scope"?: string; security?: unknown[]; responses: Record<string, Json>; parameters?: Json[]; requestBody?: Json; tags: string[] };

const doc = openApiDocument(app.routes);
const paths = doc.paths as Record<string, Record<string, OperationObject>>;
const ERROR_REF = "#/components/schemas/Error";

/** Every operation object in the document, with where it sits. */
const operations = Object.entries(paths).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, operation]) => ({ label: `${method.toUpperCase()} ${path}`, operation })),
);

const INFO = { title: "t", version: "1", description: "d", contact: { name: "c" }, license: { name: "l" }, tags: { Things: "Things" } };
const thing = (summary: string) =>
  describeRoute({ summary, description: "A thing.", tag: "Things", success: { status: 200, description: "The thing", schema: z.object({ id: z.string() }) } });

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const validator = new Validator();
    // Round-trip through JSON: the validator must see exactly what /v1/openapi.json serves.
    const result = await validator.validate(JSON.parse(JSON.stringify(doc)) as Json);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("would fail validation if an error response lost its description", async () => {
    // Guards the check above: the validator does look inside operations.
    const broken = JSON.parse(JSON.stringify(doc)) as { paths: Record<string, Record<string, OperationObject>> };
    delete broken.paths["/v1/health"]!.get!.responses["500"]!.description;
    const result = await new Validator().validate(broken as Json);
    expect(result.valid).toBe(false);
  });

  it("uses only scopes that exist", () => {
    for (const { label, operation } of operations) {
      const scope = operation["x-required-scope"];
      if (scope !== undefined) expect(SCOPES, label).toContain(scope);
    }
  });

  it("points every error response at the Error schema", () => {
    expect(doc.components.schemas.Error).toBeDefined();
    for (const { label, operation } of operations) {
      const errors = Object.entries(operation.responses).filter(([status]) => Number(status) >= 400);
      expect(errors.map(([status]) => status), label).toContain("500");
      for (const [status, response] of errors) {
        expect(response, `${label} ${status}`).toMatchObject({
          description: expect.any(String),
          content: { "application/json": { schema: { $ref: ERROR_REF } } },
        });
      }
    }
  });

  it("documents the Error schema as the envelope", () => {
    const error = doc.components.schemas.Error as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(error.properties).sort()).toEqual(["code", "details", "error", "request_id", "status", "timestamp"]);
    expect([...error.required].sort()).toEqual(["code", "error", "request_id", "status", "timestamp"]);
  });

  it("resolves every $ref to a component", () => {
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of new Set(refs)) {
      const target = ref.slice('"$ref":"'.length, -1);
      expect(target, ref).toMatch(/^#\/components\/schemas\//);
      expect(doc.components.schemas[target.slice("#/components/schemas/".length)], target).toBeDefined();
    }
  });

  it("gives every operation a unique operationId", () => {
    const ids = operations.map(({ operation }) => (operation as Json).operationId);
    expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("gives every operation a summary, a description and one tag that the document declares with a description", () => {
    const tags = new Map((doc.tags as { name: string; description: string }[]).map((t) => [t.name, t.description]));
    for (const { label, operation } of operations) {
      expect(operation.summary, label).toEqual(expect.any(String));
      expect((operation.description as string).length, label).toBeGreaterThan(20);
      expect(operation.tags, label).toHaveLength(1);
      expect(tags.get(operation.tags[0]!), label).toEqual(expect.any(String));
    }
  });

  it("offers Idempotency-Key on every POST and PATCH that takes a key or the admin token, but POST /mcp", () => {
    for (const { label, operation } of operations) {
      const [method, path] = label.split(" ");
      if ((method !== "POST" && method !== "PATCH") || operation.security?.length === 0) continue;
      // JSON-RPC messages carry their own ids; /mcp takes no Idempotency-Key.
      const offered = (operation.parameters ?? []).some((p) => p.name === "Idempotency-Key" && p.in === "header");
      expect(offered, label).toBe(path !== "/mcp");
    }
  });

  it("lists 413 and 415 wherever a JSON body is accepted", () => {
    const withBody = operations.filter(({ operation }) => operation.requestBody);
    expect(withBody.length).toBeGreaterThan(15);
    for (const { label, operation } of withBody) {
      expect(operation.responses["413"], label).toBeDefined();
      // The Resend webhook reads its raw body itself, to check the signature over it.
      if (label !== "POST /v1/inbound/resend") expect(operation.responses["415"], label).toBeDefined();
    }
  });

  it("names its schemas for API users: no generated names, no circular references", () => {
    const schemas = doc.components.schemas as Record<string, Json>;
    for (const name of Object.keys(schemas)) expect(name).toMatch(/^[A-Z][A-Za-z]+$/);
    const refsOf = (name: string) => [...JSON.stringify(schemas[name]).matchAll(/"#\/components\/schemas\/(\w+)"/g)].map((m) => m[1]!);
    const reaches = (from: string, target: string, seen = new Set<string>()): boolean =>
      refsOf(from).some((next) => next === target || (!seen.has(next) && (seen.add(next), reaches(next, target, seen))));
    for (const name of Object.keys(schemas)) expect(reaches(name, name), `${name} refers back to itself`).toBe(false);
  });
});

describe("building the document from routes", () => {
  it("refuses a route declared without describeRoute", () => {
    const routes = new Hono<AppEnv>().get("/described", thing("Get a thing"), (c) => c.text("")).get("/bare", (c) => c.text(""));
    expect(() => buildDocument(routes.routes, INFO)).toThrow("GET /bare has no describeRoute");
  });

  it("takes the scope, parameters, body and Idempotency-Key from the route's own chain", () => {
    const routes = new Hono<AppEnv>()
      .use(requireKey)
      .post("/things/:id", thing("Update a thing"), requireScope("contacts:write"), idempotency, validate("param", z.strictObject({ id: z.string() })), validate("json", z.strictObject({ name: z.string().default("x") })), (c) => c.text(""))
      .get("/things", thing("List things"), requireScope("contacts:read"), (c) => c.text(""));
    const built = buildDocument(routes.routes, INFO).paths as Record<string, Record<string, OperationObject>>;
    const update = built["/things/{id}"]!.post!;
    expect(update["x-required-scope"]).toBe("contacts:write");
    expect(update.parameters!.map((p) => `${p.in}:${p.name}`)).toEqual(["path:id", "header:Idempotency-Key"]);
    expect(update.requestBody).toMatchObject({ required: false });
    expect(Object.keys(update.responses)).toEqual(["200", "400", "401", "403", "404", "409", "422", "500"]);
    const list = built["/things"]!.get!;
    expect(list["x-required-scope"]).toBe("contacts:read");
    expect(list.parameters).toBeUndefined();
    expect(Object.keys(list.responses)).toEqual(["200", "401", "403", "500"]);
  });

  it("refuses a path parameter that no schema describes", () => {
    const routes = new Hono<AppEnv>().get("/things/:id", thing("Get a thing"), (c) => c.text(""));
    expect(() => buildDocument(routes.routes, INFO)).toThrow("path parameter id has no schema");
  });

  it("applies a `use` middleware only to the routes registered after it on a path it covers", () => {
    const before = new Hono<AppEnv>().get("/open", thing("Get an open thing"), (c) => c.text(""));
    const after = new Hono<AppEnv>().get("/", thing("List keyed things"), (c) => c.text(""));
    const routes = new Hono<AppEnv>().route("/v1/open", before).use("/v1/*", requireKey).route("/v1/keyed", after).get("/other", thing("Get another thing"), (c) => c.text(""));
    const built = buildDocument(routes.routes, INFO).paths as Record<string, Record<string, OperationObject>>;
    expect(built["/v1/open/open"]!.get!.responses["401"]).toBeUndefined();
    expect(built["/v1/keyed"]!.get!.responses["401"]).toBeDefined();
    expect(built["/other"]!.get!.responses["401"]).toBeUndefined();
  });

  it("refuses a chain that takes the Idempotency-Key before the scope check", () => {
    const routes = new Hono<AppEnv>().use(requireKey).post("/things", thing("Make a thing"), idempotency, requireScope("contacts:write"), (c) => c.text(""));
    expect(() => buildDocument(routes.routes, INFO)).toThrow("idempotency must come after the key and scope checks");
  });
});
