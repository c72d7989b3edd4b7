// Standard Webhooks (https://www.standardwebhooks.com), the scheme Svix signs with: an
// HMAC-SHA256 of `id.timestamp.body`, keyed with the base64 bytes of a `whsec_` secret.

const SECRET_PREFIX = "whsec_";
/** Older or newer messages are refused, so a captured request cannot be replayed later. */
export const WEBHOOK_TOLERANCE_MS = 5 * 60 * 1000;
/**
 * Each candidate costs an HMAC of the whole body: a sender rotating keys lists two or three,
 * so an unauthenticated caller gets no more than this many tries per request.
 */
const MAX_SIGNATURES = 8;

const encoder = new TextEncoder();

export type WebhookVerification = { ok: true; id: string } | { ok: false; reason: string };

function fromBase64(text: string): Uint8Array<ArrayBuffer> | null {
  try {
    return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  } catch {
    return null;
  }
}

const toBase64 = (bytes: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

/** The HMAC key of a `whsec_<base64>` secret, or of the bare base64 some providers show. */
async function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  const bytes = fromBase64(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret);
  // A bad secret is a deployment mistake, not a bad request: it must not read as a forged signature.
  if (!bytes || bytes.length === 0) throw new Error("Webhook secret must be whsec_ followed by base64");
  return crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

const signedContent = (id: string, timestampSeconds: number, body: string) => encoder.encode(`${id}.${timestampSeconds}.${body}`);

/**
 * The `webhook-signature` entry for one message: `v1,<base64 HMAC-SHA256>`. To sign with
 * several secrets (during a rotation), join their entries with a space.
 */
export async function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret, "sign"), signedContent(id, timestampSeconds, body));
  return `v1,${toBase64(mac)}`;
}

/** `webhook-*` headers, or the `svix-*` names Svix-based senders (Resend) use. */
const header = (headers: Headers, name: string) => headers.get(`webhook-${name}`) ?? headers.get(`svix-${name}`);

/**
 * Checks a received message: its id, timestamp (within 5 minutes of `nowMs`, either way)
 * and that one of the `v1` signatures it lists was made with `secret` over exactly `body`.
 */
export async function verifyWebhook(secret: string, headers: Headers, body: string, nowMs: number): Promise<WebhookVerification> {
  const id = header(headers, "id");
  const timestamp = header(headers, "timestamp");
  const signatures = header(headers, "signature");
  if (!id || !timestamp || !signatures) return { ok: false, reason: "missing webhook-id, webhook-timestamp or webhook-signature" };

  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "malformed timestamp" };
  const seconds = Number(timestamp);
  if (nowMs - seconds * 1000 > WEBHOOK_TOLERANCE_MS) return { ok: false, reason: "timestamp too old" };
  if (seconds * 1000 - nowMs > WEBHOOK_TOLERANCE_MS) return { ok: false, reason: "timestamp in the future" };

  const candidates = signatures
    .split(" ")
    .flatMap((entry) => (entry.startsWith("v1,") ? [fromBase64(entry.slice(3))] : []))
    .filter((mac) => mac !== null)
    .slice(0, MAX_SIGNATURES);
  if (candidates.length === 0) return { ok: false, reason: "no v1 signature" };

  const key = await hmacKey(secret, "verify");
  const content = signedContent(id, seconds, body);
  for (const mac of candidates) {
    // verify() compares in constant time, so a near miss tells the caller nothing.
    if (await crypto.subtle.verify("HMAC", key, mac, content)) return { ok: true, id };
  }
  return { ok: false, reason: "no matching signature" };
}
