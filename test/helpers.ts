import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import type { Scope } from "../src/lib/scopes";

export const ADMIN_TOKEN = "test-admin-token";
const BASE = "https://cairn.test";

export type Json = Record<string, any>;
export type ApiResponse = { status: number; headers: Headers; body: Json };

type Init = { method?: string; key?: string; body?: unknown; headers?: Record<string, string> };

/** Calls the Worker through its front door, JSON in and out. */
export async function api(path: string, init: Init = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.key) headers.Authorization = `Bearer ${init.key}`;
  let body: string | undefined;
  if (init.body !== undefined) {
    body = typeof init.body === "string" ? init.body : JSON.stringify(init.body);
    headers["Content-Type"] ??= "application/json";
  }
  const res = await exports.default.fetch(`${BASE}${path}`, { method: init.method ?? "GET", headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {} };
}

export const admin = (path: string, init: Init = {}) => api(path, { ...init, key: ADMIN_TOKEN });

/** A fresh workspace and a key for it (every scope unless `scopes` is given). */
export async function makeWorkspace(scopes?: Scope[]): Promise<{ workspaceId: string; key: string; keyId: string }> {
  const ws = await admin("/v1/admin/workspaces", { method: "POST", body: { name: "Test workspace" } });
  expect(ws.status).toBe(201);
  const workspaceId = ws.body.workspace.id as string;
  const { key, keyId } = await makeKey(workspaceId, scopes);
  return { workspaceId, key, keyId };
}

export async function makeKey(workspaceId: string, scopes?: Scope[]): Promise<{ key: string; keyId: string }> {
  const res = await admin(`/v1/admin/workspaces/${workspaceId}/api-keys`, { method: "POST", body: scopes ? { scopes } : {} });
  expect(res.status).toBe(201);
  return { key: res.body.api_key.key, keyId: res.body.api_key.id };
}

/** An agent (email by default) that sends as a new identity, unless `identity_id` is given (null for none). */
export async function makeAgent(key: string, overrides: Json = {}): Promise<Json> {
  const identityId = "identity_id" in overrides ? overrides.identity_id : await makeSender(key);
  const res = await api("/v1/agents", { method: "POST", key, body: { name: "Test agent", capabilities: ["email"], ...overrides, identity_id: identityId } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.agent;
}

/** Asserts the error envelope of CONTRACT.md section 1 and returns its body. */
export function expectError(res: ApiResponse, status: number, code: string): Json {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body).toMatchObject({ status: "error", code, error: expect.any(String), request_id: expect.stringMatching(/^req_/) });
  expect(res.body.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  expect(res.headers.get("Request-Id")).toBe(res.body.request_id);
  return res.body;
}

/** A sending identity, Sam Sender <sam@cairn.example> unless `overrides` say otherwise. */
export async function makeIdentity(key: string, overrides: Json = {}): Promise<Json> {
  const res = await api("/v1/identities", { method: "POST", key, body: { first_name: "Sam", last_name: "Sender", email_address: "sam@cairn.example", ...overrides } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.identity;
}

/** The id of a new default identity: outbound steps cannot be triggered without a sender. */
export const makeSender = async (key: string): Promise<string> => (await makeIdentity(key)).id;
