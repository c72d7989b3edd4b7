import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { ApiError, validationError, type ErrorDetail } from "../lib/errors";
import { documented } from "../openapi/route-doc";

export const MAX_BODY_BYTES = 1024 * 1024;
/** No body nests deeper than this, so nothing that walks it recursively can overflow. */
const MAX_BODY_DEPTH = 64;
/** Keys that name an object's prototype machinery: dropped or dangerous downstream, so refused. */
const RESERVED_KEYS = new Set(["__proto__", "constructor", "prototype"]);
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

const tooLarge = () =>
  new ApiError(413, "payload_too_large", `Request body exceeds ${MAX_BODY_BYTES} bytes`);

/**
 * Reads every request body once, up to 1 MiB, and insists that a non-empty body is JSON
 * that `refusal` finds nothing wrong with. The text is left in Hono's body cache, so
 * validators and the idempotency fingerprint read the same bytes; an empty body reads as
 * `{}`. Mount it after the key check: a caller without a key gets 401, whatever it sent.
 */
const readJsonBody = createMiddleware<AppEnv>(async (c, next) => {
  if (bodyCache(c).text !== undefined) return next(); // read already, by an outer mount
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
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw validationError("Request body is not valid JSON");
  }
  const refused = refusal(parsed);
  if (refused) throw validationError("Request body failed validation", [refused]);
  cacheText(c, text);
  await next();
});
export const jsonBody = documented(readJsonBody, { kind: "json-body" });

/** A value in the body, with how it was reached and how many containers enclose it. */
type Node = { value: unknown; key: string; parent: Node | null; depth: number };

const pathOf = (node: Node): string => {
  const keys: string[] = [];
  for (let at: Node | null = node; at?.parent; at = at.parent) keys.push(at.key.toWellFormed());
  return keys.reverse().join(".");
};

/**
 * The first thing, in document order, that no route may receive: nesting deeper than
 * MAX_BODY_DEPTH, a reserved key, or a key or string with a lone surrogate (which storage
 * would silently rewrite). Walked with an explicit stack, so no body can overflow it.
 */
function refusal(body: unknown): ErrorDetail | null {
  const pending: Node[] = [{ value: body, key: "", parent: null, depth: 0 }];
  while (pending.length > 0) {
    const node = pending.pop()!;
    const { value, key, depth } = node;
    if (RESERVED_KEYS.has(key)) return { path: pathOf(node), message: "Reserved key" };
    if (!key.isWellFormed()) return { path: pathOf(node), message: "Key must not contain a lone surrogate" };
    if (typeof value === "string" && !value.isWellFormed()) return { path: pathOf(node), message: "Must not contain a lone surrogate" };
    if (value === null || typeof value !== "object") continue;
    if (depth >= MAX_BODY_DEPTH) return { path: pathOf(node), message: `Must not nest deeper than ${MAX_BODY_DEPTH} levels` };
    const children = Object.entries(value);
    for (let i = children.length - 1; i >= 0; i--) {
      const [childKey, child] = children[i]!;
      pending.push({ value: child, key: childKey, parent: node, depth: depth + 1 });
    }
  }
  return null;
}

/** Hono's body cache holds promises at run time, though its type says otherwise. */
const bodyCache = (c: Context<AppEnv>) => c.req.bodyCache as Record<string, unknown>;

function cacheText(c: Context<AppEnv>, text: string): void {
  bodyCache(c).text = Promise.resolve(text);
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
