import { z } from "zod";
import { ListMeta, optionalText, Pagination, Timestamp, TimeZone } from "./common";

const Clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "Use HH:MM, 00:00-23:59");

export const SendWindow = z
  .strictObject({
    start: Clock.default("09:00"),
    end: Clock.default("17:00"),
    days: z
      .array(z.int().min(1).max(7))
      .min(1)
      .max(7)
      .refine((days) => new Set(days).size === days.length, "Days must not repeat")
      .default([1, 2, 3, 4, 5])
      .meta({ description: "ISO weekdays: 1 Monday ... 7 Sunday" }),
    timezone: TimeZone.default("UTC"),
  })
  .refine((w) => w.start < w.end, {
    message: "start must be before end",
    path: ["end"],
    // Only compare two valid clock times: "9:00" is reported as malformed, not as "after 17:00".
    when: (payload) => payload.issues.length === 0,
  })
  .meta({ id: "SendWindow", description: "When this identity may send, in its own time zone" });


export const CreateIdentityBody = z
  .strictObject({
    first_name: z.string().trim().min(1).max(200),
    last_name: optionalText(200),
    role: optionalText(200),
    email_address: z.email().max(254).nullable().optional(),
    linkedin_url: z.url({ protocol: /^https?$/ }).max(2000).nullable().optional(),
    daily_limit: z.int().min(1).max(10000).optional().meta({ description: "Default 50" }),
    send_window: SendWindow.nullable().optional(),
  })
  .meta({ id: "CreateIdentity" });
export type CreateIdentityBody = z.infer<typeof CreateIdentityBody>;

export const UpdateIdentityBody = CreateIdentityBody.partial()
  .refine((body) => Object.keys(body).length > 0, "Send at least one field to update")
  .meta({ id: "UpdateIdentity" });
export type UpdateIdentityBody = z.infer<typeof UpdateIdentityBody>;

export const ListIdentitiesQuery = Pagination;

export const Identity = z
  .object({
    id: z.string(),
    first_name: z.string(),
    last_name: z.string().nullable(),
    role: z.string().nullable(),
    email_address: z.string().nullable(),
    linkedin_url: z.string().nullable(),
    daily_limit: z.int(),
    send_window: z.object({ start: z.string(), end: z.string(), days: z.array(z.int()), timezone: z.string() }).nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: "Identity" });

export const IdentityEnvelope = z.object({ status: z.literal("success"), identity: Identity });
export const IdentityList = z.object({ status: z.literal("success"), identities: z.array(Identity), ...ListMeta });
