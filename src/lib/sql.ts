import { sql, type SQL, type SQLWrapper } from "drizzle-orm";

/** Case-insensitive (ASCII) substring match in which `%`, `_` and `\` stand for themselves. */
export const contains = (column: SQLWrapper, term: string): SQL =>
  sql`${column} LIKE ${`%${term.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`} ESCAPE '\\'`;
