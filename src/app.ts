import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "./env";
import { ApiError } from "./lib/errors";
import { JsonRpcMessage, serveMcp } from "./mcp/server";
import { requireKey } from "./middleware/auth";
import { jsonBody } from "./middleware/body";
import { notFound, onError } from "./middleware/errors";
import { rateLimit } from "./middleware/rate-limit";
import { requestContext } from "./middleware/request-id";
import { describeRoute } from "./openapi/route-doc";
import { admin } from "./routes/admin";
import { agents } from "./routes/agents";
import { approvals } from "./routes/approvals";
import { contacts } from "./routes/contacts";
import { docs } from "./routes/docs";
import { events } from "./routes/events";
import { identities } from "./routes/identities";
import { inbound } from "./routes/inbound";
import { meta } from "./routes/meta";
import { outbox } from "./routes/outbox";
import { runs } from "./routes/runs";
import { unsubscribe } from "./routes/unsubscribe";
import { webhookEndpoints } from "./routes/webhook-endpoints";

export const app = new Hono<AppEnv>({ strict: false });

app.use(requestContext);

// Public and operator routes first: everything mounted after the key check needs a key.
// The body is read only once the caller is known (the admin routes do the same), so a
// request without a valid key is 401 whatever it sent (CONTRACT.md section 9).
app.route("/v1", meta(() => app.routes));
app.route("/v1", docs);
app.route("/v1/admin", admin);
// Unsubscribe links carry their own signed token, no key, and may post a form body.
app.route("/v1/unsubscribe", unsubscribe);
// Provider events are authenticated by their signature over the raw body, not by a key.
app.route("/v1/inbound", inbound);

app.use("/v1/*", requireKey, rateLimit, jsonBody);
app.route("/v1/agents", runs);
app.route("/v1/agents", agents);
app.route("/v1/outbox", outbox);
app.route("/v1/approvals", approvals);
app.route("/v1/contacts", contacts);
app.route("/v1/identities", identities);
app.route("/v1/events", events);
app.route("/v1/webhook-endpoints", webhookEndpoints);

// MCP (CONTRACT.md section 13): the same keys, counted against MCP_LIMITER; every tool calls
// a route above with the caller's key, so scopes and the workspace apply as over REST.
app.use("/mcp", requireKey, rateLimit, jsonBody);
app.post(
  "/mcp",
  describeRoute({
    summary: "Call the MCP server",
    description:
      "Model Context Protocol over Streamable HTTP, stateless: one JSON-RPC message in, its answer out (JSON, or a one-event SSE stream for 2025-era clients). Tools: list_agents, get_agent, trigger_agent, list_runs, get_run, review_pending_actions, approve_action, reject_action, list_contacts, upsert_contacts, record_events, list_identities. Each tool needs its REST route's scope; a missing one is a tool error (`isError`) naming it. JSON-RPC messages carry their own ids, so this route takes no Idempotency-Key. GET and DELETE answer 405 `method_not_allowed`: there is no SSE stream and no session.",
    tag: "MCP",
    body: JsonRpcMessage,
    success: { status: 200, description: "The JSON-RPC answer", schema: z.looseObject({}) },
  }),
  (c) => serveMcp(c, app),
);
// Stateless: no SSE stream to open (GET) and no session to end (DELETE).
app.all("/mcp", (c) => {
  throw new ApiError(405, "method_not_allowed", `${c.req.method} /mcp is not supported: the MCP server is stateless, POST each message`, undefined, { Allow: "POST" });
});

app.onError(onError);
app.notFound(notFound);
