import { and, eq, inArray, sql, type SQL } from "drizzle-orm";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Db } from "../db/client";
import { contacts, deliveries } from "../db/schema";
import type { Env, AppEnv } from "../env";
import type { EventRow } from "../events/event-record";
import { recordEvents } from "../events/record-events";
import { ApiError, notFound } from "../lib/errors";
import { newId } from "../lib/ids";
import { verifyWebhook } from "../lib/standard-webhooks";
import { describeRoute } from "../openapi/route-doc";
import { InboundResult, ResendEvent, taggedDeliveryId } from "../schemas/inbound";
import { alreadyRecorded } from "../delivery/reply-match";

/** Resend's events are small; anything near this is not one of them. */
const MAX_INBOUND_BYTES = 256 * 1024;

type Move = { status: string; from: string[]; events: string[] };

/**
 * What each recorded event does to its delivery: a compare-and-set from the statuses it may
 * leave, and the contact events it records when it moved. A later status is never undone
 * by a late or repeated event (a delivery notice after a bounce changes nothing).
 */
const MOVES = new Map<string, Move>([
  ["email.delivered", { status: "delivered", from: ["sending", "sent"], events: ["email.delivered"] }],
  ["email.bounced", { status: "bounced", from: ["sending", "sent", "delivered"], events: ["email.bounced"] }],
  // A complaint is an unsubscribe: recordEvents opts the contact out and stops its sequences.
  ["email.complained", { status: "complained", from: ["sending", "sent", "delivered", "bounced"], events: ["email.complained", "contact.unsubscribed"] }],
]);

const log = (message: string, fields: Record<string, unknown>) => console.log(JSON.stringify({ level: "info", message, ...fields }));

