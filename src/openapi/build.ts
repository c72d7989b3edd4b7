import type { RouterRoute } from "hono/types";
import { z } from "zod";
import { ErrorBody } from "../schemas/common";
import { facetOf, type Facet, type RouteDoc } from "./route-doc";

type Json = Record<string, unknown>;

/** One route of the app: its method, its path, and what its chain says about it, in order. */
type Route = { method: string; path: string; facets: Facet[] };

type DocumentInfo = {
  title: string;
  version: string;
  description: string;
  contact: { name: string; url?: string };
  license: { name: string; identifier?: string; url?: string };
  /** Every tag a route may use, with what it groups. */
  tags: Record<string, string>;
};

const IN_FLIGHT = "a request with this Idempotency-Key is still in progress (`idempotency_key_in_use`)";
const GENERIC: Record<number, string> = {
  400: "Validation failed (`validation_error`): a malformed parameter, body or header, with a `details` entry per offending field",
  401: "Missing, malformed, unknown or revoked key (`unauthorized`)",
  403: "The key lacks the route's scope (`insufficient_scope`)",
  404: "No such object in the caller's workspace (`not_found`)",
  409: "A request with this Idempotency-Key is still in progress (`idempotency_key_in_use`)",
  413: "Body over 1 MiB (`payload_too_large`)",
  415: "Body is not JSON (`unsupported_media_type`)",
  422: "Idempotency-Key reused with a different request (`idempotency_key_reused`)",
  500: "Internal error (`internal_error`)",
};

/**
 * The app's routes, each with the facets of the middlewares that run before its handler:
 * its own chain, and the `use` middlewares registered ahead of it on a path that covers it.
 */
function routesOf(registered: readonly RouterRoute[]): Route[] {
  const routes = new Map<string, Route>();
  registered.forEach((entry, at) => {
    // `use` middlewares, and `app.all` refusals (405 for GET and DELETE /mcp), are no operations.
    if (entry.method === "ALL") return;
    const path = entry.path.length > 1 ? entry.path.replace(/\/+$/, "") : entry.path;
    const id = `${entry.method} ${path}`;
    let route = routes.get(id);
    if (!route) {
      const outer = registered.slice(0, at).filter((mw) => mw.method === "ALL" && covers(mw.path, path));
      route = { method: entry.method.toLowerCase(), path, facets: outer.flatMap((mw) => facetOf(mw.handler) ?? []) };
      routes.set(id, route);
    }
    const facet = facetOf(entry.handler);
    if (facet) route.facets.push(facet);
  });
  return [...routes.values()];
}

/** Whether a `use` pattern runs for a route's path: exact paths and trailing `/*` only, which is all the app uses. */
function covers(pattern: string, path: string): boolean {
  if (pattern.includes(":") || pattern.slice(0, -1).includes("*")) throw new Error(`Middleware pattern ${pattern} is beyond what the document builder reads`);
  if (pattern === "*" || pattern === "/*") return true;
  return pattern.endsWith("/*") ? path === pattern.slice(0, -2) || path.startsWith(pattern.slice(0, -1)) : pattern === path;
}

/**
 * Idempotency-Key is honoured after the caller is known and allowed (a key without the scope
 * must never be answered from a stored response) and before the request is validated (as a
 * replay answers whatever the first request got).
 */
function checkOrder(route: Route, label: string): void {
  const kinds = route.facets.map((f) => f.kind);
  const at = kinds.indexOf("idempotency");
  if (at < 0) return;
  const late = ["key", "admin", "scope"].filter((kind) => kinds.lastIndexOf(kind as Facet["kind"]) > at);
  const early = kinds.slice(0, at).includes("validate");
  if (late.length || early) throw new Error(`${label}: idempotency must come after the key and scope checks and before validation`);
}

/**
 * Collects zod schemas as JSON Schema 2020-12 components under their `meta({ id })`. A
 * schema whose request and response forms differ (defaults make fields optional on the way
 * in) is `Name` as answered and `NameInput` as accepted. Any-JSON values (`z.json()`, which
 * is recursive) become `{}`, so the document has no circular reference.
 */
class Components {
  readonly #forms = new Map<string, { input?: Json; output?: Json }>();

