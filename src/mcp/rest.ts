import type { CallToolResult } from "@modelcontextprotocol/server";

type Json = Record<string, unknown>;

/** One call to a REST route in-process, as the MCP caller: its status and JSON body. */
export type RestCall = (method: "GET" | "POST", path: string, body?: unknown) => Promise<{ status: number; body: Json }>;

/** A tool's arguments as a query string: arrays (lifecycle stages) comma-joined, undefined left out. */
export function query(args: Json): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(args)) {
    if (value === undefined || value === null) continue;
    params.set(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

export const segment = (id: string | number) => encodeURIComponent(String(id));

/** The route's JSON as the tool's result; an error envelope becomes a tool error naming its code. */
export function toResult({ status, body }: { status: number; body: Json }): CallToolResult {
  if (status >= 400) {
    const code = typeof body.code === "string" ? body.code : "internal_error";
    const message = typeof body.error === "string" ? body.error : `HTTP ${status}`;
    return { isError: true, content: [{ type: "text", text: `${message} (${code})\n${JSON.stringify(body)}` }], structuredContent: body };
  }
  return { content: [{ type: "text", text: JSON.stringify(body) }], structuredContent: body };
}