function parseEvent(body: string): ResendEvent | null {
  try {
    const parsed = ResendEvent.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The Resend delivery an event names, by Resend's email id or else by the `delivery_id` tag the send set. */
async function findDelivery(db: Db, data: ResendEvent["data"]) {
  const lookup = async (where: SQL) => {
    const [row] = await db
      .select({ id: deliveries.id, workspaceId: deliveries.workspaceId, status: deliveries.status, contactId: contacts.id })
      .from(deliveries)
      .leftJoin(contacts, eq(contacts.id, deliveries.contactId))
      .where(and(eq(deliveries.transport, "resend"), where))
      .limit(1);
    return row;
  };
  const byEmail = data.email_id ? await lookup(eq(deliveries.providerMessageId, data.email_id)) : undefined;
  if (byEmail) return byEmail;
  const tagged = taggedDeliveryId(data.tags);
  return tagged ? ((await lookup(eq(deliveries.id, tagged))) ?? null) : null;
}

/**
 * Applies one verified event; whether it recorded anything. An event that cannot be used is
 * logged and acknowledged, never refused: Resend retries an error answer for days.
 */
async function applyEvent(db: Db, env: Env, event: ResendEvent, webhookId: string): Promise<boolean> {
  const { data } = event;
  const skip = (reason: string, fields: Record<string, unknown> = {}) => {
    log("resend event not recorded", { reason, type: event.type, email_id: data.email_id, webhook_id: webhookId, ...fields });
    return false;
  };
  const move = MOVES.get(event.type);
  if (!move) return skip("unhandled event type");
  const delivery = await findDelivery(db, data);
  if (!delivery) return skip("unknown delivery");
  // A soft bounce (a full mailbox, a greylisting server) is temporary: the address may well work tomorrow.
  if (event.type === "email.bounced" && data.bounce?.type === "Transient") return skip("soft bounce", { delivery_id: delivery.id, bounce: data.bounce });

  const now = new Date();
  const [moved] = await db
    .update(deliveries)
    .set({
      status: move.status,
      updatedAt: now,
      // Found by its tag after the send lost Resend's answer: later events then match by id.
      ...(data.email_id ? { providerMessageId: sql`coalesce(${deliveries.providerMessageId}, ${data.email_id})` } : {}),
    })
    .where(and(eq(deliveries.id, delivery.id), inArray(deliveries.status, move.from)))
    .returning({ id: deliveries.id });
  if (!delivery.contactId) return skip("contact deleted", { delivery_id: delivery.id });
  // Resend retries and may send the same event twice: it is recorded once. The request that moved
  // the status may have died before its events were written, so a repeat that finds the status
  // moved and the events missing records them: a bounce or complaint is never lost.
  if (!moved) {
    const recorded = delivery.status !== move.status || (await alreadyRecorded(db, delivery.contactId, move.events[0]!, "delivery_id", delivery.id));
    if (recorded) return skip("status already moved", { delivery_id: delivery.id, status: delivery.status });
  }

  const properties = { delivery_id: delivery.id, provider: "resend", webhook_id: webhookId, email_id: data.email_id ?? null };
  const bounce = data.bounce ? { bounce_type: data.bounce.type ?? null, bounce_subtype: data.bounce.subType ?? null, bounce_message: data.bounce.message ?? null } : {};
  const occurredAt = event.created_at && !Number.isNaN(Date.parse(event.created_at)) ? new Date(event.created_at) : now;
  const rows: EventRow[] = move.events.map((type) => ({
    id: newId("evt"),
    workspaceId: delivery.workspaceId,
    contactId: delivery.contactId!,
    type,
    url: null,
    properties: type === "contact.unsubscribed" ? { ...properties, source: "complaint" } : type === "email.bounced" ? { ...properties, ...bounce } : properties,
    occurredAt,
    createdAt: now,
  }));
  try {
    await recordEvents(db, env, delivery.workspaceId, rows);
  } catch (error) {
    // Undo the move, so the retry Resend makes after this 500 finds it still to make and records the events.
    await db
      .update(deliveries)
      .set({ status: delivery.status })
      .where(and(eq(deliveries.id, delivery.id), eq(deliveries.status, move.status), eq(deliveries.updatedAt, now)));
    throw error;
  }
  return true;
}

/**
 * Resend's delivery events (CONTRACT.md section 11), with no API key: the Standard Webhooks
 * signature made with RESEND_WEBHOOK_SECRET is the authentication. Unset, the route is not there.
 */
export const inbound = new Hono<AppEnv>().post(
  "/resend",
  describeRoute({
    summary: "Receive a Resend delivery event",
    description: "Resend's delivery events, signed with Standard Webhooks. Delivered, hard bounces (which suppress the contact) and complaints (which unsubscribe it) are recorded once; an unknown email or type is acknowledged unrecorded.",
    tag: "Inbound",
    success: { status: 200, description: "Acknowledged; `recorded` says whether the event changed anything", schema: InboundResult },
    errors: {
      401: "Missing or bad Standard Webhooks signature, or a timestamp over 5 minutes away (`invalid_signature`)",
      404: "RESEND_WEBHOOK_SECRET is not set (`not_found`)",
      413: "Body over 256 KiB (`payload_too_large`)",
    },
    body: ResendEvent,
  }),
  async (c, next) => {
    if (!c.env.RESEND_WEBHOOK_SECRET) throw notFound("route");
    await next();
  },
  bodyLimit({
    maxSize: MAX_INBOUND_BYTES,
    onError: () => {
      throw new ApiError(413, "payload_too_large", `Request body exceeds ${MAX_INBOUND_BYTES} bytes`);
    },
  }),
  async (c) => {
    // The exact bytes are what was signed, so the body is read as text, never re-serialised.
    const body = await c.req.text();
    const verified = await verifyWebhook(c.env.RESEND_WEBHOOK_SECRET!, c.req.raw.headers, body, Date.now());
    if (!verified.ok) throw new ApiError(401, "invalid_signature", `Webhook signature refused: ${verified.reason}`);
    const event = parseEvent(body);
    if (!event) {
      log("resend event not recorded", { reason: "unreadable payload", webhook_id: verified.id });
      return c.json({ status: "success", recorded: false });
    }
    return c.json({ status: "success", recorded: await applyEvent(c.var.db, c.env, event, verified.id) });
  },
);
