export const SCOPES = [
  "agents:read",
  "agents:write",
  "agents:trigger",
  "agents:approve",
  "contacts:read",
  "contacts:write",
  "identities:read",
  "identities:write",
  "events:write",
  "webhooks:read",
  "webhooks:write",
] as const;

export type Scope = (typeof SCOPES)[number];
