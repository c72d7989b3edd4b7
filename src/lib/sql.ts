import { sql, type SQL, type SQLWrapper } from "drizzle-orm";

/**
 * Case-insensitive (ASCII) substring match in which every character stands for itself.
 * `instr`, not LIKE: D1 refuses LIKE patterns over 50 bytes, and a term has no such limit.
 */
export const contains = (column: SQLWrapper, term: string): SQL => sql`instr(lower(${column}), lower(${term})) > 0`;
