import type { Env } from "../env";
import { seal, unseal } from "../lib/crypto";

/** After a rotation the old secret keeps signing for this long, so receivers can switch over. */
export const ROTATION_OVERLAP_MS = 24 * 60 * 60 * 1000;

/** A Standard Webhooks secret: `whsec_` and 32 random bytes in base64. */
export function newSigningSecret(): string {
  return `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
}

/** The sealing context binds a sealed secret to its endpoint: copied to another row, it does not open. */
const context = (endpointId: string) => `webhook-endpoint:${endpointId}`;

export function sealSecret(env: Env, endpointId: string, secret: string): Promise<string> {
  return seal(env.ENCRYPTION_KEY!, context(endpointId), secret);
}

/** Opened secrets by sealed text: each is opened once per isolate, not once per delivery. */
const opened = new Map<string, Promise<string | null>>();
const OPENED_LIMIT = 1000;

function openSecret(env: Env, endpointId: string, sealed: string): Promise<string | null> {
  let secret = opened.get(sealed);
  if (!secret) {
    if (opened.size >= OPENED_LIMIT) opened.clear();
    secret = unseal(env.ENCRYPTION_KEY ?? "", context(endpointId), sealed);
    opened.set(sealed, secret);
  }
  return secret;
}

type Sealed = { id: string; secret: string; previous_secret: string | null; previous_secret_expires_at: number | null };

/**
 * The secrets that sign a message to `endpoint` now: its own, and during the 24 hours after a
 * rotation the previous one too. Throws when its own secret will not open (ENCRYPTION_KEY
 * changed): the attempt fails visibly rather than going out unsigned, until the secret is
 * rotated. A previous secret that will not open is left out: rotating is the way back.
 */
export async function signingSecrets(env: Env, endpoint: Sealed, now: number): Promise<string[]> {
  const current = await openSecret(env, endpoint.id, endpoint.secret);
  if (current === null) throw new Error("The endpoint's secret cannot be opened with this ENCRYPTION_KEY; rotate the secret");
  const overlapping = endpoint.previous_secret && (endpoint.previous_secret_expires_at ?? 0) > now;
  const previous = overlapping ? await openSecret(env, endpoint.id, endpoint.previous_secret!) : null;
  return previous === null ? [current] : [current, previous];
}
