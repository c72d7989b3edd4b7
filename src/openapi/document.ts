import type { RouterRoute } from "hono/types";
import { buildDocument } from "./build";

const INFO = {
  title: "Cairn API",
  version: "1.0.0",
  description:
    "AI outreach agents with a human in the loop: agents propose actions for their contacts, and nothing is sent until a person approves it. Every error uses one envelope (the Error schema); every POST and PATCH of the workspace API honours Idempotency-Key.",
  contact: { name: "Cairn" },
  license: { name: "Proprietary", identifier: "LicenseRef-Proprietary" },
  tags: {
    Service: "The service itself: health, this document, its reference page, the calling key",
    Admin: "Operator routes, with the ADMIN_TOKEN: workspaces and their API keys",
    Agents: "Agents: a playbook, capabilities, a sending identity, monitoring rules and an LLM configuration",
    Runs: "Runs of an agent over its contacts, and the human decisions on the actions they propose",
    Approvals: "The workspace's approvals inbox: every pending action across runs, decided one by one or in bulk",
    Contacts: "The people agents reach, with their notes",
    Events: "What contacts did; events can start event-driven runs",
    Identities: "Sending identities: who an agent writes as, and when it may send",
    Webhooks: "Webhook endpoints that receive Cairn's events, signed with Standard Webhooks",
    MCP: "The Model Context Protocol server for AI assistants",
    Unsubscribe: "The links in every email that let a recipient opt out, with no key",
    Inbound: "Events from the email provider, authenticated by their signature",
  },
};

let cached: ReturnType<typeof buildDocument> | undefined;

/** The OpenAPI document of the app's routes, built once per isolate. */
export function openApiDocument(routes: readonly RouterRoute[]) {
  cached ??= buildDocument(routes, INFO);
  return cached;
}
