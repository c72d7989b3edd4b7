import { and, eq, inArray, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { contacts } from "../db/schema";
import { batchRead, chunk, D1_MAX_PARAMS } from "../lib/d1";
import { iso } from "../lib/time";
import type { CreateContactBody, UpdateContactBody } from "../schemas/contacts";

export type ContactRow = typeof contacts.$inferSelect;

export function toContactJson(row: ContactRow) {
  return {
    id: row.id,
    email: row.email,
    first_name: row.firstName,
    last_name: row.lastName,
    company: row.company,
    job_title: row.jobTitle,
    lifecycle_stage: row.lifecycleStage,
    linkedin_url: row.linkedinUrl,
    timezone: row.timezone,
    properties: row.properties,
    unsubscribed: row.unsubscribed,
    last_contacted_at: iso(row.lastContactedAt),
    created_at: iso(row.createdAt)!,
    updated_at: iso(row.updatedAt)!,
  };
}

/** The columns a body sets; fields it leaves out are absent, so an update keeps them. */
export function contactColumns(body: UpdateContactBody) {
  const columns: Partial<ContactRow> = {};
  if (body.email !== undefined) Object.assign(columns, { email: body.email, emailKey: body.email.toLowerCase() });
  if (body.first_name !== undefined) columns.firstName = body.first_name;
  if (body.last_name !== undefined) columns.lastName = body.last_name;
  if (body.company !== undefined) columns.company = body.company;
  if (body.job_title !== undefined) columns.jobTitle = body.job_title;
  if (body.lifecycle_stage !== undefined) columns.lifecycleStage = body.lifecycle_stage;
  if (body.linkedin_url !== undefined) columns.linkedinUrl = body.linkedin_url;
  if (body.timezone !== undefined) columns.timezone = body.timezone;
  if (body.properties !== undefined) columns.properties = body.properties as Record<string, unknown>;
  if (body.unsubscribed !== undefined) columns.unsubscribed = body.unsubscribed;
  return columns;
}

/** A complete new row: the body's fields over the defaults. */
export function newContactRow(id: string, workspaceId: string, body: CreateContactBody, now: Date): ContactRow {
  return {
    id,
    workspaceId,
    firstName: null,
    lastName: null,
    company: null,
    jobTitle: null,
    lifecycleStage: null,
    linkedinUrl: null,
    timezone: null,
    properties: {},
    unsubscribed: false,
    lastContactedAt: null,
    createdAt: now,
    updatedAt: now,
    ...(contactColumns(body) as { email: string; emailKey: string }),
  };
}

export async function findContact(db: Db, workspaceId: string, id: string) {
  return db.query.contacts.findFirst({ where: and(eq(contacts.workspaceId, workspaceId), eq(contacts.id, id)) });
}

/** Contacts of the workspace with these ids, read in chunks that respect D1's parameter limit. */
export async function findContactsByIds(db: Db, workspaceId: string, ids: readonly string[]): Promise<ContactRow[]> {
  return batchRead(
    db,
    chunk(ids, D1_MAX_PARAMS - 1).map((part) =>
      db.select().from(contacts).where(and(eq(contacts.workspaceId, workspaceId), inArray(contacts.id, part))),
    ),
  );
}

/** Contacts of the workspace with these emails (any case), chunked like `findContactsByIds`. */
export async function findContactsByEmails(db: Db, workspaceId: string, emails: readonly string[]): Promise<ContactRow[]> {
  const keys = [...new Set(emails.map((e) => e.toLowerCase()))];
  return batchRead(
    db,
    chunk(keys, D1_MAX_PARAMS - 1).map((part) =>
      db.select().from(contacts).where(and(eq(contacts.workspaceId, workspaceId), inArray(contacts.emailKey, part))),
    ),
  );
}

/** The details a run shows of each of its contacts, for these ids: one statement, the ids as one JSON parameter. */
export async function contactSummaries(db: Db, workspaceId: string, ids: readonly string[]) {
  if (ids.length === 0) return [];
  return db
    .select({
      id: contacts.id,
      email: contacts.email,
      first_name: contacts.firstName,
      last_name: contacts.lastName,
      company: contacts.company,
      job_title: contacts.jobTitle,
      lifecycle_stage: contacts.lifecycleStage,
    })
    .from(contacts)
    .where(and(eq(contacts.workspaceId, workspaceId), sql`${contacts.id} IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`));
}
