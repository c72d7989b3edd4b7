import type { Env } from "../env";
import { cloudflareSender } from "./cloudflare";
import { resendSender } from "./resend";

/** An email as Cairn hands it to a provider: one recipient, plain text, its own headers. */
export type OutgoingEmail = {
  from: { email: string; name: string };
  to: string;
  subject: string;
  text: string;
  /** `Message-ID`, `List-Unsubscribe`, `List-Unsubscribe-Post`. */
  headers: Record<string, string>;
  /** The action's key (`run/contact/index`): a provider that honours it sends a repeated request once. */
  idempotencyKey: string;
  deliveryId: string;
};

/** What the provider answered: its own id for the message, and the `Message-ID` it went out with when it set its own. */
export type SendReceipt = { providerMessageId: string | null; messageId: string | null };

/**
 * Why a send did not go through. `permanent`: the provider refused the message itself (an
 * invalid address); it is never retried. `rejected`: it answered with an error, so nothing
 * left; retried. `unknown`: no answer (a timeout, a dropped connection), so it may have left.
 */
export class SendError extends Error {
  constructor(
    message: string,
    readonly kind: "permanent" | "rejected" | "unknown",
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "SendError";
  }
}

export type EmailSender = {
  readonly transport: Transport;
  /** Whether repeating a send whose outcome is unknown is safe: the provider deduplicates by the idempotency key. */
  readonly idempotent: boolean;
  send(email: OutgoingEmail): Promise<SendReceipt>;
};

export const TRANSPORTS = ["outbox", "resend", "cloudflare"] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** The transport `EMAIL_TRANSPORT` names; `outbox` (recorded, never sent) when unset. */
export function transportOf(env: Env): Transport {
  const name = (env.EMAIL_TRANSPORT ?? "outbox").trim().toLowerCase() || "outbox";
  if (!(TRANSPORTS as readonly string[]).includes(name)) throw new Error(`EMAIL_TRANSPORT must be one of ${TRANSPORTS.join(", ")}, not "${env.EMAIL_TRANSPORT}"`);
  return name as Transport;
}

/**
 * What keeps the configured transport from sending, or null: asked before a run starts, so a
 * misconfigured deployment refuses the trigger instead of failing every approved email later.
 */
export function transportProblem(env: Env): string | null {
  let transport: Transport;
  try {
    transport = transportOf(env);
  } catch (error) {
    return (error as Error).message;
  }
  if (transport === "outbox") return null;
  if (transport === "resend" && !env.RESEND_API_KEY) return "EMAIL_TRANSPORT is resend but RESEND_API_KEY is not set";
  if (transport === "cloudflare" && !env.EMAIL) return "EMAIL_TRANSPORT is cloudflare but the send_email binding EMAIL is missing";
  if (!env.UNSUBSCRIBE_SECRET || !env.PUBLIC_URL) return "UNSUBSCRIBE_SECRET and PUBLIC_URL must be set: every email carries an unsubscribe link built from them";
  return null;
}

/** The sender of a transport that hands email on; the outbox records a delivery and sends nothing. */
export function emailSender(env: Env, transport: Exclude<Transport, "outbox">): EmailSender {
  return transport === "resend" ? resendSender(env) : cloudflareSender(env);
}
