import { Hono } from "hono";
import { readInbox } from "../approvals/inbox-read";
import { decideAll } from "../approvals/decide";
import type { AppEnv } from "../env";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { idempotency } from "../middleware/idempotency";
import { describeRoute } from "../openapi/route-doc";
import { ApprovalList, DecideBody, DecideResult, ListApprovalsQuery } from "../schemas/approvals";

export const approvals = new Hono<AppEnv>()
  .get("/", describeRoute({
    summary: "List pending approvals across runs",
    description: "Lists every pending action of the workspace across runs, oldest first, with its run, agent, contact and `estimated_send_at`. Answered from D1's inbox index, which each run keeps exact.",
    tag: "Approvals",
    success: { status: 200, description: "Every pending action of the workspace, oldest first, from D1's inbox index", schema: ApprovalList },
  }), requireScope("agents:read"), validate("query", ListApprovalsQuery), async (c) => {
    const query = c.req.valid("query");
    const { entries, total } = await readInbox(c.env.DB, c.var.auth.workspaceId, query);
    return c.json({ status: "success", approvals: entries, total, limit: query.limit, offset: query.offset });
  })

  .post("/decide", describeRoute({
    summary: "Approve or reject many actions",
    description: "Approves or rejects up to 1000 pending actions, named in `items` or selected by `filter`. Each item is decided as the single decision would decide it, with the same codes; `dry_run` checks without deciding.",
    tag: "Approvals",
    success: { status: 200, description: "Per-item results, each as the single decision would answer it; dry_run decides nothing", schema: DecideResult },
  }), requireScope("agents:approve"), idempotency, validate("json", DecideBody), async (c) => {
    const body = c.req.valid("json");
    const results = await decideAll(c.var.db, c.env, c.var.auth, body);
    const decided = results.filter((r) => r.code === undefined).length;
    return c.json({ status: "success", decided, dry_run: body.dry_run, results });
  });
