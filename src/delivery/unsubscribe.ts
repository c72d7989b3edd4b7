const encoder = new TextEncoder();

const b64url = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromB64url = (text: string) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

const hmacKey = (secret: string, usage: "sign" | "verify") =>
  crypto.subtle.importKey("raw", encoder.encode(`unsubscribe:${secret}`), { name: "HMAC", hash: "SHA-256" }, false, [usage]);

/**
 * The token of an unsubscribe link: the workspace and contact it names, and an HMAC-SHA256
 * of them under `UNSUBSCRIBE_SECRET`. Anyone holding the link may unsubscribe that contact,
 * as the mailbox providers' one-click rule (RFC 8058) asks; nobody can forge or alter one.
 */
export async function unsubscribeToken(secret: string, workspaceId: string, contactId: string): Promise<string> {
  const subject = `${workspaceId}:${contactId}`;
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(secret, "sign"), encoder.encode(subject)));
  return `${b64url(encoder.encode(subject))}.${b64url(mac)}`;
}

/** The workspace and contact a token names, or null for a token this secret did not sign. */
export async function readUnsubscribeToken(secret: string, token: string): Promise<{ workspaceId: string; contactId: string } | null> {
  const match = /^([A-Za-z0-9_-]{1,200})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match) return null;
  try {
    const subject = fromB64url(match[1]!);
    // Verified in constant time by WebCrypto.
    if (!(await crypto.subtle.verify("HMAC", await hmacKey(secret, "verify"), fromB64url(match[2]!), subject))) return null;
    const [workspaceId, contactId, ...rest] = new TextDecoder().decode(subject).split(":");
    return workspaceId && contactId && rest.length === 0 ? { workspaceId, contactId } : null;
  } catch {
    return null;
  }
}

/** The https link a token stands behind: the page, and the one-click POST. */
export const unsubscribeLink = (publicUrl: string, token: string) => `${publicUrl.replace(/\/+$/, "")}/v1/unsubscribe/${token}`;

/** The headers every email carries so a recipient can leave in one click (RFC 2369, RFC 8058). */
export function unsubscribeHeaders(publicUrl: string, token: string, mailtoAddress: string): Record<string, string> {
  const link = unsubscribeLink(publicUrl, token);
  return {
    "List-Unsubscribe": `<${link}>, <mailto:${mailtoAddress}?subject=unsubscribe%20${token}>`,
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
  };
}
