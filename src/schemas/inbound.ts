import { z } from "zod";

/** Resend echoes a send's tags either as an object or as `{ name, value }` pairs. */
const ResendTags = z.union([z.record(z.string(), z.string()), z.array(z.object({ name: z.string(), value: z.string() }))]);

/** The part of Resend's webhook payload Cairn reads; anything else in it is ignored. */
export const ResendEvent = z
  .object({
    type: z.string().meta({ description: "`email.delivered`, `email.bounced` and `email.complained` are recorded; other types are acknowledged" }),
    created_at: z.string().optional(),
    data: z.object({
      email_id: z.string().optional().meta({ description: "Resend's id of the email, stored as the delivery's provider_message_id" }),
      to: z.union([z.array(z.string()), z.string()]).optional(),
      tags: ResendTags.optional().meta({ description: "A `delivery_id` tag names the delivery when email_id is unknown" }),
      bounce: z
        .object({ type: z.string().optional(), subType: z.string().optional(), message: z.string().optional() })
        .optional()
        .meta({ description: "`type: Transient` is a soft bounce: noted, nothing suppressed" }),
    }),
  })
  .meta({ id: "ResendEvent", description: "A Resend webhook event, signed with Standard Webhooks (`svix-id`, `svix-timestamp`, `svix-signature`)" });

export type ResendEvent = z.infer<typeof ResendEvent>;

export const InboundResult = z.object({
  status: z.literal("success"),
  recorded: z.boolean().meta({ description: "False for an unknown email, an unhandled type, a soft bounce or an event seen before" }),
});

/** The delivery a Resend event names through its `delivery_id` tag, if any. */
export function taggedDeliveryId(tags: ResendEvent["data"]["tags"]): string | undefined {
  if (!tags) return undefined;
  if (Array.isArray(tags)) return tags.find((tag) => tag.name === "delivery_id")?.value;
  return tags.delivery_id;
}
