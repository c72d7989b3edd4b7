import { getTableColumns, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { contacts } from "../db/schema";
import { chunk, rowsPerStatement } from "../lib/d1";
import { newId } from "../lib/ids";
import type { CreateContactBody } from "../schemas/contacts";
import { contactColumns, findContactsByEmails, newContactRow, type ContactRow } from "./contact-record";

const COLUMNS = Object.keys(getTableColumns(contacts)).length;

/**
 * Upserts contacts by email in one D1 batch (a single transaction: all or nothing).
 * Existing contacts keep the fields a body leaves out; every multi-row statement stays
 * under D1's 100 bound parameters.
 */
export async function upsertContacts(db: Db, workspaceId: string, bodies: CreateContactBody[]) {
  const existing = new Map((await findContactsByEmails(db, workspaceId, bodies.map((b) => b.email))).map((row) => [row.emailKey, row]));
  const now = new Date();
  const rows: ContactRow[] = bodies.map((body) => {
    const current = existing.get(body.email.toLowerCase());
    return current
      ? { ...current, ...contactColumns(body), updatedAt: now }
      : newContactRow(newId("ct"), workspaceId, body, now);
  });

  const statements = chunk(rows, rowsPerStatement(COLUMNS)).map((part) =>
    db
      .insert(contacts)
      .values(part)
      .onConflictDoUpdate({
        target: [contacts.workspaceId, contacts.emailKey],
        set: {
          email: sql`excluded.email`,
          firstName: sql`excluded.first_name`,
          lastName: sql`excluded.last_name`,
          company: sql`excluded.company`,
          jobTitle: sql`excluded.job_title`,
          lifecycleStage: sql`excluded.lifecycle_stage`,
          linkedinUrl: sql`excluded.linkedin_url`,
          timezone: sql`excluded.timezone`,
          properties: sql`excluded.properties`,
          unsubscribed: sql`excluded.unsubscribed`,
          updatedAt: sql`excluded.updated_at`,
        },
      })
      .returning({ id: contacts.id, email: contacts.email, emailKey: contacts.emailKey }),
  );
  const [first, ...rest] = statements;
  const written = (await db.batch([first!, ...rest])).flat();

  // RETURNING reports the row that ended up stored, even if another request created it meanwhile.
  return written.map((row) => ({ id: row.id, email: row.email, created: !existing.has(row.emailKey) }));
}
