// GET /v1/docs in a real headless Chromium, against `wrangler dev` with wrangler.toml's assets:
// the reference renders from the Worker alone, and its "try it" client reaches the API.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyDocsAssets } from "../../scripts/docs-assets.mjs";

const ADMIN_TOKEN = "browser-admin-token";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const bin = resolve("node_modules/.bin");
// Wrangler needs the pinned Node (devDependency `node`), which node_modules/.bin provides.
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, CI: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };

const freePort = () =>
  new Promise<number>((done) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });

let state: string;
let dev: ChildProcess;
let browser: Browser;
let base: string;

// `.ci/run` installs Chromium, so CI always runs this file; a machine without it skips it with a
// warning rather than failing `npm test` (CI=true makes a missing Chromium a failure again).
const RUNS = existsSync(CHROMIUM) || process.env.CI === "true";
if (!RUNS) console.warn(`test/browser skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);

beforeAll(async () => {
  if (!RUNS) return;
  if (!existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  copyDocsAssets();
  state = mkdtempSync(join(tmpdir(), "cairn-docs-"));
  // Only these variables: a developer's .dev.vars must not change the test.
  const vars = join(state, "test.vars");
  writeFileSync(vars, `ADMIN_TOKEN=${ADMIN_TOKEN}\nENCRYPTION_KEY=browser-test-encryption-key\n`);
  const migrate = spawnSync(join(bin, "wrangler"), ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { env, encoding: "utf8" });
  expect(migrate.status, migrate.stderr).toBe(0);

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  dev = spawn(join(bin, "wrangler"), ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--env-file", vars], { env, detached: true, stdio: "ignore" });
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/v1/health`).then((res) => res.ok, () => false)) break;
    if (i > 120) throw new Error("wrangler dev did not answer /v1/health within 60 s");
    await new Promise((done) => setTimeout(done, 500));
  }
  browser = await chromium.launch({ executablePath: CHROMIUM });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (dev?.pid) process.kill(-dev.pid, "SIGTERM");
  if (state) rmSync(state, { recursive: true, force: true });
});

async function createKey(): Promise<string> {
  const admin = { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" };
  const ws = await fetch(`${base}/v1/admin/workspaces`, { method: "POST", headers: admin, body: JSON.stringify({ name: "Docs" }) }).then((res) => res.json() as Promise<{ workspace: { id: string } }>);
  const key = await fetch(`${base}/v1/admin/workspaces/${ws.workspace.id}/api-keys`, { method: "POST", headers: admin, body: "{}" }).then((res) => res.json() as Promise<{ api_key: { key: string } }>);
  return key.api_key.key;
}

describe.skipIf(!RUNS)("GET /v1/docs", () => {
  it("serves the page and its script without a key, and leaves the API's 404s alone", async () => {
    const page = await fetch(`${base}/v1/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(await page.text()).toContain('<script src="/docs/scalar.js">');
    const script = await fetch(`${base}/docs/scalar.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("Content-Type")).toMatch(/javascript/);
    const missing = await fetch(`${base}/docs/missing.js`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe("not_found");
    expect((await fetch(`${base}/.assetsignore`)).status).toBe(404);
    expect((await fetch(`${base}/v1/agents`)).status).toBe(401);
  });

  it("lists the operations and sends GET /v1/auth/status with a key from the page", async () => {
    const key = await createKey();
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    // Offline: any request that leaves the Worker's origin fails, and is recorded.
    const outside: string[] = [];
    await page.route("**/*", (route) => {
      if (new URL(route.request().url()).origin === base) return route.continue();
      outside.push(route.request().url());
      return route.abort();
    });

    await page.goto(`${base}/v1/docs`);
    await page.getByRole("button", { name: /Agents/ }).first().click();
    await page.getByText("List agents").first().waitFor({ timeout: 30_000 });
    await page.getByText("Create an agent").first().waitFor();

    await page.getByLabel(/Bearer Token/i).first().fill(key);
    const id = "api-1/tag/service/GET/v1/auth/status";
    await page.locator(`[id="${id}"]`).scrollIntoViewIfNeeded();
    await page.locator(`section[id="${id}"]`).getByRole("button", { name: /Test Request/ }).first().click();
    const answer = page.waitForResponse((res) => res.url() === `${base}/v1/auth/status`);
    await page.getByRole("button", { name: /^Send get request/ }).first().click();
    const res = await answer;
    expect(res.status()).toBe(200);
    expect(res.request().headers().authorization).toBe(`Bearer ${key}`);
    await page.getByText('"authenticated": true').first().waitFor({ timeout: 15_000 });
    await page.getByText("200 OK").first().waitFor();
    await page.waitForTimeout(500); // the response panel's transition, for a clean screenshot
    await page.screenshot({ path: process.env.DOCS_SCREENSHOT ?? "/tmp/docs.png" });
    expect(outside).toEqual([]);
    await page.close();
  }, 90_000);
});
