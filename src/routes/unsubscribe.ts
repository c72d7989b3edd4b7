import { and, eq } from "drizzle-orm";
import { Hono, type Context } from "hono";
import { z } from "zod";
import { unsubscribeContact } from "../contacts/unsubscribe-contact";
import { contacts, workspaces } from "../db/schema";
import { readUnsubscribeToken } from "../delivery/unsubscribe";
import type { AppEnv } from "../env";
import { notFound } from "../lib/errors";
import { describeRoute } from "../openapi/route-doc";
import { ok } from "../schemas/common";

/** The contact a link's token names, in its workspace; a forged, altered or stale token names nobody (404). */
async function linkedContact(c: Context<AppEnv>) {
  const secret = c.env.UNSUBSCRIBE_SECRET;
  const named = secret ? await readUnsubscribeToken(secret, c.req.param("token") ?? "") : null;
  if (!named) throw notFound("unsubscribe link");
  const [row] = await c.var.db
    .select({ id: contacts.id, email: contacts.email, unsubscribed: contacts.unsubscribed, workspace: workspaces.name })
    .from(contacts)
    .innerJoin(workspaces, eq(workspaces.id, contacts.workspaceId))
    .where(and(eq(contacts.workspaceId, named.workspaceId), eq(contacts.id, named.contactId)));
  if (!row) throw notFound("unsubscribe link");
  return { ...row, workspaceId: named.workspaceId };
}

/** The signed token a link carries; the route reads and checks it itself. */
const LinkParams = z.strictObject({ token: z.string().meta({ description: "The link's signed token" }) });

const escape = (text: string) => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
/** `a***@acme.com`: enough for the recipient to recognise, little for whoever the link was forwarded to. */
const masked = (email: string) => email.replace(/^(.)[^@]*/, "$1***");

const page = (title: string, body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${title}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}button{font:inherit;padding:.5rem 1.25rem;cursor:pointer}</style>
</head><body><h1>${title}</h1>${body}</body></html>`;

/**
 * Unsubscribe links (CONTRACT.md section 11), with no API key: `GET` shows a page with a
 * confirm button; `POST` unsubscribes (RFC 8058 one-click: any body, `List-Unsubscribe=One-Click`
 * or none, is accepted and not read) and stops every sequence of the contact.
 */
export const unsubscribe = new Hono<AppEnv>()
  .get("/:token", describeRoute({
    summary: "Show an unsubscribe page",
    description: "The page an unsubscribe link opens: a confirm button, so that link scanners do not unsubscribe anyone.",
    tag: "Unsubscribe",
    success: { status: 200, description: "A small HTML page with a confirm button", schema: z.string(), html: true },
    errors: { 404: "A forged, altered or stale token (`not_found`)" },
    params: LinkParams,
  }), async (c) => {
    const contact = await linkedContact(c);
    const who = `${escape(masked(contact.email))} from ${escape(contact.workspace)}`;
    if (contact.unsubscribed) return c.html(page("You are unsubscribed", `<p>${who} will not write to you again.</p>`));
    return c.html(page("Unsubscribe", `<p>Stop all messages to ${who}?</p><form method="post"><button type="submit">Unsubscribe</button></form>`));
  })
  .post("/:token", describeRoute({
    summary: "Unsubscribe by link",
    description: "RFC 8058 one-click unsubscribe: any body (`List-Unsubscribe=One-Click` or none) is accepted. The contact is unsubscribed and its sequences stop. Answers HTML when the request accepts it.",
    tag: "Unsubscribe",
    success: { status: 200, description: "Unsubscribed, now or before", schema: ok({ unsubscribed: z.literal(true) }) },
    errors: { 404: "A forged, altered or stale token (`not_found`)" },
    params: LinkParams,
  }), async (c) => {
    const contact = await linkedContact(c);
    await unsubscribeContact(c.var.db, c.env, contact.workspaceId, contact.id, "unsubscribe_link");
    if ((c.req.header("Accept") ?? "").includes("text/html")) {
      return c.html(page("You are unsubscribed", `<p>${escape(masked(contact.email))} will get no more messages from ${escape(contact.workspace)}.</p>`));
    }
    return c.json({ status: "success", unsubscribed: true });
  });
