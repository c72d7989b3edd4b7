import type { Env } from "../env";
import { SendError, type EmailSender, type OutgoingEmail } from "./email-sender";
import { messageOf } from "../lib/errors";

const TIMEOUT_MS = 10_000;

/** The longest `Retry-After` honoured: retries must stay well inside Resend's 24-hour idempotency window. */
const MAX_RETRY_AFTER_MS = 15 * 60_000;

/** `Retry-After` in seconds or as an HTTP date, in ms, at most 15 minutes; undefined when absent or unreadable. */
function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  return Number.isNaN(ms) ? undefined : Math.min(Math.max(0, ms), MAX_RETRY_AFTER_MS);
}

/**
 * Resend's HTTP API (`POST /emails`). The action's key is the `Idempotency-Key`, so a request
 * repeated after a timeout or a crash sends nothing new for 24 hours: Resend answers the first
 * response again. 429, 5xx and 409 (the same key still being processed) are worth retrying;
 * any other 4xx is Resend refusing the message itself, which no retry changes.
 */
export function resendSender(env: Env): EmailSender {
  const key = env.RESEND_API_KEY;
  const base = (env.RESEND_BASE_URL ?? "https://api.resend.com").replace(/\/+$/, "");
  return {
    transport: "resend",
    idempotent: true,
    async send(email: OutgoingEmail) {
      if (!key) throw new SendError("EMAIL_TRANSPORT is resend but RESEND_API_KEY is not set", "rejected");
      let res: Response;
      try {
        res = await fetch(`${base}/emails`, {
          method: "POST",
          signal: AbortSignal.timeout(TIMEOUT_MS),
          headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", "Idempotency-Key": email.idempotencyKey },
          body: JSON.stringify({
            from: `${quoteName(email.from.name)} <${email.from.email}>`,
            to: [email.to],
            subject: email.subject,
            text: email.text,
            headers: email.headers,
            // Echoed in Resend's webhook events: a delivery is found even before its id is on record.
            tags: [{ name: "delivery_id", value: email.deliveryId }],
          }),
        });
      } catch (error) {
        throw new SendError(`Resend did not answer: ${messageOf(error)}`, "unknown");
      }
      const body = (await res.json().catch(() => null)) as { id?: string; message?: string; name?: string } | null;
      if (res.ok && typeof body?.id === "string") return { providerMessageId: body.id, messageId: null };
      const said = `Resend answered ${res.status}${body?.name ? ` ${body.name}` : ""}: ${body?.message ?? "no message"}`;
      if (res.ok) throw new SendError(`${said} (no email id)`, "unknown");
      if (res.status === 429 || res.status === 409 || res.status >= 500) throw new SendError(said, "rejected", retryAfter(res.headers.get("Retry-After")));
      // 401/403 are our configuration, not the message: retried, so fixing the key lets the send go out.
      throw new SendError(said, res.status === 401 || res.status === 403 ? "rejected" : "permanent");
    },
  };
}

/** A display name as RFC 5322 allows it in a From: quoted when it holds specials. */
const quoteName = (name: string) => (/^[\w .'-]*$/.test(name) ? name : `"${name.replace(/["\\]/g, "\\$&")}"`);
