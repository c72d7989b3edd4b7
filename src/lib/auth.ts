import { and, eq, isNull } from "drizzle-orm";
import type { Db } from "../db/client";
import { apiKeys, workspaces } from "../db/schema";
import { randomToken, sha256Hex } from "./crypto";
import type { Scope } from "./scopes";

export type Auth = {
  workspaceId: string;
  workspaceName: string;
  keyId: string;
  scopes: readonly Scope[];
};

export const KEY_PREFIX = "cairn_sk_";
const KEY_PATTERN = /^cairn_sk_[A-Za-z0-9_-]{43}$/;

/** A new secret: the prefix and 32 random bytes (256 bits). */
export const generateKey = () => `${KEY_PREFIX}${randomToken(32)}`;

export const hashKey = (key: string) => sha256Hex(key);

/**
 * Per-isolate memo of key hash -> auth, bounded and short-lived: a warm isolate answers
 * without D1, and a revoked key stops working everywhere once its entry expires.
 */
export class AuthCache {
  readonly #entries = new Map<string, { auth: Auth; expiresAt: number }>();

  constructor(
    readonly ttlMs = 5_000,
    readonly maxEntries = 1_000,
    readonly now: () => number = Date.now,
  ) {}

  get(hash: string): Auth | undefined {
    const entry = this.#entries.get(hash);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.#entries.delete(hash);
      return undefined;
    }
    return entry.auth;
  }

  set(hash: string, auth: Auth): void {
    this.#entries.delete(hash);
    if (this.#entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#entries.set(hash, { auth, expiresAt: this.now() + this.ttlMs });
  }

  evictKey(keyId: string): void {
    for (const [hash, entry] of this.#entries) if (entry.auth.keyId === keyId) this.#entries.delete(hash);
  }

  get size(): number {
    return this.#entries.size;
  }
}

export const authCache = new AuthCache();

/**
 * Resolves a bearer secret to its workspace and scopes, or null. The lookup is by the
 * secret's SHA-256, so nothing about the secret itself is compared byte by byte.
 */
export async function authenticateKey(db: Db, key: string, cache = authCache): Promise<Auth | null> {
  if (!KEY_PATTERN.test(key)) return null;
  const hash = await hashKey(key);
  const cached = cache.get(hash);
  if (cached) return cached;

  const [row] = await db
    .select({
      keyId: apiKeys.id,
      scopes: apiKeys.scopes,
      workspaceId: workspaces.id,
      workspaceName: workspaces.name,
    })
    .from(apiKeys)
    .innerJoin(workspaces, eq(workspaces.id, apiKeys.workspaceId))
    .where(and(eq(apiKeys.keyHash, hash), isNull(apiKeys.revokedAt)))
    .limit(1);
  if (!row) return null;

  const auth: Auth = { ...row, scopes: row.scopes as Scope[] };
  cache.set(hash, auth);
  return auth;
}
