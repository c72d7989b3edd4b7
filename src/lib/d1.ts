import type { BatchItem } from "drizzle-orm/batch";
import type { SQL } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import type { Db } from "../db/client";

/** D1 binds at most 100 parameters per statement. */
export const D1_MAX_PARAMS = 100;

/** Splits `items` into runs of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** How many rows of `columns` bound values fit one statement, leaving `reserved` for the rest. */
export const rowsPerStatement = (columns: number, reserved = 0) => Math.floor((D1_MAX_PARAMS - reserved) / columns);

/** Whether a D1 error, or the SQLite error it wraps as its cause, says `text`. */
export function d1ErrorSays(error: unknown, text: string): boolean {
  return `${String(error)} ${error instanceof Error && error.cause ? String(error.cause) : ""}`.includes(text);
}

/** SQLite's UNIQUE constraint failure, as D1 reports it. */
export const isUniqueViolation = (error: unknown) => d1ErrorSays(error, "UNIQUE constraint failed");

/** Runs chunked reads of one shape in a single D1 round trip and joins their rows. */
export async function batchRead<Row>(db: Db, reads: (BatchItem<"sqlite"> & PromiseLike<Row[]>)[]): Promise<Row[]> {
  if (reads.length === 0) return [];
  const [first, ...rest] = reads;
  return ((await db.batch([first!, ...rest])) as Row[][]).flat();
}

const dialect = new SQLiteAsyncDialect();

/**
 * A drizzle `sql` template (or a query builder's `getSQL()`) as a D1 statement, for D1's own
 * `batch()`: drizzle's batch cannot carry raw SQL with parameters.
 */
export function prepare(d1: D1Database, query: SQL): D1PreparedStatement {
  const { sql, params } = dialect.sqlToQuery(query);
  return d1.prepare(sql).bind(...params);
}

/** The rows a statement of D1's `batch()` answered. */
export const rowsOf = <Row>(result: D1Result | undefined): Row[] => (result?.results ?? []) as Row[];
