import { z } from "zod";
import { ListMeta, Pagination, Timestamp } from "./common";
import { PropertyName } from "./contacts";
import { freeJsonObject } from "./json";

export const EventType = z
  .string()
  .regex(/^[a-z][a-z0-9_.:-]{0,99}$/, "Use lower-case letters, digits and . _ : - (such as page_view or email.replied)")
  .meta({ description: "Free-form; email.replied, email.bounced and contact.unsubscribed stop sequences" });

const EventInput = z
  .strictObject({
    contact_id: z.string().max(64).optional(),
    email: z.email().max(254).optional(),
    type: EventType,
    url: z.string().max(2000).optional(),
    properties: freeJsonObject(PropertyName).optional().meta({ description: "Free JSON object: at most 32 levels deep and 64 KiB as JSON" }),
    occurred_at: z.iso.datetime().optional().meta({ description: "Defaults to the time of the request" }),
  })
  .refine((e) => (e.contact_id === undefined) !== (e.email === undefined), {
    message: "Address the contact by exactly one of contact_id or email",
    path: ["contact_id"],
  });
export type EventInput = z.infer<typeof EventInput>;

export const CreateEventsBody = z
  .strictObject({ events: z.array(EventInput).min(1).max(100) })
  .meta({ id: "CreateEvents", description: "1-100 events; if any names an unknown contact, none is stored" });

export const ListEventsQuery = Pagination.extend({ type: EventType.optional() });

export const Event = z
  .object({
    id: z.string(),
    contact_id: z.string(),
    type: z.string(),
    url: z.string().nullable(),
    properties: z.record(z.string(), z.json()),
    occurred_at: Timestamp,
    created_at: Timestamp,
  })
  .meta({ id: "Event" });

export const EventList = z.object({ status: z.literal("success"), events: z.array(Event), ...ListMeta });
export const EventsCreated = z.object({ status: z.literal("success"), events: z.array(Event) });
