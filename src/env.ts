import type { Db } from "./db/client";
import type { Auth } from "./lib/auth";
import type { StopReason } from "./runs/machine";
import type { RunObject } from "./runs/run-object";
import type { ContactSnapshot } from "./runs/spec";

/** Starts a run. */
export type StartMessage = { run_id: string };
/** Stops and address changes for one run's contacts, when a contact is in too many runs to tell inline. */
export type SignalMessage = {
  kind: "signal";
  run_id: string;
  stops: { contactId: string; reason: StopReason }[];
  changes: { contactId: string; snapshot: ContactSnapshot }[];
};
/** Ingested events to match against event-driven agents: a row of `event_match_requests`. */
export type MatchMessage = { kind: "match"; request_id: number };
export type RunMessage = StartMessage | SignalMessage | MatchMessage;
/** One attempt at one webhook delivery: the event `event_id` to the endpoint `endpoint_id`. */
export type WebhookMessage = { endpoint_id: string; event_id: string };

export type Env = {
  DB: D1Database;
  RUNS: DurableObjectNamespace<RunObject>;
  RUN_QUEUE: Queue<RunMessage>;
  WEBHOOK_QUEUE: Queue<WebhookMessage>;
  /** Encrypts the secrets Cairn keeps (webhook endpoints' signing secrets); unset, webhook endpoints cannot be created. */
  ENCRYPTION_KEY?: string;
  /** `true` lets webhook endpoints use http://localhost and http://127.0.0.1 (local development only). */
  WEBHOOKS_ALLOW_HTTP?: string;
  /** Operator secret for /v1/admin/*; the admin routes answer 404 while it is unset. */
  ADMIN_TOKEN?: string;
  /** Model providers (CONTRACT.md section 10): a provider without its secret or binding is not configured. */
  OPENAI_API_KEY?: string;
  OPENAI_BASE_URL?: string;
  ANTHROPIC_API_KEY?: string;
  ANTHROPIC_BASE_URL?: string;
  AI?: Ai;
  /** Signs unsubscribe links; unset, the links (and /v1/unsubscribe) answer 404. */
  UNSUBSCRIBE_SECRET?: string;
  /** The deployment's public origin, which links in emails are built on. */
  PUBLIC_URL?: string;
  /** How approved emails leave (CONTRACT.md section 11): `outbox` (default, recorded only), `resend` or `cloudflare`. */
  EMAIL_TRANSPORT?: string;
  RESEND_API_KEY?: string;
  RESEND_BASE_URL?: string;
  /** Verifies Resend's signed delivery events at /v1/inbound/resend (`whsec_...`); unset, that route answers 404. */
  RESEND_WEBHOOK_SECRET?: string;
  /** Cloudflare Email Service's `send_email` binding, for EMAIL_TRANSPORT=cloudflare. */
  EMAIL?: SendEmail;
  /** Where the email() handler forwards every message it receives, once recorded (a verified Email Routing destination). */
  INBOUND_FORWARD_TO?: string;
  /** Per-key rate limits (`[[ratelimits]]` in wrangler.toml): reads, writes, and the MCP endpoint; PUBLIC_LIMITER is per address, for the keyless reads. */
  READ_LIMITER?: RateLimit;
  WRITE_LIMITER?: RateLimit;
  MCP_LIMITER?: RateLimit;
  PUBLIC_LIMITER?: RateLimit;
  /** Proposals a run makes at once (1-20, default 6). */
  PROPOSAL_CONCURRENCY?: string;
};

export type AppEnv = {
  Bindings: Env;
  Variables: {
    db: Db;
    auth: Auth;
    requestId: string;
  };
};
