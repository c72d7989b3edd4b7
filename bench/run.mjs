// `npm run bench`: Cairn's throughput and run-engine scaling, each figure also as a ratio
// to a bare fixed-JSON Worker served the same way on the same machine.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { ADMIN_TOKEN, serveBare, serveCairn, serveFakeModel, serveFakeResend, serveWebhookReceiver } from "./serve.mjs";

const CONNECTIONS = 32;
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 10_000);
const WARMUP_MS = 2_000;
const ENGINE_SIZES = [100, 1000, 5000];
const cores = os.cpus().length;
// `npm run bench -- --only approvals`: the references (bare, bare+D1), the single approvals, the
// inbox and the bulk decisions alone, printed and not written to bench/results.
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt === -1 ? null : process.argv[onlyAt + 1];
if (only !== null && only !== "approvals") throw new Error(`--only knows "approvals", not ${JSON.stringify(only)}`);
const all = only === null;

// The server side (this process, Miniflare and its workerd) on core 0, the load generator on core 1.
const pinned = cores >= 2 && spawnSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)], { stdio: "ignore" }).status === 0;

const version = (pkg) => JSON.parse(readFileSync(`node_modules/${pkg}/package.json`, "utf8")).version;
const log = (...args) => console.error("[bench]", ...args);

function build() {
  log("building the bundle with wrangler deploy --dry-run");
  execFileSync("wrangler", ["deploy", "--dry-run", "--outdir", "bench/.build"], { stdio: ["ignore", "ignore", "inherit"] });
  return "bench/.build/index.js";
}

