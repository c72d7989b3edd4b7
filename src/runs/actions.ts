import { z } from "zod";
import { sha256Hex } from "../lib/crypto";
import type { ActionType } from "../schemas/agents";

const Message = z.string().trim().min(1).max(8000);

/** What each action type's params must look like, after any edits at approval. */
export const ACTION_PARAMS = {
  email_message: z.strictObject({ to: z.email(), subject: z.string().trim().min(1).max(998), body: z.string().trim().min(1).max(50000) }),
  linkedin_connection: z.strictObject({ profile_url: z.url(), message: z.string().trim().max(300) }),
  linkedin_message: z.strictObject({ profile_url: z.url(), message: Message }),
  create_note: z.strictObject({ note: z.string().trim().min(1).max(20000) }),
  sync_to_crm: z.strictObject({ contact_id: z.string(), fields: z.record(z.string(), z.json()) }),
  create_task: z.strictObject({ title: z.string().trim().min(1).max(200), message: Message }),
} satisfies Record<ActionType, z.ZodType>;

/** A JSON value: what params and results may hold, and what crosses the RPC boundary. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type ActionParams = Record<string, Json>;

/** Where an action's effect lands; everything but notes goes to the outbox. */
export const CHANNEL: Record<ActionType, "email" | "linkedin" | "crm" | "tasks" | "notes"> = {
  email_message: "email",
  linkedin_connection: "linkedin",
  linkedin_message: "linkedin",
  create_note: "notes",
  sync_to_crm: "crm",
  create_task: "tasks",
};

/** The channels that reach a person: what needs a sender, a send window, and counts as contacting them. */
export const OUTBOUND_CHANNELS = ["email", "linkedin"] as const;
export const reachesPerson = (type: ActionType) => (OUTBOUND_CHANNELS as readonly string[]).includes(CHANNEL[type]);

/** Params that say who an action reaches: Cairn sets them from the contact, and no edit may change them. */
export const RECIPIENT_FIELDS = ["to", "profile_url", "contact_id"];

/**
 * Whether an action was written for another address than the contact has now: an email for
 * another `to` (addresses compared without case), a LinkedIn action for another profile.
 */
export function addressedElsewhere(action: { type: ActionType; params: ActionParams }, contact: { email: string; linkedin_url: string | null }): boolean {
  if (action.type === "email_message") return String(action.params.to).toLowerCase() !== contact.email.toLowerCase();
  return action.type.startsWith("linkedin_") && action.params.profile_url !== contact.linkedin_url;
}

/** JSON with object keys sorted at every level, so equal params have equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** `sha256:<hex>` of the canonical params: what an approver saw, checkable on approve. */
export const paramsDigest = async (params: ActionParams) => `sha256:${await sha256Hex(canonicalJson(params))}`;
