import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { readUnsubscribeToken, unsubscribeHeaders, unsubscribeToken } from "../src/delivery/unsubscribe";
import { api, expectError, makeWorkspace, type ApiResponse } from "./helpers";
import { EMAIL_STEP, contactOf, getRun, makeContact, makeStepsAgent, startRun } from "./engine-helpers";

const SECRET = "test-unsubscribe-secret"; // vitest.config.ts

/** A request with no key, as a mail client or a browser makes it. */
async function link(method: "GET" | "POST", token: string, init: { body?: string; headers?: Record<string, string> } = {}): Promise<ApiResponse & { text: string }> {
  const res = await exports.default.fetch(`https://cairn.test/v1/unsubscribe/${token}`, { method, ...init });
  const text = await res.text();
  const body = res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : {};
  return { status: res.status, headers: res.headers, body, text };
}

const oneClick = { body: "List-Unsubscribe=One-Click", headers: { "Content-Type": "application/x-www-form-urlencoded" } };

/** The token with one character of its signature changed. */
const altered = (token: string) => token.slice(0, -2) + (token.at(-2) === "A" ? "B" : "A") + token.at(-1);

describe("unsubscribe tokens", () => {
  it("name the workspace and contact they were made for, and nothing once altered or signed with another secret", async () => {
    const token = await unsubscribeToken(SECRET, "ws_1", "ct_1");
    expect(await readUnsubscribeToken(SECRET, token)).toStrictEqual({ workspaceId: "ws_1", contactId: "ct_1" });
    expect(await readUnsubscribeToken(SECRET, altered(token))).toBeNull();
    expect(await readUnsubscribeToken("another secret", token)).toBeNull();
    const forgedSubject = `${btoa("ws_1:ct_2").replace(/=+$/, "")}.${token.split(".")[1]}`;
    expect(await readUnsubscribeToken(SECRET, forgedSubject)).toBeNull();
    expect(await readUnsubscribeToken(SECRET, "not-a-token")).toBeNull();
  });

  it("make the RFC 8058 headers: an https link and a mailto, and the one-click post", async () => {
    const token = await unsubscribeToken(SECRET, "ws_1", "ct_1");
    expect(unsubscribeHeaders("https://cairn.example/", token, "unsubscribe@mail.example")).toStrictEqual({
      "List-Unsubscribe": `<https://cairn.example/v1/unsubscribe/${token}>, <mailto:unsubscribe@mail.example?subject=unsubscribe%20${token}>`,
      "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    });
  });
});

describe("/v1/unsubscribe/:token", () => {
  async function subscribedContact() {
    const { workspaceId, key } = await makeWorkspace();
    const agent = await makeStepsAgent(key, [EMAIL_STEP]);
    const contact = await makeContact(key, { email: `reader-${crypto.randomUUID().slice(0, 8)}@example.com` });
    const runId = await startRun(key, agent.id, [contact.id]);
    return { key, contact, runId, token: await unsubscribeToken(SECRET, workspaceId, contact.id) };
  }

  it("shows a page with a confirm button, and changes nothing", async () => {
    const { key, contact, token } = await subscribedContact();
    const res = await link("GET", token);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(res.text).toContain('<form method="post">');
    expect(res.text).toContain(`${contact.email[0]}***@example.com`);
    expect((await api(`/v1/contacts/${contact.id}`, { key })).body.contact.unsubscribed).toBe(false);
  });

  it("unsubscribes on the one-click POST with no key, records the event once and stops the contact's sequences", async () => {
    const { key, contact, runId, token } = await subscribedContact();

    const res = await link("POST", token, oneClick);
    expect(res.status).toBe(200);
    expect(res.body).toStrictEqual({ status: "success", unsubscribed: true });
    expect((await link("POST", token)).status).toBe(200); // a second click, with no body

    expect((await api(`/v1/contacts/${contact.id}`, { key })).body.contact.unsubscribed).toBe(true);
    const events = await api(`/v1/contacts/${contact.id}/events?type=contact.unsubscribed`, { key });
    expect(events.body.total).toBe(1);
    expect(contactOf(await getRun(key, runId), contact.id)).toMatchObject({ status: "stopped", stop_reason: "unsubscribe", actions: [{ status: "invalidated" }] });
  });

  it("answers the browser's form with a page", async () => {
    const { token } = await subscribedContact();
    const res = await link("POST", token, { headers: { Accept: "text/html" } });
    expect(res.status).toBe(200);
    expect(res.text).toContain("You are unsubscribed");
  });

  it("answers 404 to a forged or altered token, and to a deleted contact's, unsubscribing nobody", async () => {
    const { key, contact, token } = await subscribedContact();
    expectError(await link("POST", altered(token), oneClick), 404, "not_found");
    expectError(await link("GET", altered(token)), 404, "not_found");
    expect((await api(`/v1/contacts/${contact.id}`, { key })).body.contact.unsubscribed).toBe(false);

    await api(`/v1/contacts/${contact.id}`, { method: "DELETE", key });
    expectError(await link("POST", token, oneClick), 404, "not_found");
  });
});
