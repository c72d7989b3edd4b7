// Turns the README's examples into TypeScript checked against the types openapi-typescript
// generated from the OpenAPI document (`npm run client:check`): every curl body sent to the API
// becomes a value of its operation's request body type, and every ```ts block is copied as is.
// A body the types refuse (an unknown field, a wrong type, `send_window: {}` typed as required)
// then fails the type check.
import { readFileSync, writeFileSync } from "node:fs";

const README = "README.md";
const OUT_BODIES = "generated/readme-bodies.ts";
const OUT_CLIENT = "generated/readme-client.ts";

type Example = { line: number; method: string; path: string; body: unknown };

/** `$NAME`, `${NAME}` or `${NAME:-default}`: read as the variable's name. */
const VARIABLE = /^\$(?:\{(\w+)(?::-[^}]*)?\}|(\w+))/;
const DATA_FLAGS = new Set(["-d", "--data", "--data-raw", "--data-binary", "--json"]);

/** Splits one shell command into words, quotes removed and `$VAR` replaced by the variable's name. */
function words(text: string): string[] {
  const out: string[] = [];
  let word: string | null = null;
  const push = (s: string) => (word = (word ?? "") + s);
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "\\" && text[i + 1] === "\n") {
      i++;
    } else if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      push(text.slice(i + 1, end));
      i = end;
    } else if (ch === '"') {
      let s = "";
      for (i++; text[i] !== '"'; i++) {
        if (text[i] === "\\" && '"\\$'.includes(text[i + 1]!)) s += text[++i];
        else if (text[i] === "$") {
          const name = VARIABLE.exec(text.slice(i))!;
          s += name[1] ?? name[2];
          i += name[0].length - 1;
        } else s += text[i];
      }
      push(s);
    } else if (ch === "$") {
      const name = VARIABLE.exec(text.slice(i));
      if (name) {
        push(name[1] ?? name[2]!);
        i += name[0].length - 1;
      } else push(ch);
    } else if (/\s/.test(ch)) {
      if (word !== null) out.push(word);
      word = null;
    } else push(ch);
  }
  if (word !== null) out.push(word);
  return out;
}

/** Where each curl command ends: an unquoted newline (not continued), pipe or closing parenthesis. */
function commandAt(text: string, start: number): string {
  let quote: string | null = null;
  for (let i = start; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (quote === '"' && ch === "\\") i++;
      else if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "\\" && text[i + 1] === "\n") i++;
    else if (ch === "\n" || ch === "|" || ch === ")") return text.slice(start, i);
  }
  return text.slice(start);
}

function examples(readme: string): Example[] {
  const found: Example[] = [];
  for (const block of readme.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)) {
    const offset = block.index! + block[0].indexOf("\n") + 1;
    for (const curl of block[1]!.matchAll(/\bcurl\s/g)) {
      const args = words(commandAt(block[1]!, curl.index!));
      const line = readme.slice(0, offset + curl.index!).split("\n").length;
      const at = args.findIndex((a) => DATA_FLAGS.has(a));
      // JSON is sent with -H "$JSON" (README's variable), a literal Content-Type, or --json.
      const json = args.some((a, i) => (args[i - 1] === "-H" && (a === "JSON" || /^content-type:\s*application\/json/i.test(a))) || a === "--json");
      if (at < 0 || !json) continue; // no body, or a form body (the one-click unsubscribe)
      const url = args.find((a) => a.includes("localhost:8787/"));
      if (!url) throw new Error(`${README}:${line}: a JSON body sent to no localhost:8787 URL`);
      const path = new URL(`http://${url.replace(/^https?:\/\//, "")}`).pathname;
      let body: unknown;
      try {
        body = JSON.parse(args[at + 1]!);
      } catch (error) {
        throw new Error(`${README}:${line}: the JSON body does not parse (${String(error)}): ${args[at + 1]}`);
      }
      const x = args.indexOf("-X");
      found.push({ line, method: (x >= 0 ? args[x + 1]! : "POST").toLowerCase(), path, body });
    }
  }
  return found;
}

/** The document's path template a concrete path matches, preferring literal segments over parameters. */
function templateOf(path: string, templates: string[]): string {
  const segments = path.split("/");
  const scored = templates
    .map((t) => t.split("/"))
    .filter((t) => t.length === segments.length && t.every((s, i) => s.startsWith("{") || s === segments[i]))
    .map((t) => ({ template: t.join("/"), literal: t.filter((s) => !s.startsWith("{")).length }))
    .sort((a, b) => b.literal - a.literal);
  if (!scored[0]) throw new Error(`README path ${path} matches no operation of the document`);
  return scored[0].template;
}

const readme = readFileSync(README, "utf8");
const templates = Object.keys((JSON.parse(readFileSync("generated/openapi.json", "utf8")) as { paths: object }).paths);
const found = examples(readme);
if (found.length < 10) throw new Error(`Only ${found.length} JSON bodies found in ${README}; has its curl style changed?`);

const lines = [
  "// Generated by scripts/readme-examples.ts from README.md: do not edit.",
  'import type { paths } from "./cairn";',
  "",
  "// An operation without a JSON body takes none: its type is never, so any -d sent to it fails.",
  "type JsonBody<Op> = Op extends { requestBody?: infer R } ? ([NonNullable<R>] extends [never] ? never : NonNullable<R> extends { content: { \"application/json\": infer B } } ? B : never) : never;",
  "type RequestBody<P extends keyof paths, M extends keyof paths[P]> = JsonBody<paths[P][M]>;",
  "",
  ...found.map((e) => `export const line${e.line}: RequestBody<${JSON.stringify(templateOf(e.path, templates))}, ${JSON.stringify(e.method)}> = ${JSON.stringify(e.body)};`),
  "",
];
writeFileSync(OUT_BODIES, lines.join("\n"));

const client = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((code) => code.includes("openapi-fetch"));
if (client.length === 0) throw new Error(`No openapi-fetch example in ${README}`);
writeFileSync(OUT_CLIENT, `// Generated by scripts/readme-examples.ts from README.md: do not edit.\n${client.join("\n")}`);
console.log(`${found.length} request bodies and ${client.length} TypeScript example(s) from ${README}`);
