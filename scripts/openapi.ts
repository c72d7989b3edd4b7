// Writes the OpenAPI document that GET /v1/openapi.json serves, built from the app's routes,
// for the linters and openapi-typescript: `npm run openapi` (to generated/openapi.json).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { app } from "../src/app";
import { openApiDocument } from "../src/openapi/document";

const out = process.argv[2] ?? "generated/openapi.json";
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(openApiDocument(app.routes), null, 2)}\n`);
console.log(`wrote ${out}`);
