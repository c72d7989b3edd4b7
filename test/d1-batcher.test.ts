import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { D1Batcher } from "../src/lib/d1-batcher";

describe("D1Batcher", () => {
  it("answers each statement with its own row, sending a burst as few batches", async () => {
    const batcher = new D1Batcher(env.DB);
    const batch = vi.spyOn(env.DB, "batch");
    const rows = await Promise.all([1, 2, 3, 4].map((n) => batcher.first<{ n: number }>(env.DB.prepare("SELECT ? AS n").bind(n))));
    expect(rows).toStrictEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    // Issued in one turn: one round trip.
    expect(batch).toHaveBeenCalledTimes(1);
    batch.mockRestore();
  });

  it("sends what arrives while a batch is in flight as the next batch", async () => {
    const batcher = new D1Batcher(env.DB);
    const batch = vi.spyOn(env.DB, "batch");
    const first = batcher.first<{ n: number }>(env.DB.prepare("SELECT 1 AS n"));
    await Promise.resolve();
    await Promise.resolve();
    const later = [2, 3].map((n) => batcher.first<{ n: number }>(env.DB.prepare("SELECT ? AS n").bind(n)));
    expect(await Promise.all([first, ...later])).toStrictEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(batch.mock.calls.map(([statements]) => statements.length)).toStrictEqual([1, 2]);
    batch.mockRestore();
  });

  it("fails every statement of a batch that D1 refused, and answers null for no row", async () => {
    const batcher = new D1Batcher(env.DB);
    const results = await Promise.allSettled([batcher.first(env.DB.prepare("SELECT 1 AS n WHERE 0")), batcher.first(env.DB.prepare("SELECT * FROM no_such_table"))]);
    expect(results.map((r) => r.status)).toStrictEqual(["rejected", "rejected"]);
    expect(await batcher.first(env.DB.prepare("SELECT 1 AS n WHERE 0"))).toBeNull();
  });
});
