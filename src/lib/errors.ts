import type { ContentfulStatusCode } from "hono/utils/http-status";

export type ErrorDetail = { path: string; message: string };

/** What an unknown thrown value says: its message, or its text. */
export const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Codes whose answer tells the client to send the same request again. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set(["concurrent_update", "idempotency_key_in_use", "rate_limited"]);

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

  /** A transient conflict rather than an outcome: an Idempotency-Key must not keep it. */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }
}

export const notFound = (resource: string) => new ApiError(404, "not_found", `No such ${resource}`);

export const validationError = (message: string, details?: ErrorDetail[]) =>
  new ApiError(400, "validation_error", message, details);

export const conflict = (code: string, message: string, details?: ErrorDetail[]) =>
  new ApiError(409, code, message, details);

export const unauthorized = () =>
  new ApiError(401, "unauthorized", "Missing or invalid API key. Send `Authorization: Bearer <key>`.");
