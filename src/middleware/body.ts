import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { ApiError, validationError } from "../lib/errors";

export const MAX_BODY_BYTES = 1024 * 1024;
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

const tooLarge = () =>
  new ApiError(413, "payload_too_large", `Request body exceeds ${MAX_BODY_BYTES} bytes`);

/**
 * Reads every request body once, up to 1 MiB, and insists that a non-empty body is JSON.
 * The parsed text is left in Hono's body cache, so validators and the idempotency
 * fingerprint read the same bytes; an empty body reads as `{}`.
 */
export const jsonBody = createMiddleware<AppEnv>(async (c, next) => {
  const raw = c.req.raw;
  if (!raw.body) {
    if (["POST", "PATCH", "PUT"].includes(c.req.method)) cacheText(c, "{}");
    return next();
  }
  const declared = Number(raw.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw tooLarge();

  const text = await readLimited(raw.body);
  if (text.trim() === "") {
    cacheText(c, "{}");
    return next();
  }
  const mediaType = (raw.headers.get("content-type") ?? "").split(";")[0]!.trim();
  if (!JSON_MEDIA_TYPE.test(mediaType)) {
    throw new ApiError(415, "unsupported_media_type", "Request bodies must be JSON (Content-Type: application/json)");
  }
  try {
    JSON.parse(text);
  } catch {
    throw validationError("Request body is not valid JSON");
  }
  cacheText(c, text);
  await next();
});

/** Hono's body cache holds promises at run time, though its type says otherwise. */
function cacheText(c: Context<AppEnv>, text: string): void {
  (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(text);
}

async function readLimited(body: ReadableStream<Uint8Array>): Promise<string> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
