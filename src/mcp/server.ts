import { createMcpHandler, McpServer } from "@modelcontextprotocol/server";
import type { Context, Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../env";
import type { RestCall } from "./rest";
import { registerTools } from "./tools";

/** What POST /mcp accepts: one JSON-RPC 2.0 message (the SDK checks the rest). */
export const JsonRpcMessage = z
  .looseObject({ jsonrpc: z.literal("2.0"), method: z.string(), id: z.union([z.string(), z.int()]).optional(), params: z.looseObject({}).optional() })
  .meta({ id: "JsonRpcMessage" });

/** A fresh MCP server whose tools answer through `call`. */
export function mcpServer(call: RestCall): McpServer {
  const server = new McpServer({ name: "cairn", version: "1.0.0" });
  registerTools(server, call);
  return server;
}

/**
 * Serves one MCP request statelessly: a new server per request, whose tools call the REST
 * routes of `app` in-process with the caller's own Authorization header. `app` is passed in
 * (rather than imported) because app.ts mounts this. The body was read by `jsonBody`.
 */
export async function serveMcp(c: Context<AppEnv>, app: Hono<AppEnv>): Promise<Response> {
  const authorization = c.req.header("Authorization") ?? "";
  const call: RestCall = async (method, path, body) => {
    const headers: Record<string, string> = { Authorization: authorization };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
    const res = await app.request(new URL(path, c.req.url).href, init, c.env, c.executionCtx);
    return { status: res.status, body: await res.json() };
  };
  // No tool sends notifications, so every answer is a single JSON body.
  const handler = createMcpHandler(() => mcpServer(call));
  return handler.fetch(c.req.raw, { parsedBody: JSON.parse(await c.req.text()) });
}
