import { Hono } from "hono";
import type { RouterRoute } from "hono/types";
import { z } from "zod";
import type { AppEnv } from "../env";
import { requireKey } from "../middleware/auth";
import { publicRateLimit, rateLimit } from "../middleware/rate-limit";
import { describeRoute } from "../openapi/route-doc";
import { openApiDocument } from "../openapi/document";
import { AuthStatus } from "../schemas/admin";
import { ok } from "../schemas/common";

/**
 * Routes that describe the service itself. The OpenAPI document is built from `routes()`,
 * the app's registered routes, which app.ts passes in (the app mounts this).
 */
export const meta = (routes: () => readonly RouterRoute[]) =>
  new Hono<AppEnv>()
    .get(
      "/health",
      describeRoute({
        summary: "Health check",
        description: "Answers as long as the Worker runs; it reads no storage.",
        tag: "Service",
        success: { status: 200, description: "The service is up", schema: ok({ healthy: z.boolean(), time: z.string() }) },
      }),
      publicRateLimit,
      (c) => c.json({ status: "success", healthy: true, time: new Date().toISOString() }),
    )
    .get(
      "/openapi.json",
      describeRoute({
        summary: "Get the OpenAPI document",
        description: "This document, built from the routes themselves: each route's scope, parameters and bodies are those it enforces.",
        tag: "Service",
        success: { status: 200, description: "An OpenAPI 3.1 document", schema: z.looseObject({}) },
      }),
      publicRateLimit,
      (c) => c.json(openApiDocument(routes())),
    )
    .get(
      "/auth/status",
      describeRoute({
        summary: "Describe the calling key",
        description: "Which workspace the key belongs to and which scopes it holds.",
        tag: "Service",
        success: { status: 200, description: "The key's workspace and scopes", schema: AuthStatus },
      }),
      requireKey,
      rateLimit,
      (c) => {
        const { workspaceId, workspaceName, keyId, scopes } = c.var.auth;
        return c.json({ status: "success", authenticated: true, workspace: { id: workspaceId, name: workspaceName }, key_id: keyId, scopes });
      },
    );
