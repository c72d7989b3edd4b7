import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** Milliseconds since the epoch; serialised as ISO 8601 at the edge of the API. */
const timestamp = (name: string) => integer(name, { mode: "timestamp_ms" });
const json = <T>(name: string) => text(name, { mode: "json" }).$type<T>();

export const workspaces = sqliteTable("workspaces", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: timestamp("created_at").notNull(),
});

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    name: text("name"),
    /** SHA-256 of the secret, hex. The secret itself is never stored. */
    keyHash: text("key_hash").notNull(),
    scopes: json<string[]>("scopes").notNull(),
    createdAt: timestamp("created_at").notNull(),
    revokedAt: timestamp("revoked_at"),
  },
  (t) => [uniqueIndex("api_keys_key_hash").on(t.keyHash), index("api_keys_workspace").on(t.workspaceId)],
);

export const agents = sqliteTable(
  "agents",
  {
    id: text("id").primaryKey(),
    workspaceId: text("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description"),
    playbookTemplate: text("playbook_template"),
    playbook: json<unknown>("playbook"),
    capabilities: json<string[]>("capabilities").notNull(),
    identityId: text("identity_id"),
    monitoring: json<unknown>("monitoring").notNull(),
    llmConfig: json<unknown>("llm_config").notNull(),
    enabled: integer("enabled", { mode: "boolean" }).notNull(),
    createdAt: timestamp("created_at").notNull(),
    updatedAt: timestamp("updated_at").notNull(),
    lastRunAt: timestamp("last_run_at"),
  },
  (t) => [
    index("agents_workspace_created").on(t.workspaceId, t.id),
    index("agents_workspace_enabled").on(t.workspaceId, t.enabled, t.id),
    index("agents_workspace_template").on(t.workspaceId, t.playbookTemplate, t.id),
    index("agents_identity").on(t.identityId),
  ],
);

export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    /** A workspace id, or `admin` for operator requests. */
    scope: text("scope").notNull(),
    key: text("key").notNull(),
    /** SHA-256 over method, path and body: a repeat must match it exactly. */
    fingerprint: text("fingerprint").notNull(),
    state: text("state", { enum: ["in_flight", "done"] }).notNull(),
    responseStatus: integer("response_status"),
    responseBody: text("response_body"),
    createdAt: timestamp("created_at").notNull(),
    lockedUntil: timestamp("locked_until").notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.key] }), index("idempotency_keys_created").on(t.createdAt)],
);
