import type { Env } from "../env";
import type { RunPlan } from "../runs/spec";
import type { OutgoingEmail } from "./email-sender";
import { unsubscribeHeaders, unsubscribeLink, unsubscribeToken } from "./unsubscribe";

export type ClaimedDelivery = { id: string; messageId: string };

/**
 * The email an approved `email_message` action becomes: from the run's sending identity, the
 * approved subject and body, a line with the unsubscribe link under the body, and the headers
 * mailbox providers ask of bulk senders (RFC 2369 / RFC 8058). A real transport refuses to
 * send without a way to unsubscribe: it would not be allowed to leave without one. The sender
 * has an address: the executor refuses an email from an identity without one before this.
 */
export async function composeEmail(env: Env, spec: RunPlan, actionKey: string, contactId: string, params: Record<string, unknown>, delivery: ClaimedDelivery): Promise<OutgoingEmail> {
  const sender = spec.sender!;
  const address = sender.email_address!;
  if (!env.UNSUBSCRIBE_SECRET || !env.PUBLIC_URL) throw new Error("UNSUBSCRIBE_SECRET and PUBLIC_URL must be set before email can leave: every email carries an unsubscribe link built from them");
  const token = await unsubscribeToken(env.UNSUBSCRIBE_SECRET, spec.workspaceId, contactId);
  const unsubscribe = unsubscribeHeaders(env.PUBLIC_URL, token, address);
  const link = unsubscribeLink(env.PUBLIC_URL, token);
  return {
    from: { email: address, name: [sender.first_name, sender.last_name].filter(Boolean).join(" ") },
    to: String(params.to),
    subject: String(params.subject),
    text: `${String(params.body)}\n\n--\nTo stop these emails: ${link}`,
    headers: { "Message-ID": delivery.messageId, ...unsubscribe },
    idempotencyKey: actionKey,
    deliveryId: delivery.id,
  };
}

/** The domain of the sender's address: where Message-IDs of its emails are minted. */
export const messageIdDomain = (address: string) => address.slice(address.lastIndexOf("@") + 1).toLowerCase() || "cairn.invalid";
