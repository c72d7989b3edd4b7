import { z } from "zod";
import { CronError, parseCron } from "../lib/cron";
import { isTimeZone } from "../lib/timezone";

/** A trimmed string that may be sent as null to clear it. */
export const optionalText = (max: number) => z.string().trim().max(max).nullable().optional();

export const Timestamp = z.iso.datetime().meta({ description: "ISO 8601 UTC with milliseconds" });

export const TimeZone = z
  .string()
  .refine(isTimeZone, { message: "Must be an IANA time zone such as Europe/Berlin or UTC" })
  .meta({ description: "IANA time zone name", example: "Europe/Berlin" });

export const CronExpression = z
  .string()
  .superRefine((value, ctx) => {
    try {
      parseCron(value);
    } catch (error) {
      if (!(error instanceof CronError)) throw error;
      ctx.addIssue({ code: "custom", message: error.message });
    }
  })
  .meta({ description: "Five-field cron expression (minute hour day month weekday)", example: "0 9 * * 1-5" });

export const LIFECYCLE_STAGES = [
  "lead",
  "prospect",
  "mql",
  "sql",
  "opportunity",
  "customer",
  "evangelist",
  "subscriber",
  "other",
] as const;
export const LifecycleStage = z.enum(LIFECYCLE_STAGES);

/** Digits only: `""`, `0x10`, `1e3` and ` 5` stay strings and fail the integer check. */
export const decimal = (value: unknown) => (typeof value === "string" && /^\d{1,15}$/.test(value) ? Number(value) : value);
export const WHOLE = { error: (issue: { code?: string }) => (issue.code === "invalid_type" ? "Must be a whole number" : undefined) };

/** Standard list paging: strict bounds, a 400 rather than a silent clamp. */
export const Pagination = z.strictObject({
  limit: z.preprocess(decimal, z.int(WHOLE).min(1).max(100).default(20)),
  offset: z.preprocess(decimal, z.int(WHOLE).min(0).default(0)),
});

export const BooleanQuery = z.enum(["true", "false"]).transform((v) => v === "true");

export const IdParam = z.strictObject({ id: z.string().max(64) });

export const ErrorBody = z
  .object({
    status: z.literal("error"),
    error: z.string(),
    code: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    request_id: z.string(),
    timestamp: Timestamp,
  })
  .meta({ id: "Error" });

export const ListMeta = { total: z.int(), limit: z.int(), offset: z.int() };

/** A success envelope with the given fields. */
export const ok = <T extends z.ZodRawShape>(shape: T) => z.object({ status: z.literal("success"), ...shape });
export const Deleted = ok({ deleted: z.literal(true), id: z.string() });
