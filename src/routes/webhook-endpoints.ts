import { and, count, desc, eq, sql } from "drizzle-orm";
import type { SQLiteUpdateSetSource } from "drizzle-orm/sqlite-core";
import { Hono } from "hono";
import { webhookDeliveries, webhookEndpoints as endpointsTable, webhookEvents } from "../db/schema";
import type { AppEnv, Env } from "../env";
import { ApiError, conflict, notFound, validationError } from "../lib/errors";
import { newId, newMessageId } from "../lib/ids";
import { validate } from "../lib/validate";
import { requireScope } from "../middleware/auth";
import { idempotency } from "../middleware/idempotency";
import { describeRoute } from "../openapi/route-doc";
import { Deleted, IdParam, Pagination } from "../schemas/common";
import { CreateWebhookEndpointBody, DeliveryParams, ListDeliveriesQuery, TestEventBody, UpdateWebhookEndpointBody, WebhookDeliveryEnvelope, WebhookDeliveryList, WebhookEndpointEnvelope, WebhookEndpointList } from "../schemas/webhooks";
import { dispatchNew, trySend } from "../webhooks/dispatch";
import { findEndpoint, ownedEndpoint, readDeliveries, readDelivery, toEndpointJson, type EndpointRow } from "../webhooks/endpoint-record";
import { EXAMPLE_DATA } from "../webhooks/examples";
import { newSigningSecret, ROTATION_OVERLAP_MS, sealSecret } from "../webhooks/secrets";
import { checkWebhookUrl } from "../webhooks/url-policy";

/** Endpoints a workspace may have: every event fans out to each, so this bounds an event's cost. */
const MAX_ENDPOINTS = 20;

/** The URL as this deployment allows it (https, no private addresses), or a 400 naming `url`. */
function allowedUrl(env: Env, raw: string): string {
  const verdict = checkWebhookUrl(raw, { allowHttp: env.WEBHOOKS_ALLOW_HTTP === "true" });
  if (!verdict.ok) throw validationError("The webhook URL is not allowed", [{ path: "url", message: verdict.message }]);
  return verdict.url.href;
}

/** Secrets are stored sealed with ENCRYPTION_KEY: without it no endpoint can be made or rotated. */
function requireEncryption(env: Env): void {
  if (!env.ENCRYPTION_KEY) throw new ApiError(409, "webhooks_not_configured", "Webhooks need the ENCRYPTION_KEY secret, which this deployment does not set");
}

async function requireEndpoint(c: { var: AppEnv["Variables"] }, id: string): Promise<EndpointRow> {
  const endpoint = await findEndpoint(c.var.db, c.var.auth.workspaceId, id);
  if (!endpoint) throw notFound("webhook endpoint");
  return endpoint;
}

function requireEnabled(endpoint: EndpointRow): void {
  if (!endpoint.enabled) throw conflict("endpoint_disabled", `The endpoint is disabled${endpoint.disabledReason ? `: ${endpoint.disabledReason}` : ""}; enable it with PATCH first`);
}

