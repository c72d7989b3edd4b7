// `npm start`: prepare local state and serve the API at http://localhost:8787.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync } from "node:fs";

const PORT = process.env.PORT ?? "8787";

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("Created .dev.vars from .dev.vars.example");
}
const adminToken = /^ADMIN_TOKEN=(.*)$/m.exec(readFileSync(".dev.vars", "utf8"))?.[1]?.trim() ?? "<ADMIN_TOKEN from .dev.vars>";

const migrate = spawnSync("wrangler", ["d1", "migrations", "apply", "DB", "--local"], {
  stdio: "inherit",
  env: { ...process.env, CI: "true" },
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const base = `http://localhost:${PORT}/v1`;
console.log(`
Cairn is starting at ${base}

Bootstrap a workspace and an API key:

  curl -s -X POST ${base}/admin/workspaces \\
    -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/json" \\
    -d '{"name":"My workspace"}'

  curl -s -X POST ${base}/admin/workspaces/<ws_id>/api-keys \\
    -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/json" -d '{}'
`);

// Nothing here needs the network: no Request.cf download, no telemetry.
const env = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", ...process.env };
// `wrangler dev` runs no cron triggers: --test-scheduled exposes /__scheduled instead.
const dev = spawn("wrangler", ["dev", "--port", PORT, "--test-scheduled", ...process.argv.slice(2)], { stdio: "inherit", env });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
dev.on("exit", (code) => process.exit(code ?? 0));

// Once the Worker answers, fire its cron at the top of every minute, as the deployed
// `* * * * *` trigger would; a failed call is logged and the next minute tries again.
const cronUrl = `http://localhost:${PORT}/__scheduled?cron=*+*+*+*+*`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const get = (url) => fetch(url, { signal: AbortSignal.timeout(10_000) });

while (!(await get(`${base}/health`).then((res) => res.ok, () => false))) await sleep(500);
console.log(`[cron] firing "* * * * *" every minute (by hand: curl "${cronUrl}")`);
for (;;) {
  await sleep(60_000 - (Date.now() % 60_000));
  await get(cronUrl).then(
    (res) => res.ok || console.error(`[cron] /__scheduled answered ${res.status}`),
    (error) => console.error(`[cron] /__scheduled failed: ${error.message}`),
  );
}
