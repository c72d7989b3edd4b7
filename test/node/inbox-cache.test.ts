import { describe, expect, it } from "vitest";
import { InboxCache } from "../../src/approvals/inbox-cache";

const held = (page: string, version = 1) => ({ version, page, moving: false });

describe("InboxCache", () => {
  it("holds pages within its size, the least recently used out first", () => {
    const cache = new InboxCache<string>(100);
    cache.set("a", held("page a"), 40);
    cache.set("b", held("page b"), 40);
    expect(cache.get("a")).toStrictEqual(held("page a"));
    // "b" is now the least recently used: room for "c" is made by dropping it.
    cache.set("c", held("page c"), 40);
    expect([cache.get("a")?.page, cache.get("b"), cache.get("c")?.page]).toStrictEqual(["page a", undefined, "page c"]);
    expect(cache.size).toBe(2);
  });

  it("replaces a key's page and version, and never holds a page larger than itself", () => {
    const cache = new InboxCache<string>(100);
    cache.set("a", held("old"), 60);
    cache.set("a", held("new", 2), 60);
    expect(cache.get("a")).toStrictEqual(held("new", 2));
    cache.set("huge", held("too big"), 101);
    expect([cache.get("huge"), cache.get("a")?.page]).toStrictEqual([undefined, "new"]);
  });
});