function load(url, requests, options = {}) {
  const spec = JSON.stringify({ url, connections: CONNECTIONS, durationMs: DURATION_MS, warmupMs: WARMUP_MS, requests, ...options });
  const [cmd, args] = pinned ? ["taskset", ["-c", "1", process.execPath, "bench/load.mjs"]] : [process.execPath, ["bench/load.mjs"]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
    child.stdin.end(spec);
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load generator exited ${code}`))));
  });
}

function client(base) {
  return async function call(method, path, body, key = undefined) {
    const headers = { authorization: `Bearer ${key ?? ADMIN_TOKEN}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = await res.json();
    if (res.status >= 400) throw new Error(`${method} ${path} -> ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}

const emailStep = { id: "step_1", action: "email_message", require_approval: true, template: { subject: "Hi {{first_name|there}}", body: "Hello from {{sender.first_name|us}} to {{company|your team}}." } };

async function makeContacts(call, key, prefix, n) {
  const ids = [];
  for (let start = 0; start < n; start += 1000) {
    const contacts = Array.from({ length: Math.min(1000, n - start) }, (_, i) => ({
      email: `${prefix}-${start + i}@bench.example`,
      first_name: `Contact${start + i}`,
      company: "Bench Co",
      lifecycle_stage: "lead",
    }));
    ids.push(...(await call("POST", "/v1/contacts/batch", { contacts }, key)).contacts.map((c) => c.id));
  }
  return ids;
}

async function waitForPending(db, runId, n, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await db.prepare("SELECT status, counts FROM runs WHERE id = ?").bind(runId).first();
    if (row && JSON.parse(row.counts).pending_approval === n) return;
    if (row?.status === "failed" || Date.now() > deadline) throw new Error(`run ${runId} did not reach ${n} pending: ${JSON.stringify(row)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A run written and enqueued exactly as POST /trigger does, for sizes past its 1000-contact cap. */
async function enqueueRun(cairn, workspaceId, agentId, contactIds) {
  const runId = `run_BENCH${Date.now()}${Math.random().toString(36).slice(2, 8)}`.toUpperCase().replace("RUN_", "run_");
  const now = Date.now();
  const snapshot = { playbook_md: "", steps: [emailStep], stop_on: ["reply", "unsubscribe", "bounce"], llm_config: { provider: "builtin" }, identity_id: null };
  const counts = { pending_approval: 0, approved: 0, rejected: 0, completed: 0, failed: 0, invalidated: 0, cancelled: 0 };
  const statements = [
    cairn.db
      .prepare("INSERT INTO runs (id, job_id, workspace_id, agent_id, status, \"trigger\", contact_count, counts, agent_snapshot, created_at, enqueued_at, enqueue_attempts) VALUES (?, ?, ?, ?, 'queued', 'manual', ?, ?, ?, ?, ?, 1)")
      .bind(runId, runId.replace("run_", "job_"), workspaceId, agentId, contactIds.length, JSON.stringify(counts), JSON.stringify(snapshot), now, now),
  ];
  for (let i = 0; i < contactIds.length; i += 33) {
    const part = contactIds.slice(i, i + 33);
    statements.push(
      cairn.db.prepare(`INSERT INTO run_contacts (run_id, position, contact_id) VALUES ${part.map(() => "(?, ?, ?)").join(", ")}`).bind(...part.flatMap((id, j) => [runId, i + j, id])),
    );
  }
  await cairn.db.batch(statements);
  await cairn.queue.send({ run_id: runId });
  return runId;
}

const MODEL_LATENCY_MS = 500;
const CONCURRENCY = 6;
const bundle = build();
const bare = await serveBare();
const model = await serveFakeModel(MODEL_LATENCY_MS);
const cairn = await serveCairn(bundle, { OPENAI_API_KEY: "bench-key", OPENAI_BASE_URL: model.url, PROPOSAL_CONCURRENCY: String(CONCURRENCY) });
const call = client(cairn.url);
log(`bare Worker at ${bare.url}, Cairn at ${cairn.url}; server pinned to core 0: ${pinned}`);

const { workspace } = await call("POST", "/v1/admin/workspaces", { name: "Bench" });
const { api_key } = await call("POST", `/v1/admin/workspaces/${workspace.id}/api-keys`, {});
const key = api_key.key;
const auth = { authorization: `Bearer ${key}` };

log("seeding 50 agents, a 100-contact run with pending actions");
// Outbound steps need a sender.
// Room for every send of the bench in one day: the daily limit is not what is measured.
const { identity } = await call("POST", "/v1/identities", { first_name: "Bench", email_address: "bench@bench.example", daily_limit: 10000 }, key);
const emailAgent = (name, steps = [emailStep]) => ({ name, capabilities: ["email", "notes"], identity_id: identity.id, playbook: { playbook_md: "Bench", steps } });
for (let i = 0; i < 50; i++) await call("POST", "/v1/agents", emailAgent(`Agent ${i}`), key);
const readAgent = (await call("GET", "/v1/agents?limit=1", undefined, key)).agents[0];
const hundred = await makeContacts(call, key, "read", 100);
const readRun = (await call("POST", `/v1/agents/${readAgent.id}/trigger`, { contact_ids: hundred }, key)).run_id;
await waitForPending(cairn.db, readRun, 100);

const results = { http: [], engine: [], approvals: null };
const scenario = async (name, url, requests) => {
  log(`load: ${name}`);
  const r = await load(url, requests);
  results.http.push({ name, ...r });
};

// The two references, measured here and again at the end.
const BARE = [{ method: "GET", path: "/" }];
const BARE_D1 = [{ method: "GET", path: "/d1" }];
await scenario("bare Worker: GET fixed JSON", bare.url, BARE);
await scenario("bare Worker: one D1 query", bare.url, BARE_D1);
// Not part of --only approvals.
if (all) {
  await scenario("GET /v1/health (Cairn, no D1)", cairn.url, [{ method: "GET", path: "/v1/health" }]);
  await scenario("GET /v1/agents (50 agents)", cairn.url, [{ method: "GET", path: "/v1/agents", headers: auth }]);
  await scenario("GET /v1/agents/runs/:runId (100 contacts)", cairn.url, [{ method: "GET", path: `/v1/agents/runs/${readRun}`, headers: auth }]);
  await scenario("POST /v1/agents", cairn.url, [{ method: "POST", path: "/v1/agents", headers: auth, body: { name: "Written", capabilities: ["email"] } }]);
  const events = hundred.map((contact_id, i) => ({ contact_id, type: "page_view", url: `https://bench.example/pricing?i=${i}` }));
  await scenario("POST /v1/events (100 events)", cairn.url, [{ method: "POST", path: "/v1/events", headers: auth, body: { events } }]);
  // The same events once 20 agents start runs from them: matching happens in the queue consumer,
  // on the same core as the server, so what it costs the request path shows here.
  const pricingWatch = { filter: { event: { type: "page_view", url_contains: "/pricing", min_count: 2, within_days: 7 } }, cooldown_days: 30 };
  for (let i = 0; i < 20; i++) await call("POST", "/v1/agents", { ...emailAgent(`Event-driven ${i}`), enabled: true, monitoring: pricingWatch }, key);
  await scenario("POST /v1/events (100 events), 20 event-driven agents", cairn.url, [{ method: "POST", path: "/v1/events", headers: auth, body: { events } }]);
  // Proof the agents were matched against, not skipped: their candidates for the next minute's runs.
  results.eventMatches = (await cairn.db.prepare("SELECT count(*) AS n FROM event_run_candidates").first()).n;
  log(`  event-driven agents matched ${results.eventMatches} (agent, contact) pairs`);
  // Off again, so the match requests the load left queued cost little and the scenarios after
  // this one measure what they are about: each request still waiting is read and dropped.
  for (const agent of (await call("GET", "/v1/agents?limit=100", undefined, key)).agents.filter((a) => a.name.startsWith("Event-driven"))) {
    await call("PATCH", `/v1/agents/${agent.id}`, { enabled: false }, key);
  }
  const backlogStarted = performance.now();
  while ((await cairn.db.prepare("SELECT count(*) AS n FROM event_match_requests").first()).n > 0) await new Promise((r) => setTimeout(r, 100));
  results.eventBacklogMs = performance.now() - backlogStarted;
  log(`  match backlog drained in ${results.eventBacklogMs.toFixed(0)} ms`);

  log("run engine");
  for (const size of ENGINE_SIZES) {
    const agent = (await call("POST", "/v1/agents", emailAgent(`Engine ${size}`), key)).agent;
    const ids = await makeContacts(call, key, `engine${size}`, size);
    const started = performance.now();
    const runId = await enqueueRun(cairn, workspace.id, agent.id, ids);
    await waitForPending(cairn.db, runId, size);
    const ms = performance.now() - started;
    results.engine.push({ contacts: size, ms, contactsPerSecond: size / (ms / 1000) });
    log(`  ${size} contacts: ${ms.toFixed(0)} ms`);
  }

  log(`model proposals: a local OpenAI-compatible fake answering in ${MODEL_LATENCY_MS} ms, concurrency ${CONCURRENCY}`);
  results.llm = [];
  for (const size of [100, 1000]) {
    const agent = (await call("POST", "/v1/agents", { ...emailAgent(`Model ${size}`), llm_config: { provider: "openai", model: "fake-model" } }, key)).agent;
    const ids = await makeContacts(call, key, `model${size}`, size);
    const before = model.stats.requests;
    const started = performance.now();
    const runId = (await call("POST", `/v1/agents/${agent.id}/trigger`, { contact_ids: ids }, key)).run_id;
    await waitForPending(cairn.db, runId, size);
    const ms = performance.now() - started;
    // The best a run can do: every proposal one model call, CONCURRENCY at a time.
    const boundMs = 1.25 * ((size * MODEL_LATENCY_MS) / CONCURRENCY);
    results.llm.push({ contacts: size, ms, proposalsPerSecond: size / (ms / 1000), boundMs, ratioToBound: boundMs / ms, modelRequests: model.stats.requests - before });
    log(`  ${size} contacts: ${ms.toFixed(0)} ms (bound ${boundMs.toFixed(0)} ms)`);
  }
}

log("approvals against one 1000-contact run");
const approvalAgent = (await call("POST", "/v1/agents", emailAgent("Approvals"), key)).agent;
const approvalContacts = await makeContacts(call, key, "approve", 1000);
const approvalRun = (await call("POST", `/v1/agents/${approvalAgent.id}/trigger`, { contact_ids: approvalContacts }, key)).run_id;
await waitForPending(cairn.db, approvalRun, 1000);
const approvals = approvalContacts.map((id) => ({ method: "POST", path: `/v1/agents/runs/${approvalRun}/contacts/${id}/actions/0/approve`, headers: auth }));
results.approvals = await load(cairn.url, approvals, { once: true });

log("the approvals inbox over 11,000 pending actions, then bulk decisions");
{
  const runs = [];
  for (let r = 0; r < 11; r++) {
    const agent = (await call("POST", "/v1/agents", emailAgent(`Inbox ${r}`), key)).agent;
    const ids = await makeContacts(call, key, `inbox${r}`, 1000);
    const runId = (await call("POST", `/v1/agents/${agent.id}/trigger`, { contact_ids: ids }, key)).run_id;
    runs.push({ runId, ids });
  }
  for (const { runId } of runs) await waitForPending(cairn.db, runId, 1000);
  // The inbox is written by each run's mirror, a moment after its actions: wait until it holds them all.
  while ((await cairn.db.prepare("SELECT count(*) AS n FROM approvals WHERE workspace_id = ?").bind(workspace.id).first()).n < 11_000) await new Promise((r) => setTimeout(r, 50));
  await scenario("GET /v1/approvals (11,000 pending, first page)", cairn.url, [{ method: "GET", path: "/v1/approvals", headers: auth }]);
  // A page read again is answered from the isolate's memo after one read of the inbox version.
  // These 1000 pages, taken in turn, are more than the memo holds: every one is read from D1.
  const pages = Array.from({ length: 1000 }, (_, offset) => ({ method: "GET", path: `/v1/approvals?offset=${offset}`, headers: auth }));
  await scenario("GET /v1/approvals (11,000 pending, 1000 pages in turn, each read from D1)", cairn.url, pages);

  const decide = async (items) => {
    const started = performance.now();
    const res = await call("POST", "/v1/approvals/decide", { decision: "approve", items }, key);
    const ms = performance.now() - started;
    return { items: items.length, decided: res.decided, ms, perSecond: res.decided / (ms / 1000), statuses: Object.groupBy(res.results, (r) => r.status) };
  };
  const oneRun = await decide(runs[0].ids.map((contact_id) => ({ run_id: runs[0].runId, contact_id, action_index: 0 })));
  const tenRuns = await decide(runs.slice(1).flatMap(({ runId, ids }) => ids.slice(0, 100).map((contact_id) => ({ run_id: runId, contact_id, action_index: 0 }))));
  const sent = (await cairn.db.prepare("SELECT count(*) AS n FROM deliveries WHERE workspace_id = ? AND run_id IN (SELECT value FROM json_each(?))").bind(workspace.id, JSON.stringify(runs.map((r) => r.runId))).first()).n;
  results.bulk = {
    one_run: { ...oneRun, statuses: Object.fromEntries(Object.entries(oneRun.statuses).map(([k, v]) => [k, v.length])) },
    ten_runs: { ...tenRuns, statuses: Object.fromEntries(Object.entries(tenRuns.statuses).map(([k, v]) => [k, v.length])) },
    deliveries: sent,
  };
  log(`  1000 on one run: ${oneRun.ms.toFixed(0)} ms; 1000 over 10 runs: ${tenRuns.ms.toFixed(0)} ms; ${sent} deliveries`);
}

const RESEND_LATENCY_MS = 100;
// Not part of --only approvals.
if (all) {
  const WEBHOOKS = 5000;
  log(`${WEBHOOKS} webhook deliveries to a local receiver that verifies every signature`);
  {
    const receiver = await serveWebhookReceiver();
    const { workspace: ws } = await call("POST", "/v1/admin/workspaces", { name: "Bench webhooks" });
    const hookKey = (await call("POST", `/v1/admin/workspaces/${ws.id}/api-keys`, {})).api_key.key;
    const { webhook_endpoint } = await call("POST", "/v1/webhook-endpoints", { url: receiver.url, events: ["contact.unsubscribed"] }, hookKey);
    receiver.verifyWith(webhook_endpoint.secret);
    await makeContacts(call, hookKey, "hook", WEBHOOKS);
    // End to end: from the first opt-out written to the last signed event received.
    const started = performance.now();
    for (let start = 0; start < WEBHOOKS; start += 1000) {
      const contacts = Array.from({ length: Math.min(1000, WEBHOOKS - start) }, (_, i) => ({ email: `hook-${start + i}@bench.example`, unsubscribed: true }));
      await call("POST", "/v1/contacts/batch", { contacts }, hookKey);
    }
    const deadline = Date.now() + 180_000;
    while (receiver.stats.ids.size < WEBHOOKS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const ms = receiver.stats.lastAt - started;
    // A little longer, so a late duplicate would be counted too.
    await new Promise((r) => setTimeout(r, 2000));
    const { stats } = receiver;
    results.webhooks = { deliveries: WEBHOOKS, ms, perSecond: stats.ids.size / (ms / 1000), requests: stats.requests, unique: stats.ids.size, duplicates: stats.duplicates, bad_signatures: stats.badSignatures };
    log(`  ${stats.ids.size} of ${WEBHOOKS} in ${ms.toFixed(0)} ms, ${stats.duplicates} duplicates, ${stats.badSignatures} bad signatures`);
    await receiver.close();
  }

  log(`approvals sending through the resend transport: a local fake Resend answering in ${RESEND_LATENCY_MS} ms`);
  {
    const fake = await serveFakeResend(RESEND_LATENCY_MS);
    const sender = await serveCairn(bundle, { EMAIL_TRANSPORT: "resend", RESEND_API_KEY: "re_bench", RESEND_BASE_URL: fake.url, UNSUBSCRIBE_SECRET: "bench", PUBLIC_URL: "https://cairn.bench" });
    const send = client(sender.url);
    const { workspace: ws } = await send("POST", "/v1/admin/workspaces", { name: "Bench resend" });
    const sendKey = (await send("POST", `/v1/admin/workspaces/${ws.id}/api-keys`, {})).api_key.key;
    const { identity: from } = await send("POST", "/v1/identities", { first_name: "Bench", email_address: "bench@bench.example", daily_limit: 10000 }, sendKey);
    const agent = (await send("POST", "/v1/agents", { name: "Resend", capabilities: ["email"], identity_id: from.id, playbook: { playbook_md: "Bench", steps: [emailStep] } }, sendKey)).agent;
    const ids = await makeContacts(send, sendKey, "resend", 1000);
    const runId = (await send("POST", `/v1/agents/${agent.id}/trigger`, { contact_ids: ids }, sendKey)).run_id;
    await waitForPending(sender.db, runId, 1000);
    const headers = { authorization: `Bearer ${sendKey}` };
    const requests = ids.map((id) => ({ method: "POST", path: `/v1/agents/runs/${runId}/contacts/${id}/actions/0/approve`, headers }));
    const measured = await load(sender.url, requests, { once: true });
    const recorded = await sender.db.prepare("SELECT status, count(*) AS n FROM deliveries WHERE run_id = ? GROUP BY status").bind(runId).all();
    results.resend = {
      ...measured,
      latency_ms: RESEND_LATENCY_MS,
      provider_requests: fake.stats.requests,
      emails: fake.stats.emails.size,
      duplicates: fake.stats.duplicates,
      missing_headers: fake.stats.missingHeaders,
      deliveries: Object.fromEntries(recorded.results.map((r) => [r.status, r.n])),
    };
    log(`  ${measured.requests} approvals: ${measured.rps.toFixed(0)}/s, ${fake.stats.emails.size} emails, ${fake.stats.duplicates} duplicates`);
    await Promise.all([sender.mf.dispose(), fake.close()]);
  }

  log("the run view of a 1000-contact run whose actions carry 20,000-character bodies");
  const bigStep = { id: "big", action: "create_note", require_approval: true, template: { note: "x".repeat(20_000) } };
  const bigAgent = (await call("POST", "/v1/agents", emailAgent("Big bodies", [bigStep]), key)).agent;
  const bigContacts = await makeContacts(call, key, "big", 1000);
  const bigRun = (await call("POST", `/v1/agents/${bigAgent.id}/trigger`, { contact_ids: bigContacts }, key)).run_id;
  await waitForPending(cairn.db, bigRun, 1000);
  const bigView = { samples: [], bytes: 0 };
  for (let i = 0; i < 21; i++) {
    const started = performance.now();
    const res = await fetch(`${cairn.url}/v1/agents/runs/${bigRun}`, { headers: auth });
    const body = await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`big run view answered ${res.status}`);
    if (i > 0) bigView.samples.push(performance.now() - started);
    bigView.bytes = body.byteLength;
  }
  bigView.samples.sort((a, b) => a - b);
  results.bigView = { requests: bigView.samples.length, p50: bigView.samples[Math.floor(bigView.samples.length / 2)], max: bigView.samples.at(-1), bytes: bigView.bytes };
}

await Promise.all([cairn.mf.dispose(), model.close()]);

// The references again, once Cairn is gone and nothing it left queued shares their core: this
// machine's speed drifts over a run, and a ratio is only as good as the reference it is taken
// against. Every ratio uses the mean of the two measurements.
log("load: the two references again");
results.referencesAtEnd = [await load(bare.url, BARE), await load(bare.url, BARE_D1)];
await bare.mf.dispose();

// ---- report ----
const limit = (results.http[0].rps + results.referencesAtEnd[0].rps) / 2;
// A Worker can do no better than one local D1 round trip allows: the second reference.
const d1Limit = (results.http[1].rps + results.referencesAtEnd[1].rps) / 2;
const fmt = (n, d = 0) => (n === null || n === undefined ? "-" : n.toFixed(d));
const rows = [["scenario", "req/s", "x bare", "x bare+D1", "p50 ms", "p99 ms", "errors"]];
const row = (name, r) => [name, fmt(r.rps), fmt(r.rps / limit, 2), fmt(r.rps / d1Limit, 2), fmt(r.p50, 2), fmt(r.p99, 2), String(r.errors)];
for (const r of results.http) rows.push(row(r.name, r));
rows.push(row(`approvals, one run (${results.approvals.requests}), outbox transport`, results.approvals));
if (all) rows.push(row(`approvals, one run (${results.resend.requests}), resend transport (${RESEND_LATENCY_MS} ms fake)`, results.resend));
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
console.log(`\nHTTP, ${CONNECTIONS} connections, ${DURATION_MS / 1000} s after ${WARMUP_MS / 1000} s warm-up; ratios against the mean of each reference at the start and at the end`);
console.log(line(rows[0]));
for (const r of rows.slice(1)) console.log(line(r));
const [bareEnd, d1End] = results.referencesAtEnd;
console.log(`References at the end: bare ${fmt(bareEnd.rps)} req/s (start ${fmt(results.http[0].rps)}), bare+D1 ${fmt(d1End.rps)} req/s (start ${fmt(results.http[1].rps)}); means ${fmt(limit)} and ${fmt(d1Limit)}`);

const b = results.bulk;
console.log(`\nBulk decisions (POST /v1/approvals/decide, outbox transport, each approval carried out before the answer): 1000 on one run in ${fmt(b.one_run.ms)} ms, ${fmt(b.one_run.perSecond)}/s ${JSON.stringify(b.one_run.statuses)}; 1000 over 10 runs in ${fmt(b.ten_runs.ms)} ms, ${fmt(b.ten_runs.perSecond)}/s ${JSON.stringify(b.ten_runs.statuses)}; ${b.deliveries} deliveries`);
if (!all) {
  console.log("\n--only approvals: not written to bench/results");
  process.exit(0);
}

const r = results.resend;
console.log(`\nResend transport: ${r.requests} approvals by ${CONNECTIONS} concurrent approvers, ${fmt(r.rps)} sends/s (outbox: ${fmt(results.approvals.rps)}/s); the fake saw ${r.provider_requests} requests for ${r.emails} emails, ${r.duplicates} duplicates, ${r.missing_headers} without unsubscribe headers; deliveries ${JSON.stringify(r.deliveries)}`);
const w = results.webhooks;
const eventsRps = (name) => results.http.find((h) => h.name === name).rps;
const withAgents = eventsRps("POST /v1/events (100 events), 20 event-driven agents") / eventsRps("POST /v1/events (100 events)");
console.log(`\nWebhooks: ${w.unique} of ${w.deliveries} events received in ${fmt(w.ms)} ms end to end, ${fmt(w.perSecond)} deliveries/s (x bare ${fmt(w.perSecond / limit, 2)}, x bare+D1 ${fmt(w.perSecond / d1Limit, 2)}); ${w.requests} requests, ${w.duplicates} duplicates, ${w.bad_signatures} bad signatures`);
console.log(`POST /v1/events with 20 event-driven agents: ${fmt(withAgents, 2)} of its rate without them (${results.eventMatches} agent-contact matches made meanwhile)`);
console.log(`\nRun view, 1000 contacts x 20,000-character bodies, first page, one request at a time: p50 ${fmt(results.bigView.p50, 1)} ms, max ${fmt(results.bigView.max, 1)} ms, ${results.bigView.bytes} bytes`);

console.log(`\nModel proposals (fake OpenAI-compatible endpoint, ${MODEL_LATENCY_MS} ms a call, concurrency ${CONCURRENCY}): trigger until every contact's first action is pending`);
console.log(line(["contacts", "ms", "proposals/s", "bound ms", "bound/actual", "model calls"]));
for (const r of results.llm) console.log(line([String(r.contacts), fmt(r.ms), fmt(r.proposalsPerSecond, 1), fmt(r.boundMs), fmt(r.ratioToBound, 2), String(r.modelRequests)]));

const base = results.engine[0];
console.log("\nRun engine: enqueue until every contact's first action is pending");
console.log(line(["contacts", "ms", "contacts/s", "time vs linear"].map(String)));
for (const e of results.engine) {
  const linear = (base.ms * e.contacts) / base.contacts;
  e.timeVsLinear = e.ms / linear;
  console.log(line([String(e.contacts), fmt(e.ms), fmt(e.contactsPerSecond), fmt(e.timeVsLinear, 2)]));
}

const report = {
  generated_at: new Date().toISOString(),
  machine: { cores, cpu: os.cpus()[0]?.model, memory_gib: Math.round(os.totalmem() / 2 ** 30) },
  sides: pinned ? { server: "core 0: Miniflare's Node host and workerd", load_generator: "core 1: bench/load.mjs" } : { shared: `${cores} cores, unpinned` },
  versions: { node: process.version, workerd: version("workerd"), miniflare: version("miniflare"), wrangler: version("wrangler"), hono: version("hono"), "drizzle-orm": version("drizzle-orm"), zod: version("zod") },
  settings: { connections: CONNECTIONS, duration_ms: DURATION_MS, warmup_ms: WARMUP_MS },
  limit_rps: limit,
  d1_limit_rps: d1Limit,
  references_at_end: { bare_rps: results.referencesAtEnd[0].rps, bare_d1_rps: results.referencesAtEnd[1].rps },
  http: results.http.map((r) => ({ ...r, ratio_to_bare: r.rps / limit, ratio_to_bare_d1: r.rps / d1Limit })),
  approvals: { ...results.approvals, ratio_to_bare: results.approvals.rps / limit, ratio_to_bare_d1: results.approvals.rps / d1Limit },
  resend_approvals: { ...results.resend, ratio_to_bare: results.resend.rps / limit, ratio_to_bare_d1: results.resend.rps / d1Limit, ratio_to_outbox: results.resend.rps / results.approvals.rps },
  webhooks: { ...results.webhooks, ratio_to_bare: results.webhooks.perSecond / limit, ratio_to_bare_d1: results.webhooks.perSecond / d1Limit },
  bulk_decisions: results.bulk,
  events_with_event_driven_agents: { ratio: withAgents, matches: results.eventMatches },
  engine: results.engine,
  big_run_view: results.bigView,
  model_proposals: { latency_ms: MODEL_LATENCY_MS, concurrency: CONCURRENCY, runs: results.llm },
};
writeFileSync("bench/results/latest.json", JSON.stringify(report, null, 2) + "\n");
console.log("\nWritten to bench/results/latest.json");
