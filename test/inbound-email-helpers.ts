import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import worker from "../src/index";
import { makeWorkspace } from "./helpers";
import { TWO_STEPS, approve, deliveryRows, makeContact, makeIdentity, makeStepsAgent, startRun } from "./engine-helpers";

// Real MIME messages handed to the Worker's email() handler, as Email Routing would.

type Mail = { from: string; to: string; subject?: string; messageId?: string; headers?: Record<string, string>; body?: string };

/** An RFC 5322 message with CRLF line ends; `headers` may replace the plain-text Content-Type. */
export function mime(mail: Mail): string {
  const headers: Record<string, string> = {
    From: mail.from,
    To: mail.to,
    Subject: mail.subject ?? "Re: Hello",
    Date: new Date().toUTCString(),
    "Message-ID": mail.messageId ?? `<${crypto.randomUUID()}@mail.example>`,
    "MIME-Version": "1.0",
    "Content-Type": "text/plain; charset=utf-8",
    ...mail.headers,
  };
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
  return [...head, "", mail.body ?? "Thanks, let's talk next week.", ""].join("\r\n");
}

export type Inbound = ForwardableEmailMessage & { forwarded: string[] };

/** A ForwardableEmailMessage over these bytes that records where it was forwarded; `forward` fails when `failForward`. */
export function emailMessage(raw: string | Uint8Array, envelope: { from: string; to: string }, failForward = false): Inbound {
  const bytes = typeof raw === "string" ? new TextEncoder().encode(raw) : raw;
  const forwarded: string[] = [];
  const headerBlock = new TextDecoder().decode(bytes).split("\r\n\r\n")[0] ?? "";
  const headers = new Headers();
  for (const line of headerBlock.split("\r\n")) {
    const match = /^([\w-]+):\s*(.*)$/.exec(line);
    if (match) headers.append(match[1]!, match[2]!);
  }
  return {
    ...envelope,
    headers,
    raw: new ReadableStream({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      },
    }),
    rawSize: bytes.byteLength,
    canBeForwarded: true,
    setReject: () => {
      throw new Error("the handler never rejects: a rejection bounces the mail to a person");
    },
    forward: async (rcptTo: string) => {
      if (failForward) throw new Error("destination address not verified");
      forwarded.push(rcptTo);
      return { messageId: `<${crypto.randomUUID()}@forward.example>` };
    },
    reply: async () => ({ messageId: `<${crypto.randomUUID()}@reply.example>` }),
    forwarded,
  };
}

/** Runs the Worker's email() handler on the message, with the test env unless another is given. */
export async function receive(message: ForwardableEmailMessage, bindings: typeof env = env): Promise<void> {
  const ctx = createExecutionContext();
  await (worker as ExportedHandler<typeof env>).email!(message, bindings, ctx);
  await waitOnExecutionContext(ctx);
}

/**
 * A contact that was sent the first email of a two-step sequence and now waits a day for
 * the follow-up, with the sender's address and the email's Message-ID.
 */
export async function sentEmail() {
  const tag = crypto.randomUUID().slice(0, 8);
  const { workspaceId, key } = await makeWorkspace();
  const identity = await makeIdentity(key, { email_address: `sam-${tag}@cairn.example` });
  const agent = await makeStepsAgent(key, TWO_STEPS, { identity_id: identity.id });
  // Mixed case: replies are matched on the lower-cased address.
  const contact = await makeContact(key, { email: `Reader-${tag}@Example.com`, first_name: "Ada" });
  const runId = await startRun(key, agent.id, [contact.id]);
  const approved = await approve(key, runId, contact.id, 0);
  expect(approved.body.action?.status, JSON.stringify(approved.body)).toBe("completed");
  const [sent] = await deliveryRows(runId, contact.id, 0);
  expect(sent!.messageId).toBe(`<${sent!.id}@cairn.example>`);
  return { workspaceId, key, runId, contact, sender: identity.email_address as string, delivery: { id: sent!.id, messageId: sent!.messageId! } };
}
