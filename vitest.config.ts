import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

type D1Migrations = Awaited<ReturnType<typeof readD1Migrations>>;

/**
 * A project of Workers-pool tests against one configuration of the Worker. Bindings are fixed
 * for a pool's lifetime, so each email transport (EMAIL_TRANSPORT) gets its own project.
 */
const workers = (name: string, include: string[], exclude: string[], migrations: D1Migrations, bindings: Record<string, string> = {}, extra: Record<string, unknown> = {}) => ({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // OpenAI is configured (tests intercept its endpoint with msw); Anthropic is not.
        bindings: {
          ADMIN_TOKEN: "test-admin-token",
          TEST_MIGRATIONS: migrations,
          OPENAI_API_KEY: "sk-test",
          OPENAI_BASE_URL: "https://openai.test/v1",
          UNSUBSCRIBE_SECRET: "test-unsubscribe-secret",
          PUBLIC_URL: "https://cairn.test",
          ENCRYPTION_KEY: "test-encryption-key",
          RESEND_WEBHOOK_SECRET: "whsec_Y2Fpcm4tdGVzdC1yZXNlbmQtd2ViaG9vay1zZWNyZXQ=",
          ...bindings,
        },
        ...extra,
      },
    }),
  ],
  test: { name, include, exclude, setupFiles: ["./test/apply-migrations.ts"] },
});

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  return {
    test: {
      projects: [
        workers("workers", ["test/**/*.test.ts"], ["test/node/**", "test/browser/**", "test/transports/**", "test/ratelimits/**"], migrations),
        // Rate limits small enough to reach in a test (wrangler.toml's are per minute and generous).
        workers("ratelimits", ["test/ratelimits/**/*.test.ts"], [], migrations, {}, {
          ratelimits: {
            READ_LIMITER: { namespace_id: "1001", simple: { limit: 3, period: 60 } },
            WRITE_LIMITER: { namespace_id: "1002", simple: { limit: 2, period: 60 } },
            MCP_LIMITER: { namespace_id: "1003", simple: { limit: 1, period: 60 } },
            PUBLIC_LIMITER: { namespace_id: "1004", simple: { limit: 2, period: 60 } },
          },
        }),
        // Approved emails through Resend's API (intercepted with msw at https://resend.test).
        workers("resend", ["test/transports/resend/**/*.test.ts"], [], migrations, {
          EMAIL_TRANSPORT: "resend",
          RESEND_API_KEY: "re_test",
          RESEND_BASE_URL: "https://resend.test",
        }),
        // Approved emails through the send_email binding, which miniflare runs locally.
        workers("cloudflare", ["test/transports/cloudflare/**/*.test.ts"], [], migrations, { EMAIL_TRANSPORT: "cloudflare" }),
        {
          // Tools that need Node itself (the OpenAPI validator compiles schemas with eval).
          test: { name: "node", include: ["test/node/**/*.test.ts"], environment: "node" },
        },
        {
          // GET /v1/docs in headless Chromium against `wrangler dev` (needs /usr/bin/chromium).
          test: { name: "browser", include: ["test/browser/**/*.test.ts"], environment: "node", testTimeout: 90_000, hookTimeout: 120_000 },
        },
      ],
    },
  };
});
