import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../env";
import { publicRateLimit } from "../middleware/rate-limit";
import { describeRoute } from "../openapi/route-doc";

// Scalar's standalone build, served from the Worker's static assets (public/docs/scalar.js):
// no CDN, no web fonts, no telemetry, none of Scalar's hosted extras. "Try it" sends to the origin the page was loaded from.
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cairn API reference</title>
</head>
<body>
<div id="app"></div>
<script src="/docs/scalar.js"></script>
<script>
Scalar.createApiReference("#app", {
  url: "/v1/openapi.json",
  servers: [{ url: location.origin, description: "This server" }],
  withDefaultFonts: false,
  telemetry: false,
  // Scalar's hosted extras (AI chat, MCP generator, developer tools, its web client) call its cloud.
  agent: { disabled: true },
  mcp: { disabled: true },
  hideClientButton: true,
  showDeveloperTools: "never",
});
</script>
</body>
</html>
`;

/** The interactive API reference of /v1/openapi.json; needs no key. */
export const docs = new Hono<AppEnv>().get(
  "/docs",
  describeRoute({
    summary: "Open the API reference",
    description: "An interactive reference of the OpenAPI document that works offline: its script is one of the Worker's static assets, and its requests go to the server that served it.",
    tag: "Service",
    success: { status: 200, description: "An HTML page", schema: z.string(), html: true },
  }),
  publicRateLimit,
  (c) => c.html(PAGE),
);
