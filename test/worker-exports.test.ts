import { describe, expect, it } from "vitest";
import * as main from "../src/index";

describe("the Worker's main module", () => {
  // workerd refuses to start a Worker whose main module exports anything else; the
  // test pool does not, so this guards `wrangler deploy` and `npm start`.
  it("exports only the handler object and classes", () => {
    for (const [name, value] of Object.entries(main)) {
      if (name === "default") expect(Object.keys(value as object).sort()).toEqual(["email", "fetch", "queue", "scheduled"]);
      else expect(typeof value, `export ${name}`).toBe("function");
    }
  });
});
