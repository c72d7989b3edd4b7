import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import { documented } from "../openapi/route-doc";
import { ApiError, validationError, type ErrorDetail } from "./errors";
import "./messages";

/** Turns zod issues into the envelope's `details`, one entry per offending field. */
export function issuesToDetails(issues: readonly z.core.$ZodIssue[], prefix: (string | number)[] = []): ErrorDetail[] {
  return issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ path: [...path, key].join("."), message: "Unknown field" }));
    }
    if (issue.code === "invalid_union" && issue.errors.length > 0 && issue.errors.every((e) => e.length > 0)) {
      // Report the branch that got furthest rather than every alternative.
      const best = [...issue.errors].sort((a, b) => deepest(b) - deepest(a))[0]!;
      return issuesToDetails(best, path);
    }
    return [{ path: path.join("."), message: issue.message }];
  });
}

const deepest = (issues: readonly z.core.$ZodIssue[]) => Math.max(...issues.map((i) => i.path.length));

const TARGET_LABEL: Partial<Record<keyof ValidationTargets, string>> = {
  json: "Request body",
  query: "Query parameters",
  param: "Path parameters",
};

/**
 * `zValidator` that throws the API's validation error instead of answering itself, so
 * `app.onError` stays the one place that builds error envelopes. Path parameters that
 * fail their schema are a 404: an id that cannot exist names nothing. The schema is also
 * what the OpenAPI document shows for the target.
 */
export const validate = <T extends z.ZodType, Target extends keyof ValidationTargets>(target: Target, schema: T) =>
  documented(
    zValidator(target, schema, (result) => {
      if (result.success) return;
      if (target === "param") throw new ApiError(404, "not_found", "No such resource");
      const details = issuesToDetails(result.error.issues);
      throw validationError(`${TARGET_LABEL[target] ?? "Request"} failed validation`, details);
    }),
    { kind: "validate", target, schema },
  );
