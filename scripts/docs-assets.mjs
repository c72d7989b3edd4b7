// Copies Scalar's standalone browser build into public/docs/, where Workers Static Assets
// serves it as /docs/scalar.js: GET /v1/docs then needs no CDN (CONTRACT.md section 13).
// Run by `npm run build`, `npm run deploy`, `npm start` and the browser test.
import { copyFileSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Copies the bundle; returns its path and size in bytes. */
export function copyDocsAssets() {
  // The package's exports map does not list its browser build: read it from node_modules.
  const source = join(root, "node_modules/@scalar/api-reference/dist/browser/standalone.js");
  const target = join(root, "public/docs/scalar.js");
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(source, target);
  return { path: target, bytes: statSync(target).size };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { bytes } = copyDocsAssets();
  console.log(`public/docs/scalar.js: ${(bytes / 1024 / 1024).toFixed(2)} MiB (Scalar's standalone build, served as a static asset)`);
}
