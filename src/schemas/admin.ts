import { z } from "zod";
import { SCOPES } from "../lib/scopes";
import { Timestamp } from "./common";

export const Scope = z.enum(SCOPES);

export const CreateWorkspaceBody = z.strictObject({ name: z.string().trim().min(1).max(200) }).meta({ id: "CreateWorkspace" });

export const CreateApiKeyBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    scopes: z
      .array(Scope)
      .min(1)
      .transform((list) => [...new Set(list)])
      .default([...SCOPES])
      .meta({ description: "Defaults to every scope" }),
  })
  .meta({ id: "CreateApiKey" });

export const Workspace = z.object({ id: z.string(), name: z.string(), created_at: Timestamp }).meta({ id: "Workspace" });

export const ApiKey = z
  .object({
    id: z.string(),
    workspace_id: z.string(),
    name: z.string().nullable(),
    scopes: z.array(Scope),
    created_at: Timestamp,
    revoked_at: Timestamp.nullable().optional(),
    key: z.string().optional().meta({ description: "The secret; returned only when the key is created" }),
  })
  .meta({ id: "ApiKey" });

export const AuthStatus = z.object({
  status: z.literal("success"),
  authenticated: z.literal(true),
  workspace: z.object({ id: z.string(), name: z.string() }),
  key_id: z.string(),
  scopes: z.array(Scope),
});
