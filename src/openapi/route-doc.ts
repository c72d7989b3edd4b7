import type { MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import type { z } from "zod";
import type { AppEnv } from "../env";

/** What a route declares about itself beyond its middlewares; everything else the document reads from the chain. */
export type RouteDoc = {
  summary: string;
  /** What the operation does, in a sentence or two (the scope and idempotency are added from the chain). */
  description: string;
  tag: string;
  success: { status: number; description: string; schema: z.ZodType; html?: boolean };
  /** Statuses the route answers besides those its middlewares can, with what each means here. */
  errors?: Record<number, string>;
  /** A body the route reads and checks itself (a signed webhook, a form), not through `validate("json")`. */
  body?: z.ZodType;
  /** Path parameters the route reads itself, not through `validate("param")`. */
  params?: z.ZodObject;
};

/** What the document learns from one handler of a route's chain. */
export type Facet =
  | { kind: "describe"; doc: RouteDoc }
  | { kind: "key" }
  | { kind: "admin" }
  | { kind: "scope"; scope: string }
  | { kind: "validate"; target: string; schema: z.ZodType }
  | { kind: "idempotency" }
  | { kind: "json-body" }
  | { kind: "rate-limit"; per: "key" | "address" };

const facets = new WeakMap<object, Facet>();

/**
 * Marks a handler with what it means for the OpenAPI document, which is built from the
 * app's registered routes (`app.routes`): the scope it documents is the scope the chain
 * checks, and the schemas are those it validates with.
 */
export function documented<T extends object>(handler: T, facet: Facet): T {
  facets.set(handler, facet);
  return handler;
}

export const facetOf = (handler: object): Facet | undefined => facets.get(handler);

/** Describes the route it is declared on; every route must have one, or the document cannot be built. */
export const describeRoute = (doc: RouteDoc): MiddlewareHandler<AppEnv> =>
  documented(
    createMiddleware<AppEnv>((_c, next) => next()),
    { kind: "describe", doc },
  );
