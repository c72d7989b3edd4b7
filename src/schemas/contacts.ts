import { z } from "zod";
import { BooleanQuery, LIFECYCLE_STAGES, LifecycleStage, optionalText, ListMeta, Pagination, Timestamp, TimeZone } from "./common";
import { freeJsonObject } from "./json";

/** Property names double as JSON paths in monitoring filters, so they stay plain. */
export const PropertyName = z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, "Use 1-100 letters, digits, '-' or '_'");


const contactFields = {
  email: z.email().max(254),
  first_name: optionalText(200),
  last_name: optionalText(200),
  company: optionalText(200),
  job_title: optionalText(200),
  lifecycle_stage: LifecycleStage.nullable().optional(),
  linkedin_url: z.url({ protocol: /^https?$/ }).max(2000).nullable().optional(),
  timezone: TimeZone.nullable().optional(),
  properties: freeJsonObject(PropertyName).optional().meta({ description: "Free JSON object: at most 32 levels deep and 64 KiB as JSON" }),
  unsubscribed: z.boolean().optional(),
};

export const CreateContactBody = z.strictObject(contactFields).meta({ id: "CreateContact" });
export type CreateContactBody = z.infer<typeof CreateContactBody>;

export const UpdateContactBody = CreateContactBody.partial()
  .refine((body) => Object.keys(body).length > 0, "Send at least one field to update")
  .meta({ id: "UpdateContact" });
export type UpdateContactBody = z.infer<typeof UpdateContactBody>;

export const BatchContactsBody = z
  .strictObject({ contacts: z.array(CreateContactBody).min(1).max(1000) })
  .superRefine(({ contacts }, ctx) => {
    const seen = new Map<string, number>();
    contacts.forEach((contact, i) => {
      const key = contact.email.toLowerCase();
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({ code: "custom", path: ["contacts", i, "email"], message: `Same email as contacts.${first}` });
      } else seen.set(key, i);
    });
  })
  .meta({ id: "BatchContacts", description: "Upserts up to 1000 contacts by email (case-insensitive), atomically" });

const StageList = z
  .string()
  .transform((value) => [...new Set(value.split(","))])
  .pipe(z.array(LifecycleStage).max(LIFECYCLE_STAGES.length))
  .meta({ description: "One stage or a comma-separated list" });

export const ListContactsQuery = Pagination.extend({
  lifecycle_stage: StageList.optional(),
  search: z.string().trim().min(1).max(200).optional().meta({ description: "Substring of email, names or company" }),
  created_after: z.iso.datetime().optional(),
  created_before: z.iso.datetime().optional(),
  unsubscribed: BooleanQuery.optional(),
});

export const Contact = z
  .object({
    id: z.string(),
    email: z.string(),
    first_name: z.string().nullable(),
    last_name: z.string().nullable(),
    company: z.string().nullable(),
    job_title: z.string().nullable(),
    lifecycle_stage: LifecycleStage.nullable(),
    linkedin_url: z.string().nullable(),
    timezone: z.string().nullable(),
    properties: z.record(z.string(), z.json()),
    unsubscribed: z.boolean(),
    last_contacted_at: Timestamp.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: "Contact" });

export const ContactEnvelope = z.object({ status: z.literal("success"), contact: Contact });
export const ContactList = z.object({ status: z.literal("success"), contacts: z.array(Contact), ...ListMeta });
export const BatchResult = z.object({
  status: z.literal("success"),
  created: z.int(),
  updated: z.int(),
  contacts: z.array(z.object({ id: z.string(), email: z.string(), created: z.boolean() })),
});

export const Note = z
  .object({ id: z.string(), contact_id: z.string(), body: z.string(), run_id: z.string().nullable(), created_at: Timestamp })
  .meta({ id: "Note" });
export const NoteList = z.object({ status: z.literal("success"), notes: z.array(Note), ...ListMeta });
