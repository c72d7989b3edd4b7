// A closed-loop HTTP load generator, run as its own process (pinned to its own core by
// bench/run.mjs). Input: one JSON document on stdin; output: one JSON line of results.
//   { url, connections, durationMs?, warmupMs?, requests: [{method, path, headers?, body?}], once? }
// With `once`, each request is sent exactly once (approvals); otherwise they are cycled for
// `durationMs` after a warm-up of `warmupMs` whose results are discarded.
import http from "node:http";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const spec = JSON.parse(input);
const target = new URL(spec.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.connections });

function send(req) {
  return new Promise((resolve) => {
    const body = req.body === undefined ? undefined : typeof req.body === "string" ? req.body : JSON.stringify(req.body);
    const headers = { ...req.headers };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    const started = process.hrtime.bigint();
    const r = http.request({ host: target.hostname, port: target.port, path: req.path, method: req.method, headers, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve({ ok: res.statusCode < 400, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    });
    r.on("error", () => resolve({ ok: false, status: 0, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    if (body !== undefined) r.write(body);
    r.end();
  });
}

async function phase(durationMs, record) {
  let next = 0;
  const latencies = [];
  const statuses = {};
  let errors = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  async function loop() {
    for (;;) {
      if (spec.once ? next >= spec.requests.length : performance.now() >= deadline) return;
      const req = spec.requests[next++ % spec.requests.length];
      const res = await send(req);
      if (!record) continue;
      latencies.push(res.ms);
      if (!res.ok) {
        errors++;
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: spec.connections }, loop));
  const elapsedMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] : null);
  return { requests: latencies.length, errors, errorStatuses: statuses, elapsedMs, rps: latencies.length / (elapsedMs / 1000), p50: pct(50), p99: pct(99) };
}

if (!spec.once && spec.warmupMs) await phase(spec.warmupMs, false);
const result = await phase(spec.durationMs ?? 0, true);
agent.destroy();
process.stdout.write(JSON.stringify(result) + "\n");