  ref(schema: z.ZodType, io: "input" | "output"): Json {
    const { $defs = {}, ...root } = z.toJSONSchema(schema, { io, target: "draft-2020-12", unrepresentable: "any" }) as Json & {
      $defs?: Record<string, Json>;
    };
    delete root.$schema;
    const rewrite = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(rewrite);
      if (!value || typeof value !== "object") return value;
      const ref = (value as Json).$ref;
      if (typeof ref === "string" && ref.startsWith("#/$defs/")) {
        const id = ref.slice("#/$defs/".length);
        return isAnyJson(id, $defs[id]) ? { description: "Any JSON value" } : { $ref: placeholder(id, io) };
      }
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewrite(v)]));
    };
    for (const [id, def] of Object.entries($defs)) {
      if (isAnyJson(id, def)) continue;
      if (id.startsWith("__")) throw new Error(`A schema without meta({ id }) is shared or recursive: ${JSON.stringify(def).slice(0, 200)}`);
      const forms = this.#forms.get(id) ?? {};
      forms[io] = rewrite(def) as Json;
      this.#forms.set(id, forms);
    }
    return rewrite(root) as Json;
  }

  /** The components, named, and the document with its placeholder references resolved to them. */
  finish<T>(document: T): { document: T; schemas: Record<string, Json> } {
    const names = new Map<string, string>();
    const schemas: Record<string, Json> = {};
    for (const [id, { input, output }] of [...this.#forms].sort(([a], [b]) => a.localeCompare(b))) {
      const same = !input || !output || JSON.stringify(input) === JSON.stringify(output);
      names.set(placeholder(id, "output"), id);
      names.set(placeholder(id, "input"), same ? id : `${id}Input`);
      if (output) schemas[id] = output;
      if (input && !same) schemas[`${id}Input`] = input;
      else if (input) schemas[id] = input;
    }
    const resolve = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(resolve);
      if (!value || typeof value !== "object") return value;
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, k === "$ref" && typeof v === "string" && names.has(v) ? `#/components/schemas/${names.get(v)}` : resolve(v)]),
      );
    };
    return { document: resolve(document) as T, schemas: resolve(schemas) as Record<string, Json> };
  }
}

const placeholder = (id: string, io: "input" | "output") => `${io}:${id}`;

/** `z.json()`'s recursive definition: any of the JSON types, arrays and objects of itself. */
function isAnyJson(id: string, def: Json | undefined): boolean {
  if (!def || !Array.isArray(def.anyOf)) return false;
  const self = JSON.stringify({ $ref: `#/$defs/${id}` });
  const shape = JSON.stringify(def.anyOf).replaceAll(self, "SELF");
  return (
    shape ===
    '[{"type":"string"},{"type":"number"},{"type":"boolean"},{"type":"null"},{"type":"array","items":SELF},{"type":"object","propertyNames":{"type":"string"},"additionalProperties":SELF}]'
  );
}

