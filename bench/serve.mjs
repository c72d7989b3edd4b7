// Serves the built Cairn bundle and a bare fixed-JSON Worker through Miniflare's API:
// workerd itself, with local D1, Queues and Durable Objects wired as wrangler.toml wires
// them in production, and no dev proxy, inspector or request logging in the path.
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";

const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync("wrangler.toml", "utf8"))[1];

export const ADMIN_TOKEN = "bench-admin-token";

/** Cairn from `bundlePath`, persisted to a fresh temporary directory like local `wrangler dev` state. */
export async function serveCairn(bundlePath, bindings = {}) {
  const state = mkdtempSync(join(tmpdir(), "cairn-bench-"));
  const mf = new Miniflare(convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: 0,
    // The v4 options' one root for D1, Durable Objects and the rest; d1Persist and friends are ignored.
    resourcePersistencePath: state,
    workers: [
      {
        name: "cairn",
        modules: [{ type: "ESModule", path: bundlePath }],
        compatibilityDate,
        bindings: { ADMIN_TOKEN, ENCRYPTION_KEY: "bench-encryption-key", WEBHOOKS_ALLOW_HTTP: "true", ...bindings },
        d1Databases: { DB: "cairn" },
        durableObjects: { RUNS: { className: "RunObject", useSQLite: true } },
        queueProducers: { RUN_QUEUE: { queueName: "cairn-runs" }, WEBHOOK_QUEUE: { queueName: "cairn-webhooks" } },
        queueConsumers: {
          "cairn-runs": { maxBatchSize: 10, maxBatchTimeout: 1, maxRetries: 5, deadLetterQueue: "cairn-runs-dlq" },
          "cairn-runs-dlq": { maxBatchSize: 10, maxBatchTimeout: 1 },
          "cairn-webhooks": { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 100, deadLetterQueue: "cairn-webhooks-dlq" },
          "cairn-webhooks-dlq": { maxBatchSize: 100, maxBatchTimeout: 1 },
        },
      },
    ],
  }));
  const url = await mf.ready;
  const db = await mf.getD1Database("DB");
  for (const file of readdirSync("migrations").filter((f) => f.endsWith(".sql")).sort()) {
    for (const statement of readFileSync(join("migrations", file), "utf8").split("--> statement-breakpoint")) {
      if (statement.trim()) await db.prepare(statement).run();
    }
  }
  return { mf, url: url.toString().replace(/\/$/, ""), db, queue: await mf.getQueueProducer("RUN_QUEUE") };
}

/**
 * The limit: a Worker that answers a fixed JSON body, served the same way. Its `/d1`
 * route makes one trivial D1 query, which prices a local D1 round trip on its own.
 */
export async function serveBare() {
  const mf = new Miniflare(convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: 0,
    workers: [
      {
        name: "bare",
        modules: true,
        compatibilityDate,
        d1Databases: { DB: "bare" },
        script: `const body = JSON.stringify({ status: "success", healthy: true });
          const headers = { "content-type": "application/json" };
          export default {
            async fetch(request, env) {
              if (new URL(request.url).pathname === "/d1") return Response.json(await env.DB.prepare("SELECT 1 AS one").first());
              return new Response(body, { headers });
            },
          };`,
      },
    ],
  }));
  const url = await mf.ready;
  return { mf, url: url.toString().replace(/\/$/, "") };
}

/**
 * A local OpenAI-compatible Chat Completions endpoint that answers every request after a
 * fixed latency with a valid email proposal, counting what it was asked.
 */
export async function serveFakeModel(latencyMs) {
  const { createServer } = await import("node:http");
  const stats = { requests: 0 };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      stats.requests++;
      const content = JSON.stringify({ subject: "A note on pricing", body: "Hi, happy to help you pick a plan.", reasoning: "Pricing visitor: offered help." });
      const answer = {
        id: `chatcmpl-${stats.requests}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model: JSON.parse(body || "{}").model ?? "fake",
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: 120, completion_tokens: 40, total_tokens: 160 },
      };
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(answer));
      }, latencyMs);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/v1`, stats, close: () => new Promise((resolve) => server.close(resolve)) };
}

/**
 * A local stand-in for Resend's `POST /emails`: answers after a fixed latency, and like Resend
 * answers a repeated Idempotency-Key with the first email's id. Counts requests, and emails
 * that would have gone out twice (a key seen again) as duplicates.
 */
export async function serveFakeResend(latencyMs) {
  const { createServer } = await import("node:http");
  const stats = { requests: 0, emails: new Map(), duplicates: 0, missingHeaders: 0 };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      stats.requests++;
      const key = req.headers["idempotency-key"];
      const email = JSON.parse(body || "{}");
      if (!email.headers?.["List-Unsubscribe"] || !email.headers?.["Message-ID"]) stats.missingHeaders++;
      if (stats.emails.has(key)) stats.duplicates++;
      else stats.emails.set(key, `re_${stats.emails.size + 1}`);
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: stats.emails.get(key) }));
      }, latencyMs);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, stats, close: () => new Promise((resolve) => server.close(resolve)) };
}

/**
 * A webhook receiver on this machine: verifies every request's Standard Webhooks signature
 * with `secret` (set once the endpoint exists) and counts messages by webhook-id, so lost,
 * doubled and badly signed deliveries show. Answers 200 at once.
 */
export async function serveWebhookReceiver() {
  const { createServer } = await import("node:http");
  const { Webhook } = await import("standardwebhooks");
  const stats = { requests: 0, ids: new Set(), duplicates: 0, badSignatures: 0, lastAt: 0 };
  let verifier = null;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      stats.requests++;
      try {
        verifier.verify(body, req.headers);
      } catch {
        stats.badSignatures++;
      }
      const id = req.headers["webhook-id"];
      if (stats.ids.has(id)) stats.duplicates++;
      stats.ids.add(id);
      stats.lastAt = performance.now();
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    stats,
    verifyWith: (secret) => (verifier = new Webhook(secret)),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
