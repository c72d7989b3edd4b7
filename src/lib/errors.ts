import type { ContentfulStatusCode } from "hono/utils/http-status";

export type ErrorDetail = { path: string; message: string };

/** The one error type handlers throw; `app.onError` turns it into the envelope. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: ErrorDetail[],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const notFound = (resource: string) => new ApiError(404, "not_found", `No such ${resource}`);

export const validationError = (message: string, details?: ErrorDetail[]) =>
  new ApiError(400, "validation_error", message, details);

export const conflict = (code: string, message: string, details?: ErrorDetail[]) =>
  new ApiError(409, code, message, details);

export const unauthorized = () =>
  new ApiError(401, "unauthorized", "Missing or invalid API key. Send `Authorization: Bearer <key>`.");
