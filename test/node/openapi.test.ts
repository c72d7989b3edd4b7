import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { SCOPES, type Scope } from "../../src/lib/scopes";
import { documentedOperations, openApiDocument } from "../../src/openapi/document";

type Json = Record<string, unknown>;
type OperationObject = { "x-required-scope"?: string; security?: unknown[]; responses: Record<string, Json>; parameters?: Json[] };

const doc = openApiDocument();
const paths = doc.paths as Record<string, Record<string, OperationObject>>;
const ERROR_REF = "#/components/schemas/Error";

const openApiPath = (path: string) => path.replace(/:(\w+)/g, "{$1}");
const operationOf = (method: string, path: string) => paths[openApiPath(path)]?.[method];
const isScope = (auth: string | null): auth is Scope => SCOPES.includes(auth as Scope);

/** Every operation object in the document, with where it sits. */
const operations = Object.entries(paths).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, operation]) => ({ label: `${method.toUpperCase()} ${path}`, operation })),
);

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

  it("documents every operation in the route table", () => {
    expect(documentedOperations.length).toBeGreaterThan(0);
    for (const op of documentedOperations) {
      expect(operationOf(op.method, op.path), `${op.method} ${op.path}`).toBeDefined();
    }
    expect(operations).toHaveLength(documentedOperations.length);
  });

  it("names the required scope of every scoped operation", () => {
    for (const op of documentedOperations) {
      const operation = operationOf(op.method, op.path)!;
      if (isScope(op.auth)) {
        expect(operation["x-required-scope"], `${op.method} ${op.path}`).toBe(op.auth);
        expect(operation.responses["403"], `${op.method} ${op.path} answers 403`).toBeDefined();
      } else {
        expect([null, "key", "admin"], `${op.method} ${op.path} auth`).toContain(op.auth);
        expect(operation["x-required-scope"]).toBeUndefined();
      }
    }
  });

  it("uses only scopes that exist", () => {
    for (const { label, operation } of operations) {
      const scope = operation["x-required-scope"];
      if (scope !== undefined) expect(SCOPES, label).toContain(scope);
    }
  });

  it("marks public operations as needing no credentials and admin ones as needing the admin token", () => {
    for (const op of documentedOperations) {
      const operation = operationOf(op.method, op.path)!;
      if (op.auth === null) expect(operation.security, `${op.method} ${op.path}`).toEqual([]);
      if (op.auth === "admin") expect(operation.security, `${op.method} ${op.path}`).toEqual([{ adminToken: [] }]);
      if (op.auth !== null) expect(operation.responses["401"], `${op.method} ${op.path} answers 401`).toBeDefined();
    }
    const schemes = doc.components.securitySchemes as Record<string, unknown>;
    expect(Object.keys(schemes).sort()).toEqual(["adminToken", "apiKey"]);
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

  it("offers Idempotency-Key on every POST and PATCH of the /v1 API", () => {
    for (const { label, operation } of operations) {
      const [method, path] = label.split(" ");
      if (method !== "POST" && method !== "PATCH") continue;
      // POST /mcp carries JSON-RPC messages, which have their own ids; it takes no Idempotency-Key.
      if (path === "/mcp") continue;
      expect(operation.parameters ?? [], label).toContainEqual(expect.objectContaining({ name: "Idempotency-Key", in: "header" }));
    }
  });

  it("gives every operation a unique operationId", () => {
    const ids = operations.map(({ operation }) => (operation as Json).operationId);
    expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
