import { and, eq, lt, or, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { idempotencyKeys } from "../db/schema";

export const RETENTION_MS = 24 * 60 * 60 * 1000;
/** How long a claim holds before a crashed request's key may be taken over by a retry. */
export const LOCK_MS = 60 * 1000;

type Stored = typeof idempotencyKeys.$inferSelect;
export type Claim =
  | { kind: "claimed" }
  | { kind: "replay"; status: number; body: string }
  | { kind: "mismatch" }
  | { kind: "in_flight" };

/**
 * Claims `key` for a request with this fingerprint, or reports what an earlier request
 * with the key left behind. One conditional upsert decides the race: of two concurrent
 * first requests exactly one gets the row back.
 */
export async function claimKey(db: Db, scope: string, key: string, fingerprint: string, now = Date.now()): Promise<Claim> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const claimed = await db
      .insert(idempotencyKeys)
      .values({ scope, key, fingerprint, state: "in_flight", createdAt: new Date(now), lockedUntil: new Date(now + LOCK_MS) })
      .onConflictDoUpdate({
        target: [idempotencyKeys.scope, idempotencyKeys.key],
        set: {
          fingerprint,
          state: "in_flight",
          responseStatus: null,
          responseBody: null,
          createdAt: new Date(now),
          lockedUntil: new Date(now + LOCK_MS),
        },
        // Only an expired record, or an abandoned claim by the same request, is taken over.
        setWhere: or(
          lt(idempotencyKeys.createdAt, new Date(now - RETENTION_MS)),
          and(
            eq(idempotencyKeys.state, "in_flight"),
            lt(idempotencyKeys.lockedUntil, new Date(now)),
            eq(idempotencyKeys.fingerprint, sql`excluded.fingerprint`),
          ),
        ),
      })
      .returning({ key: idempotencyKeys.key });
    if (claimed.length > 0) return { kind: "claimed" };

    const existing = await db.query.idempotencyKeys.findFirst({
      where: and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)),
    });
    // Released between our insert and this read: try to claim it again.
    if (existing) return classify(existing, fingerprint);
  }
  return { kind: "in_flight" };
}

function classify(row: Stored, fingerprint: string): Claim {
  if (row.fingerprint !== fingerprint) return { kind: "mismatch" };
  if (row.state === "in_flight") return { kind: "in_flight" };
  return { kind: "replay", status: row.responseStatus!, body: row.responseBody! };
}

/** How many times the response is offered to D1 before the claim is left as it is. */
export const COMPLETE_ATTEMPTS = 3;

/**
 * Stores the response under the claimed key, retrying a failed write; throws the last
 * error if every attempt failed, leaving the claim in flight.
 */
export async function completeKey(db: Db, scope: string, key: string, status: number, body: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await db
        .update(idempotencyKeys)
        .set({ state: "done", responseStatus: status, responseBody: body })
        .where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)));
      return;
    } catch (error) {
      if (attempt >= COMPLETE_ATTEMPTS) throw error;
    }
  }
}

/** Frees a claim whose request failed on our side, so the client's retry runs anew. */
export async function releaseKey(db: Db, scope: string, key: string): Promise<void> {
  await db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)));
}

export async function purgeExpiredKeys(db: Db, now = Date.now()): Promise<void> {
  await db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, new Date(now - RETENTION_MS)));
}
