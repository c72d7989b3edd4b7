import { z } from "zod";
import { ErrorBody } from "../schemas/common";

type Method = "get" | "post" | "patch" | "delete";
type Json = Record<string, unknown>;

/** One documented route: the same zod schemas its handler validates with. */
export type Operation = {
  method: Method;
  /** Hono style, `/v1/agents/:id`; converted to `{id}` in the document. */
  path: string;
  summary: string;
  tag: string;
  /** The scope the route requires; `admin` for the operator token, `key` for any key, null for none. */
  auth: string | null;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  bodyRequired?: boolean;
  /** A body the route reads and checks itself (a signed webhook): documented, without the JSON body middleware's errors. */
  signedBody?: z.ZodType;
  success: { status: number; description: string; schema: z.ZodType; html?: boolean };
  /** Statuses beyond those every route of its kind can answer. */
  errors?: number[];
  /** False for a POST that honours no Idempotency-Key (POST /mcp). */
  idempotent?: false;
  /** What a status means on this route, where that differs from the usual. */
  errorDescriptions?: Partial<Record<number, string>>;
};

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Validation failed (`validation_error`)",
  401: "Missing, malformed, unknown or revoked key (`unauthorized`)",
  403: "The key lacks the route's scope (`insufficient_scope`)",
  404: "No such object in the caller's workspace (`not_found`)",
  409: "State conflict (`idempotency_key_in_use` and route-specific codes)",
  413: "Body over 1 MiB (`payload_too_large`)",
  415: "Body is not JSON (`unsupported_media_type`)",
  422: "Idempotency-Key reused with a different request (`idempotency_key_reused`)",
  500: "Internal error (`internal_error`)",
};

/** Collects zod schemas as JSON Schema 2020-12 components, sharing those with an `id`. */
class Components {
  readonly schemas: Record<string, Json> = {};

  ref(schema: z.ZodType, io: "input" | "output"): Json {
    const { $defs = {}, ...root } = z.toJSONSchema(schema, { io, target: "draft-2020-12", unrepresentable: "any" }) as Json & {
      $defs?: Record<string, Json>;
    };
    delete root.$schema;
    const names = new Map<string, string>();
    for (const [id, def] of Object.entries($defs)) names.set(id, this.#name(id, def, io));
    const rewrite = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(rewrite);
      if (value && typeof value === "object") {
        return Object.fromEntries(
          Object.entries(value).map(([k, v]) =>
            k === "$ref" && typeof v === "string" && v.startsWith("#/$defs/")
              ? [k, `#/components/schemas/${names.get(v.slice(8))}`]
              : [k, rewrite(v)],
          ),
        );
      }
      return value;
    };
    for (const [id, def] of Object.entries($defs)) this.schemas[names.get(id)!] = rewrite(def) as Json;
    return rewrite(root) as Json;
  }

  /** Request and response variants of one schema differ in defaults; they get two names only then. */
  #name(id: string, def: Json, io: "input" | "output"): string {
    const existing = this.schemas[id];
    if (!existing || JSON.stringify(existing) === JSON.stringify(def)) return id;
    return io === "input" ? `${id}Input` : `${id}Output`;
  }
}

export function buildDocument(operations: Operation[], info: { title: string; version: string; description: string }) {
  const components = new Components();
  const errorRef = components.ref(ErrorBody, "output");
  const paths: Record<string, Record<string, Json>> = {};

  for (const op of operations) {
    const path = op.path.replace(/:(\w+)/g, "{$1}");
    const parameters: Json[] = [];
    for (const [location, schema] of [["path", op.params], ["query", op.query]] as const) {
      if (!schema) continue;
      for (const [name, field] of Object.entries(schema.shape)) {
        const json = components.ref(field as z.ZodType, "input");
        parameters.push({ name, in: location, required: location === "path" || !(field as z.ZodType).safeParse(undefined).success, schema: json });
      }
    }
    const idempotent = (op.method === "post" || op.method === "patch") && op.idempotent !== false;
    if (idempotent) {
      parameters.push({
        name: "Idempotency-Key",
        in: "header",
        required: false,
        description: "Replays the first response for 24 hours; see the README",
        schema: { type: "string", maxLength: 255 },
      });
    }

    const statuses = new Set<number>([500, ...(op.errors ?? [])]);
    if (op.auth) statuses.add(401);
    if (op.auth && op.auth !== "key" && op.auth !== "admin") statuses.add(403);
    if (op.params) statuses.add(404);
    if (op.params || op.query || op.body) statuses.add(400);
    if (op.body) [413, 415].forEach((s) => statuses.add(s));
    if (idempotent) [409, 422].forEach((s) => statuses.add(s));

    const responses: Record<string, Json> = {
      [op.success.status]: {
        description: op.success.description,
        content: op.success.html
          ? { "text/html": { schema: { type: "string" } } }
          : { "application/json": { schema: components.ref(op.success.schema, "output") } },
      },
    };
    for (const status of [...statuses].sort()) {
      responses[status] = { description: op.errorDescriptions?.[status] ?? ERROR_DESCRIPTIONS[status], content: { "application/json": { schema: errorRef } } };
    }

    const requestSchema = op.body ?? op.signedBody;
    paths[path] ??= {};
    paths[path][op.method] = {
      operationId: operationId(op),
      summary: op.summary,
      tags: [op.tag],
      ...(op.auth === null ? { security: [] } : op.auth === "admin" ? { security: [{ adminToken: [] }] } : {}),
      ...(op.auth && op.auth !== "key" && op.auth !== "admin" ? { "x-required-scope": op.auth, description: `Required scope: \`${op.auth}\`` } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(requestSchema
        ? { requestBody: { required: op.bodyRequired ?? true, content: { "application/json": { schema: components.ref(requestSchema, "input") } } } }
        : {}),
      responses,
    };
  }

  return {
    openapi: "3.1.0",
    info,
    servers: [{ url: "http://localhost:8787", description: "npm start" }],
    security: [{ apiKey: [] }],
    paths,
    components: {
      schemas: components.schemas,
      securitySchemes: {
        apiKey: { type: "http", scheme: "bearer", description: "A workspace API key, `cairn_sk_...`" },
        adminToken: { type: "http", scheme: "bearer", description: "The ADMIN_TOKEN secret" },
      },
    },
  };
}

function operationId(op: Operation): string {
  const words = op.summary.replace(/[^A-Za-z0-9 ]/g, "").split(/\s+/).filter(Boolean);
  return words.map((w, i) => (i === 0 ? w.toLowerCase() : w[0]!.toUpperCase() + w.slice(1).toLowerCase())).join("");
}
