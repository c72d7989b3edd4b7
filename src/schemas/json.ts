import { z } from "zod";

/** Free JSON (contact and event `properties`, approve `params`) nests at most this many levels. */
const MAX_FREE_JSON_DEPTH = 32;
/** ...and serialises to at most this many bytes of UTF-8. */
const MAX_FREE_JSON_BYTES = 64 * 1024;

/**
 * How many containers deep `value` nests (0 for a scalar, 1 for `{}`), walked without
 * recursion and given up as soon as it passes `limit`.
 */
function jsonDepth(value: unknown, limit = Number.POSITIVE_INFINITY): number {
  let deepest = 0;
  const pending: [unknown, number][] = [[value, 0]];
  while (pending.length > 0) {
    const [current, outer] = pending.pop()!;
    if (current === null || typeof current !== "object") continue;
    const depth = outer + 1;
    if (depth > limit) return depth;
    deepest = Math.max(deepest, depth);
    for (const child of Object.values(current)) pending.push([child, depth]);
  }
  return deepest;
}

const utf8Length = (text: string) => new TextEncoder().encode(text).byteLength;

/**
 * A free JSON object whose keys match `key`. Depth and size are checked first, without
 * recursion, so zod's recursive JSON schema only ever sees a value it can walk; either
 * failing is one issue on the field itself.
 */
export const freeJsonObject = <K extends z.core.$ZodRecordKey>(key: K) =>
  z.preprocess(
    (value, ctx) => {
      if (jsonDepth(value, MAX_FREE_JSON_DEPTH) > MAX_FREE_JSON_DEPTH) {
        ctx.addIssue({ code: "custom", message: `Must nest at most ${MAX_FREE_JSON_DEPTH} levels deep` });
      } else if (value !== undefined && utf8Length(JSON.stringify(value)) > MAX_FREE_JSON_BYTES) {
        ctx.addIssue({ code: "custom", message: `Must be at most ${MAX_FREE_JSON_BYTES} bytes as JSON` });
      }
      return value;
    },
    z.record(key, z.json()),
  );
