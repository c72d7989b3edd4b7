import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  return {
    test: {
      projects: [
        {
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                // OpenAI is configured (tests intercept its endpoint with msw); Anthropic is not.
                bindings: { ADMIN_TOKEN: "test-admin-token", TEST_MIGRATIONS: migrations, OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: "https://openai.test/v1",
                  UNSUBSCRIBE_SECRET: "test-unsubscribe-secret", PUBLIC_URL: "https://cairn.test",
                  RESEND_WEBHOOK_SECRET: "whsec_Y2Fpcm4tdGVzdC1yZXNlbmQtd2ViaG9vay1zZWNyZXQ=" },
              },
            }),
          ],
          test: {
            name: "workers",
            include: ["test/**/*.test.ts"],
            exclude: ["test/node/**"],
            setupFiles: ["./test/apply-migrations.ts"],
          },
        },
        {
          // Tools that need Node itself (the OpenAPI validator compiles schemas with eval).
          test: { name: "node", include: ["test/node/**/*.test.ts"], environment: "node" },
        },
      ],
    },
  };
});
