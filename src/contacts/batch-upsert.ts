import { getTableColumns, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/client";
import { contacts } from "../db/schema";
import { chunk, rowsPerStatement } from "../lib/d1";
import { newId } from "../lib/ids";
import type { CreateContactBody } from "../schemas/contacts";
import { contactColumns, findContactsByEmails, newContactRow } from "./contact-record";

const COLUMNS = getTableColumns(contacts);
const COLUMN_COUNT = Object.keys(COLUMNS).length;

/**
 * Upserts contacts by email in one D1 batch (a single transaction: all or nothing). A
 * conflict updates only the fields that body sent, straight from the statement, so a field
 * changed meanwhile by another request (an unsubscribe, say) is never written back stale.
 * Bodies that send the same fields share statements, each under D1's 100 bound parameters.
 */
export async function upsertContacts(db: Db, workspaceId: string, bodies: CreateContactBody[]) {
  const existing = new Set((await findContactsByEmails(db, workspaceId, bodies.map((b) => b.email))).map((row) => row.emailKey));
  const now = new Date();
  const groups = Map.groupBy(bodies, (body) => Object.keys(contactColumns(body)).sort().join(","));

  const statements = [...groups.values()].flatMap((group) => {
    const sent = Object.keys(contactColumns(group[0]!)) as (keyof typeof COLUMNS)[];
    const set: Record<string, SQL> = { updatedAt: sql.raw(`excluded.${COLUMNS.updatedAt.name}`) };
    for (const field of sent) set[field] = sql.raw(`excluded.${COLUMNS[field].name}`);
    return chunk(group, rowsPerStatement(COLUMN_COUNT)).map((part) =>
      db
        .insert(contacts)
        .values(part.map((body) => newContactRow(newId("ct"), workspaceId, body, now)))
        .onConflictDoUpdate({ target: [contacts.workspaceId, contacts.emailKey], set })
        .returning({ id: contacts.id, email: contacts.email, emailKey: contacts.emailKey }),
    );
  });
  const [first, ...rest] = statements;
  const written = (await db.batch([first!, ...rest])).flat();

  // RETURNING reports the row that ended up stored, even if another request created it
  // meanwhile; answers follow the request's order, whatever the grouping.
  const stored = new Map(written.map((row) => [row.emailKey, row]));
  return bodies.map((body) => {
    const row = stored.get(body.email.toLowerCase())!;
    return { id: row.id, email: row.email, created: !existing.has(row.emailKey) };
  });
}
