import { describe, expect, it } from "vitest";
import { InboxCache } from "../../src/approvals/inbox-cache";

describe("InboxCache", () => {
  it("holds pages within its bytes, the least recently used out first", () => {
    const cache = new InboxCache<string>(100);
    cache.set("a", 1, "page a", 40);
    cache.set("b", 1, "page b", 40);
    expect(cache.get("a")).toStrictEqual({ version: 1, page: "page a", bytes: 40 });
    // "b" is now the least recently used: room for "c" is made by dropping it.
    cache.set("c", 1, "page c", 40);
    expect([cache.get("a")?.page, cache.get("b"), cache.get("c")?.page]).toStrictEqual(["page a", undefined, "page c"]);
    expect(cache.size).toBe(2);
  });

  it("replaces a key's page and version, and never holds a page larger than itself", () => {
    const cache = new InboxCache<string>(100);
    cache.set("a", 1, "old", 60);
    cache.set("a", 2, "new", 60);
    expect(cache.get("a")).toMatchObject({ version: 2, page: "new" });
    cache.set("huge", 1, "too big", 101);
    expect([cache.get("huge"), cache.get("a")?.page]).toStrictEqual([undefined, "new"]);
  });
});
