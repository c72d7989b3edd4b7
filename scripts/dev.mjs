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
const dev = spawn("wrangler", ["dev", "--port", PORT, ...process.argv.slice(2)], { stdio: "inherit", env });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
dev.on("exit", (code) => process.exit(code ?? 0));