export const webhookEndpoints = new Hono<AppEnv>()
  .get("/", describeRoute({
    summary: "List webhook endpoints",
    description: "Lists the workspace's webhook endpoints, newest first; secrets are never listed.",
    tag: "Webhooks",
    success: { status: 200, description: "Newest first; secrets are never listed", schema: WebhookEndpointList },
  }), requireScope("webhooks:read"), validate("query", Pagination), async (c) => {
    const { limit, offset } = c.req.valid("query");
    const where = eq(endpointsTable.workspaceId, c.var.auth.workspaceId);
    const [rows, [totals]] = await c.var.db.batch([
      c.var.db.select().from(endpointsTable).where(where).orderBy(desc(endpointsTable.id)).limit(limit).offset(offset),
      c.var.db.select({ total: count() }).from(endpointsTable).where(where),
    ]);
    return c.json({ status: "success", webhook_endpoints: rows.map((row) => toEndpointJson(row)), total: totals!.total, limit, offset });
  })

  .post("/", describeRoute({
    summary: "Create a webhook endpoint",
    description: "Creates a webhook endpoint for the named event types. Its signing secret is shown only here and on rotation.",
    tag: "Webhooks",
    success: { status: 201, description: "Created; `secret` is shown only here and on rotation", schema: WebhookEndpointEnvelope },
    errors: { 409: "The workspace has 20 endpoints (`limit_reached`), or ENCRYPTION_KEY is not set (`webhooks_not_configured`)" },
  }), requireScope("webhooks:write"), idempotency, validate("json", CreateWebhookEndpointBody), async (c) => {
    requireEncryption(c.env);
    const body = c.req.valid("json");
    const url = allowedUrl(c.env, body.url);
    const { workspaceId } = c.var.auth;
    const id = newId("we");
    const secret = newSigningSecret();
    const now = Date.now();
    // The limit is checked inside the insert, so two creates at once cannot both pass it.
    const [row] = await c.var.db.all<{ id: string }>(sql`
      INSERT INTO ${endpointsTable} (id, workspace_id, url, events, enabled, description, secret, created_at, updated_at)
      SELECT ${id}, ${workspaceId}, ${url}, ${JSON.stringify(body.events)}, ${body.enabled ? 1 : 0}, ${body.description ?? null},
        ${await sealSecret(c.env, id, secret)}, ${now}, ${now}
      WHERE (SELECT count(*) FROM ${endpointsTable} WHERE workspace_id = ${workspaceId}) < ${MAX_ENDPOINTS}
      RETURNING id`);
    if (!row) throw conflict("limit_reached", `A workspace may have at most ${MAX_ENDPOINTS} webhook endpoints; delete one first`);
    return c.json({ status: "success", webhook_endpoint: toEndpointJson((await findEndpoint(c.var.db, workspaceId, id))!, secret) }, 201);
  })

  .get("/:id", describeRoute({
    summary: "Get a webhook endpoint",
    description: "Gets one webhook endpoint, without its secret.",
    tag: "Webhooks",
    success: { status: 200, description: "The endpoint, without its secret", schema: WebhookEndpointEnvelope },
  }), requireScope("webhooks:read"), validate("param", IdParam), async (c) => {
    return c.json({ status: "success", webhook_endpoint: toEndpointJson(await requireEndpoint(c, c.req.valid("param").id)) });
  })

  .patch("/:id", describeRoute({
    summary: "Update a webhook endpoint",
    description: "Updates a webhook endpoint. `enabled: true` re-enables a disabled one and clears `disabled_reason` and `failing_since`.",
    tag: "Webhooks",
    success: { status: 200, description: "Updated; `enabled: true` clears disabled_reason and failing_since", schema: WebhookEndpointEnvelope },
  }), requireScope("webhooks:write"), idempotency, validate("param", IdParam), validate("json", UpdateWebhookEndpointBody), async (c) => {
    const body = c.req.valid("json");
    const changes: SQLiteUpdateSetSource<typeof endpointsTable> = { updatedAt: new Date() };
    if (body.url !== undefined) changes.url = allowedUrl(c.env, body.url);
    if (body.events !== undefined) changes.events = body.events;
    if (body.description !== undefined) changes.description = body.description;
    if (body.enabled !== undefined) changes.enabled = body.enabled;
    // Enabled again after being disabled: the old failures and their verdict no longer stand.
    // Saying `enabled: true` to an enabled endpoint leaves its failing streak running.
    if (body.enabled === true) {
      changes.disabledReason = sql`CASE WHEN ${endpointsTable.enabled} = 0 THEN NULL ELSE ${endpointsTable.disabledReason} END`;
      changes.failingSince = sql`CASE WHEN ${endpointsTable.enabled} = 0 THEN NULL ELSE ${endpointsTable.failingSince} END`;
    }
    const [row] = await c.var.db.update(endpointsTable).set(changes).where(ownedEndpoint(c.var.auth.workspaceId, c.req.valid("param").id)).returning();
    if (!row) throw notFound("webhook endpoint");
    return c.json({ status: "success", webhook_endpoint: toEndpointJson(row) });
  })

  .delete("/:id", describeRoute({
    summary: "Delete a webhook endpoint",
    description: "Deletes a webhook endpoint with its deliveries.",
    tag: "Webhooks",
    success: { status: 200, description: "Deleted with its deliveries", schema: Deleted },
  }), requireScope("webhooks:write"), validate("param", IdParam), async (c) => {
    const { id } = c.req.valid("param");
    const [deleted] = await c.var.db.delete(endpointsTable).where(ownedEndpoint(c.var.auth.workspaceId, id)).returning({ id: endpointsTable.id });
    if (!deleted) throw notFound("webhook endpoint");
    return c.json({ status: "success", deleted: true, id });
  })

  .post("/:id/rotate-secret", describeRoute({
    summary: "Rotate a webhook endpoint's secret",
    description: "Gives the endpoint a new signing secret, shown only here; the previous one also signs for 24 hours.",
    tag: "Webhooks",
    success: { status: 200, description: "The new `secret`, shown only here; the previous one also signs for 24 hours", schema: WebhookEndpointEnvelope },
    errors: { 409: "ENCRYPTION_KEY is not set (`webhooks_not_configured`), or a rotation is under way (`secret_rotating`)" },
  }), requireScope("webhooks:write"), idempotency, validate("param", IdParam), async (c) => {
    requireEncryption(c.env);
    const endpoint = await requireEndpoint(c, c.req.valid("param").id);
    const secret = newSigningSecret();
    const now = Date.now();
    // The old secret keeps signing for 24 hours beside the new one, so receivers can switch over.
    const [row] = await c.var.db
      .update(endpointsTable)
      .set({
        secret: await sealSecret(c.env, endpoint.id, secret),
        previousSecret: endpoint.secret,
        previousSecretExpiresAt: new Date(now + ROTATION_OVERLAP_MS),
        updatedAt: new Date(now),
      })
      .where(and(ownedEndpoint(c.var.auth.workspaceId, endpoint.id), eq(endpointsTable.secret, endpoint.secret)))
      .returning();
    if (!row) throw conflict("secret_rotating", "The secret was rotated by another request at the same time; try again");
    return c.json({ status: "success", webhook_endpoint: toEndpointJson(row, secret) });
  })

  .post("/:id/test", describeRoute({
    summary: "Send a test event",
    description: "Queues an example event for this endpoint only.",
    tag: "Webhooks",
    success: { status: 202, description: "An example event queued for this endpoint only", schema: WebhookDeliveryEnvelope },
    errors: { 409: "The endpoint is disabled (`endpoint_disabled`)" },
  }), requireScope("webhooks:write"), idempotency, validate("param", IdParam), validate("json", TestEventBody), async (c) => {
    const endpoint = await requireEndpoint(c, c.req.valid("param").id);
    requireEnabled(endpoint);
    const type = c.req.valid("json").type ?? (endpoint.events.find((t) => t !== "*") as keyof typeof EXAMPLE_DATA | undefined) ?? "run.completed";
    const id = newMessageId();
    // An event for this endpoint only: the fan-out trigger makes its one delivery.
    await c.var.db.insert(webhookEvents).values({ id, workspaceId: endpoint.workspaceId, type, data: EXAMPLE_DATA[type], endpointId: endpoint.id, createdAt: new Date() });
    await dispatchNew(c.env, endpoint.workspaceId);
    const delivery = await readDelivery(c.var.db, endpoint.id, id);
    // Disabled between the check and the insert: the fan-out made no delivery.
    if (!delivery) throw conflict("endpoint_disabled", "The endpoint was disabled meanwhile; enable it with PATCH first");
    return c.json({ status: "success", delivery }, 202);
  })

  .get("/:id/deliveries", describeRoute({
    summary: "List a webhook endpoint's deliveries",
    description: "Lists the endpoint's deliveries, newest first, each with its event and every attempt.",
    tag: "Webhooks",
    success: { status: 200, description: "Newest first, each with its event and attempts", schema: WebhookDeliveryList },
  }), requireScope("webhooks:read"), validate("param", IdParam), validate("query", ListDeliveriesQuery), async (c) => {
    const endpoint = await requireEndpoint(c, c.req.valid("param").id);
    const query = c.req.valid("query");
    const { deliveries, total } = await readDeliveries(c.var.db, endpoint.id, query);
    return c.json({ status: "success", deliveries, total, limit: query.limit, offset: query.offset });
  })

  .post("/:id/deliveries/:deliveryId/redeliver", describeRoute({
    summary: "Redeliver a webhook delivery",
    description: "Queues one more attempt of a delivery now.",
    tag: "Webhooks",
    success: { status: 202, description: "One more attempt, queued now", schema: WebhookDeliveryEnvelope },
    errors: { 409: "The endpoint is disabled (`endpoint_disabled`), or the delivery is still on its retry schedule (`delivery_pending`)" },
  }), requireScope("webhooks:write"), idempotency, validate("param", DeliveryParams), async (c) => {
    const { id, deliveryId } = c.req.valid("param");
    const endpoint = await requireEndpoint(c, id);
    requireEnabled(endpoint);
    const now = Date.now();
    // One more attempt, now and by hand: a delivery still on its schedule is left to it.
    const [taken] = await c.var.db
      .update(webhookDeliveries)
      .set({ status: "pending", manual: true, nextAttemptAt: new Date(now), leaseUntil: null, enqueued: true, updatedAt: new Date(now) })
      .where(and(eq(webhookDeliveries.endpointId, endpoint.id), eq(webhookDeliveries.eventId, deliveryId), sql`${webhookDeliveries.status} <> 'pending'`))
      .returning({ eventId: webhookDeliveries.eventId });
    if (!taken) {
      const delivery = await readDelivery(c.var.db, endpoint.id, deliveryId);
      if (!delivery) throw notFound("delivery");
      throw conflict("delivery_pending", `The delivery is still being attempted; its next attempt is at ${delivery.next_attempt_at}`);
    }
    // If this send fails, the delivery is due and unheld, so the cron's sweep sends it.
    await trySend(c.env, async () => [{ endpoint_id: endpoint.id, event_id: deliveryId }], { endpoint_id: endpoint.id, event_id: deliveryId });
    return c.json({ status: "success", delivery: await readDelivery(c.var.db, endpoint.id, deliveryId) }, 202);
  });
