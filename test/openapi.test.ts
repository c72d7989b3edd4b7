import { describe, expect, it } from "vitest";
import { app } from "../src/app";
import { openApiDocument } from "../src/openapi/document";
import { api } from "./helpers";

const METHODS = ["get", "post", "put", "patch", "delete"];

/** `METHOD /path` for every route the Hono app answers, in OpenAPI's path syntax. */
function registeredRoutes(): string[] {
  const routes = app.routes
    .filter((route) => route.method !== "ALL")
    .map((route) => {
      const path = route.path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}").replace(/(.)\/+$/, "$1");
      return `${route.method.toUpperCase()} ${path}`;
    });
  return [...new Set(routes)].sort();
}

function documentedRoutes(): string[] {
  const paths = openApiDocument().paths as Record<string, Record<string, unknown>>;
  return Object.entries(paths)
    .flatMap(([path, item]) => Object.keys(item).filter((key) => METHODS.includes(key)).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
}

describe("GET /v1/openapi.json", () => {
  it("serves the document without a key", async () => {
    const res = await api("/v1/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    expect(res.body.openapi).toBe("3.1.0");
    expect(res.body).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
  });
});

describe("route coverage", () => {
  it("finds the app's routes", () => {
    const routes = registeredRoutes();
    expect(routes).toContain("POST /v1/agents");
    expect(routes).toContain("GET /v1/agents/{id}");
    expect(routes).toContain("POST /v1/admin/workspaces/{id}/api-keys");
  });

  it("documents every route the app registers", () => {
    const documented = new Set(documentedRoutes());
    const missing = registeredRoutes().filter((route) => !documented.has(route));
    expect(missing, "routes missing from src/openapi/document.ts").toEqual([]);
  });

  it("documents no route the app does not have", () => {
    const registered = new Set(registeredRoutes());
    const extra = documentedRoutes().filter((route) => !registered.has(route));
    expect(extra, "documented routes the app does not serve").toEqual([]);
  });
});
