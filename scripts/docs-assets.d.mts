/** Copies Scalar's standalone build to public/docs/scalar.js; returns its path and size in bytes. */
export function copyDocsAssets(): { path: string; bytes: number };
