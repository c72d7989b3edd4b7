import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "../env";
import { ApiError } from "../lib/errors";
import { newId } from "../lib/ids";

/** The only place that writes an error envelope (CONTRACT.md section 1). */
function errorResponse(c: Context<AppEnv>, error: ApiError): Response {
  const requestId = c.var.requestId ?? newId("req");
  const body = {
    status: "error",
    error: error.message,
    code: error.code,
    ...(error.details ? { details: error.details } : {}),
    request_id: requestId,
    timestamp: new Date().toISOString(),
  };
  return c.json(body, error.status, { "Request-Id": requestId, ...error.headers });
}

export const onError: ErrorHandler<AppEnv> = (error, c) => {
  if (error instanceof ApiError) return errorResponse(c, error);
  if (error instanceof HTTPException && error.status < 500) {
    return errorResponse(c, new ApiError(error.status as 400, "validation_error", error.message || "Bad request"));
  }
  console.error(JSON.stringify({ level: "error", request_id: c.var.requestId, message: String(error), stack: error.stack }));
  return errorResponse(c, new ApiError(500, "internal_error", "Internal server error"));
};

export const notFound: NotFoundHandler<AppEnv> = (c) =>
  errorResponse(c, new ApiError(404, "not_found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`));
