import type { Env } from "../env";
import { SendError, type EmailSender, type OutgoingEmail } from "./email-sender";
import { messageOf } from "../lib/errors";

/**
 * Cloudflare Email Service through the `send_email` binding `EMAIL`. The binding takes no
 * idempotency key, so a send whose outcome is unknown is never repeated (`idempotent: false`):
 * the engine records it as possibly sent instead of risking a second copy. The service sets
 * its own `Message-ID`; the one it answers is what replies will name, so that is kept.
 */
export function cloudflareSender(env: Env): EmailSender {
  return {
    transport: "cloudflare",
    idempotent: false,
    async send(email: OutgoingEmail) {
      if (!env.EMAIL) throw new SendError("EMAIL_TRANSPORT is cloudflare but the send_email binding EMAIL is missing", "rejected");
      const { "Message-ID": _ours, ...headers } = email.headers;
      try {
        const receipt = await env.EMAIL.send({ from: email.from, to: email.to, subject: email.subject, text: email.text, headers });
        return { providerMessageId: receipt.messageId, messageId: receipt.messageId };
      } catch (error) {
        const message = messageOf(error);
        // Only an error that says the service refused is known not to have left: a sender or address it
        // will never take is permanent, a limit is retried. Anything else may have been accepted first.
        const kind = /not allowed|invalid|not verified|unverified/i.test(message) ? "permanent" : /rate|limit|temporar|unavailable|try again/i.test(message) ? "rejected" : "unknown";
        throw new SendError(`Cloudflare Email Service: ${message}`, kind);
      }
    },
  };
}
