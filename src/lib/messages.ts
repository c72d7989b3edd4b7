import { z } from "zod";

const unit = (origin: string | undefined) =>
  origin === "string" ? " characters" : origin === "array" || origin === "set" ? " items" : "";

/**
 * Plain-English validation messages for the envelope's `details` ("Must be at most 2"),
 * installed once for every zod schema in the Worker.
 */
z.config({
  customError: (issue) => {
    switch (issue.code) {
      case "too_big":
        return `Must be at most ${issue.maximum}${unit(issue.origin)}`;
      case "too_small":
        return issue.origin === "string" && issue.minimum === 1 ? "Must not be empty" : `Must be at least ${issue.minimum}${unit(issue.origin)}`;
      case "invalid_type":
        return issue.input === undefined ? "Required" : `Expected ${issue.expected}`;
      case "invalid_value":
        return `Must be one of: ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
      case "invalid_format":
        return issue.format === "regex" ? undefined : `Must be a valid ${issue.format}`;
      default:
        return undefined;
    }
  },
});
