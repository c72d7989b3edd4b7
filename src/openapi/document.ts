import { z } from "zod";
import { ApiKey, AuthStatus, CreateApiKeyBody, CreateWorkspaceBody, Workspace } from "../schemas/admin";
import { AgentEnvelope, AgentList, CreateAgentBody, ListAgentsQuery, UpdateAgentBody } from "../schemas/agents";
import { IdParam } from "../schemas/common";
import { buildDocument, type Operation } from "./build";

const ok = <T extends z.ZodRawShape>(shape: T) => z.object({ status: z.literal("success"), ...shape });
const Deleted = ok({ deleted: z.literal(true), id: z.string() });

const operations: Operation[] = [
  { method: "get", path: "/v1/health", summary: "Health check", tag: "Service", auth: null,
    success: { status: 200, description: "The service is up", schema: ok({ healthy: z.boolean(), time: z.string() }) } },
  { method: "get", path: "/v1/openapi.json", summary: "OpenAPI document", tag: "Service", auth: null,
    success: { status: 200, description: "This document", schema: z.looseObject({}) } },
  { method: "get", path: "/v1/auth/status", summary: "Describe the calling key", tag: "Service", auth: "key",
    success: { status: 200, description: "The key's workspace and scopes", schema: AuthStatus } },

  { method: "post", path: "/v1/admin/workspaces", summary: "Create a workspace", tag: "Admin", auth: "admin",
    body: CreateWorkspaceBody, success: { status: 201, description: "Created", schema: ok({ workspace: Workspace }) } },
  { method: "post", path: "/v1/admin/workspaces/:id/api-keys", summary: "Create an API key", tag: "Admin", auth: "admin",
    params: IdParam, body: CreateApiKeyBody, bodyRequired: false,
    success: { status: 201, description: "Created; `key` is shown only here", schema: ok({ api_key: ApiKey }) } },
  { method: "delete", path: "/v1/admin/api-keys/:id", summary: "Revoke an API key", tag: "Admin", auth: "admin",
    params: IdParam, success: { status: 200, description: "Revoked; stops working within 10 seconds", schema: ok({ api_key: ApiKey }) } },

  { method: "get", path: "/v1/agents", summary: "List agents", tag: "Agents", auth: "agents:read",
    query: ListAgentsQuery, success: { status: 200, description: "Newest first", schema: AgentList } },
  { method: "post", path: "/v1/agents", summary: "Create an agent", tag: "Agents", auth: "agents:write",
    body: CreateAgentBody, success: { status: 201, description: "Created", schema: AgentEnvelope } },
  { method: "get", path: "/v1/agents/:id", summary: "Get an agent", tag: "Agents", auth: "agents:read",
    params: IdParam, success: { status: 200, description: "The agent", schema: AgentEnvelope } },
  { method: "patch", path: "/v1/agents/:id", summary: "Update an agent", tag: "Agents", auth: "agents:write",
    params: IdParam, body: UpdateAgentBody, success: { status: 200, description: "Updated", schema: AgentEnvelope } },
  { method: "delete", path: "/v1/agents/:id", summary: "Delete an agent", tag: "Agents", auth: "agents:write",
    params: IdParam, success: { status: 200, description: "Deleted with its runs", schema: Deleted } },
];

let cached: ReturnType<typeof buildDocument> | undefined;

/** Built once per isolate from the route table above. */
export function openApiDocument() {
  cached ??= buildDocument(operations, {
    title: "Cairn API",
    version: "1.0.0",
    description: "AI outreach agents with a human in the loop. Every error uses one envelope; see the Error schema.",
  });
  return cached;
}

export const documentedOperations = operations;