/** Builds the OpenAPI 3.1 document from the app's registered routes; a route without `describeRoute` is an error. */
export function buildDocument(registered: readonly RouterRoute[], info: DocumentInfo) {
  const components = new Components();
  const errorRef = components.ref(ErrorBody, "output");
  const paths: Record<string, Record<string, Json>> = {};
  const operationIds = new Set<string>();

  for (const route of routesOf(registered)) {
    const label = `${route.method.toUpperCase()} ${route.path}`;
    const doc = route.facets.find((f) => f.kind === "describe")?.doc;
    if (!doc) throw new Error(`${label} has no describeRoute: every route is documented where it is declared`);
    if (!(doc.tag in info.tags)) throw new Error(`${label} uses the undeclared tag ${doc.tag}`);
    checkOrder(route, label);
    const has = (kind: Facet["kind"]) => route.facets.some((f) => f.kind === kind);
    const validated = (target: string) => route.facets.find((f): f is Extract<Facet, { kind: "validate" }> => f.kind === "validate" && f.target === target)?.schema;
    const scope = route.facets.find((f): f is Extract<Facet, { kind: "scope" }> => f.kind === "scope")?.scope;
    const rateLimit = route.facets.find((f): f is Extract<Facet, { kind: "rate-limit" }> => f.kind === "rate-limit");

    const path = route.path.replace(/:(\w+)/g, "{$1}");
    const parameters: Json[] = [];
    const params = (validated("param") ?? doc.params) as z.ZodObject | undefined;
    for (const [location, schema] of [["path", params], ["query", validated("query") as z.ZodObject | undefined]] as const) {
      for (const [name, field] of Object.entries(schema?.shape ?? {})) {
        const json = components.ref(field as z.ZodType, "input");
        const { description, ...fieldSchema } = json;
        parameters.push({ name, in: location, required: location === "path" || !(field as z.ZodType).safeParse(undefined).success, ...(description ? { description } : {}), schema: fieldSchema });
      }
    }
    const named = new Set(parameters.filter((p) => p.in === "path").map((p) => p.name));
    for (const [, name] of route.path.matchAll(/:(\w+)/g)) {
      if (!named.has(name)) throw new Error(`${label}: path parameter ${name} has no schema`);
    }
    const idempotent = has("idempotency") && (route.method === "post" || route.method === "patch");
    if (idempotent) {
      parameters.push({
        name: "Idempotency-Key",
        in: "header",
        required: false,
        description: "Any 1-255 visible ASCII characters: a retry with the same key and body gets the first response again (header `Idempotent-Replayed: true`) for 24 hours",
        schema: { type: "string", minLength: 1, maxLength: 255 },
      });
    }

    const body = (validated("json") ?? doc.body) as z.ZodType | undefined;
    const statuses = new Map<number, string>([[500, GENERIC[500]!]]);
    const add = (status: number, description = GENERIC[status]!) => statuses.set(status, description);
    if (has("key") || has("admin")) add(401);
    if (has("admin")) add(404, "ADMIN_TOKEN is not set in this deployment (`not_found`), or no such object");
    if (scope) add(403);
    if (validated("param")) add(404);
    if (validated("query") || validated("json")) add(400);
    // The body middleware reads any body sent, wanted or not: too large, not JSON or malformed JSON.
    if (has("json-body") && ["post", "patch", "put", "delete"].includes(route.method)) [400, 413, 415].forEach((s) => add(s));
    if (rateLimit) add(429, rateLimit.per === "key" ? "Over the key's budget for this kind of request (`rate_limited`); see Retry-After" : "Over this address's budget (`rate_limited`); see Retry-After");
    if (idempotent) [400, 409, 422].forEach((s) => add(s));
    for (const [status, description] of Object.entries(doc.errors ?? {})) {
      const own = Number(status);
      add(own, own === 409 && idempotent ? `${description}; or ${IN_FLIGHT}` : description);
    }

    const responses: Record<string, Json> = { [doc.success.status]: successResponse(doc, components) };
    for (const [status, description] of [...statuses].sort(([a], [b]) => a - b)) {
      responses[status] = {
        description,
        ...(status === 429 ? { headers: { "Retry-After": { description: "Seconds until the budget has room again", schema: { type: "integer" } } } } : {}),
        content: { "application/json": { schema: errorRef } },
      };
    }

    const operationId = camelCase(doc.summary);
    if (operationIds.has(operationId)) throw new Error(`${label}: operationId ${operationId} is taken; give it another summary`);
    operationIds.add(operationId);
    paths[path] ??= {};
    paths[path][route.method] = {
      operationId,
      summary: doc.summary,
      description: [doc.description, access(route, scope)].join("\n\n"),
      tags: [doc.tag],
      ...(has("admin") ? { security: [{ adminToken: [] }] } : has("key") ? {} : { security: [] }),
      ...(scope ? { "x-required-scope": scope } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(body ? { requestBody: { required: !body.safeParse({}).success, content: { "application/json": { schema: components.ref(body, "input") } } } } : {}),
      responses,
    };
  }

  const { document: named, schemas } = components.finish({ paths });
  return {
    openapi: "3.1.0",
    info: { title: info.title, version: info.version, description: info.description, contact: info.contact, license: info.license },
    // Relative: the document describes the server it is fetched from, `npm start` or a deployment.
    servers: [{ url: "/", description: "The server this document was fetched from" }],
    security: [{ apiKey: [] }],
    tags: Object.entries(info.tags).map(([name, description]) => ({ name, description })),
    paths: named.paths,
    components: {
      schemas,
      securitySchemes: {
        apiKey: { type: "http", scheme: "bearer", description: "A workspace API key, `cairn_sk_...`" },
        adminToken: { type: "http", scheme: "bearer", description: "The ADMIN_TOKEN secret" },
      },
    },
  };
}

function successResponse(doc: RouteDoc, components: Components): Json {
  const { description, schema, html } = doc.success;
  return {
    description,
    content: html ? { "text/html": { schema: { type: "string" } } } : { "application/json": { schema: components.ref(schema, "output") } },
  };
}

/** Who may call the route, as its chain decides. */
function access(route: Route, scope: string | undefined): string {
  if (scope) return `Requires an API key with the \`${scope}\` scope.`;
  if (route.facets.some((f) => f.kind === "admin")) return "Requires the operator's ADMIN_TOKEN.";
  if (route.facets.some((f) => f.kind === "key")) return "Requires any valid API key.";
  return "Needs no key.";
}

function camelCase(summary: string): string {
  const words = summary.replace(/[^A-Za-z0-9 ]/g, "").split(/\s+/).filter(Boolean);
  return words.map((w, i) => (i === 0 ? w.toLowerCase() : w[0]!.toUpperCase() + w.slice(1).toLowerCase())).join("");
}
