import { signWebhook } from "../lib/standard-webhooks";
import { messageOf } from "../lib/errors";
import { eventBody, type WebhookEvent } from "./events";

/** A receiver gets this long to answer (CONTRACT.md section 12). */
export const ATTEMPT_TIMEOUT_MS = 10_000;
/** What an attempt keeps of the receiver's answer. */
const EXCERPT_BYTES = 1024;

export type AttemptResult = { statusCode: number | null; excerpt: string | null; error: string | null; durationMs: number };

/**
 * POSTs `event` to `url` once, signed per Standard Webhooks with every secret in `secrets`.
 * Redirects are not followed (a 3xx is a failed attempt), so an answer cannot send the
 * request on to an address the URL check refused.
 */
export async function attemptDelivery(url: string, secrets: string[], event: WebhookEvent, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<AttemptResult> {
  const body = eventBody(event);
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = (await Promise.all(secrets.map((secret) => signWebhook(secret, event.id, timestamp, body)))).join(" ");
  const started = Date.now();
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "Cairn-Webhooks/1",
        "webhook-id": event.id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": signature,
      },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    const excerpt = await readExcerpt(response);
    return { statusCode: response.status, excerpt, error: null, durationMs: Date.now() - started };
  } catch (error) {
    const timedOut = error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError");
    const message = timedOut ? `No answer within ${timeoutMs / 1000} s` : `The request failed: ${messageOf(error)}`;
    return { statusCode: null, excerpt: null, error: message, durationMs: Date.now() - started };
  }
}

/** The first kilobyte of the answer, as text; the rest is not read. */
async function readExcerpt(response: Response): Promise<string | null> {
  if (!response.body) return null;
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < EXCERPT_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  const text = new TextDecoder().decode(bytes.subarray(0, EXCERPT_BYTES));
  return text.length > 0 ? text : null;
}
