import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

const build = (d1: D1Database) => drizzle(d1, { schema });
export type Db = ReturnType<typeof build>;

// drizzle() walks the whole schema to build its relational config; the binding lives as
// long as the isolate, so each request reuses the instance instead of rebuilding it.
const instances = new WeakMap<D1Database, Db>();

/** The Drizzle handle for a D1 binding, made once per binding. */
export function createDb(d1: D1Database): Db {
  let db = instances.get(d1);
  if (!db) {
    db = build(d1);
    instances.set(d1, db);
  }
  return db;
}
