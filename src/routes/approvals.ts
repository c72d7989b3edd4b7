import { Hono } from "hono";
import { readInbox } from "../approvals/inbox-read";
import { decideAll } from "../approvals/decide";
import type { AppEnv } from "../env";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { DecideBody, ListApprovalsQuery } from "../schemas/approvals";

export const approvals = new Hono<AppEnv>()
  .get("/", requireScope("agents:read"), validate("query", ListApprovalsQuery), async (c) => {
    const query = c.req.valid("query");
    const { entries, total } = await readInbox(c.var.db, c.env.DB, c.var.auth.workspaceId, query);
    return c.json({ status: "success", approvals: entries, total, limit: query.limit, offset: query.offset });
  })

  .post("/decide", requireScope("agents:approve"), validate("json", DecideBody), async (c) => {
    const body = c.req.valid("json");
    const results = await decideAll(c.var.db, c.env, c.var.auth, body);
    const decided = results.filter((r) => r.code === undefined).length;
    return c.json({ status: "success", decided, dry_run: body.dry_run, results });
  });
