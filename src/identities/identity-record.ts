import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { identities } from "../db/schema";
import { iso } from "../lib/time";
import type { UpdateIdentityBody } from "../schemas/identities";

export type IdentityRow = typeof identities.$inferSelect;

export const toIdentityJson = (row: IdentityRow) => ({
  id: row.id,
  first_name: row.firstName,
  last_name: row.lastName,
  role: row.role,
  email_address: row.emailAddress,
  linkedin_url: row.linkedinUrl,
  daily_limit: row.dailyLimit,
  send_window: row.sendWindow,
  created_at: iso(row.createdAt)!,
  updated_at: iso(row.updatedAt)!,
});

/** The columns a body sets; fields it leaves out are absent, so an update keeps them. */
export function identityColumns(body: UpdateIdentityBody): Partial<IdentityRow> {
  const columns: Partial<IdentityRow> = {};
  if (body.first_name !== undefined) columns.firstName = body.first_name;
  if (body.last_name !== undefined) columns.lastName = body.last_name;
  if (body.role !== undefined) columns.role = body.role;
  if (body.email_address !== undefined) columns.emailAddress = body.email_address;
  if (body.linkedin_url !== undefined) columns.linkedinUrl = body.linkedin_url;
  if (body.daily_limit !== undefined) columns.dailyLimit = body.daily_limit;
  if (body.send_window !== undefined) columns.sendWindow = body.send_window;
  return columns;
}

export async function findIdentity(db: Db, workspaceId: string, id: string) {
  return db.query.identities.findFirst({ where: and(eq(identities.workspaceId, workspaceId), eq(identities.id, id)) });
}
