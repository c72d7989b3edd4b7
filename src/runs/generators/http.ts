import { ProposalError } from "./builtin";
import { ProviderBusy } from "./types";
import { messageOf } from "../../lib/errors";

/** What a provider client may have swapped in tests; the defaults are the global fetch and a real timer. */
export type CallOptions = {
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  /** In [0, 1): the jitter of the backoff. */
  random?: () => number;
  /** How long one call may take (default 30 s). */
  timeoutMs?: number;
};

export const DEFAULT_TIMEOUT_MS = 30_000;
/** Quick retries a proposal may spend inside its alarm before the engine reschedules the contact. */
export const QUICK_RETRIES = 2;
/** The longest wait a quick retry sleeps; a provider asking for longer is handed back to the engine. */
export const MAX_QUICK_WAIT_MS = 5_000;
const BACKOFF_BASE_MS = 500;
/** How long the engine waits before trying a provider that keeps failing and named no time. */
export const BUSY_RETRY_MS = 30_000;

/** A failure worth trying again: a 408, 429 or 5xx answer, a timeout, a network error. */
export class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "RetryableError";
  }
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `call` until it succeeds, retrying a `RetryableError` at most `QUICK_RETRIES` times after
 * an exponential backoff with full jitter, or after the wait the provider asked for. A provider
 * that still refuses, or asks to wait longer than `MAX_QUICK_WAIT_MS`, ends in `ProviderBusy`;
 * any other error passes through. Returns the value and the number of calls made.
 */
export async function withRetries<T>(call: () => Promise<T>, options: CallOptions = {}): Promise<{ value: T; attempts: number }> {
  const sleep = options.sleep ?? realSleep;
  const random = options.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await call(), attempts: attempt };
    } catch (error) {
      if (!(error instanceof RetryableError)) throw error;
      const asked = error.retryAfterMs;
      if (asked !== undefined && asked > MAX_QUICK_WAIT_MS) {
        throw new ProviderBusy(`${error.message} (asked to retry in ${Math.ceil(asked / 1000)} s)`, asked);
      }
      if (attempt > QUICK_RETRIES) {
        throw new ProviderBusy(`${error.message} (after ${attempt} attempts)`, Math.max(asked ?? 0, BUSY_RETRY_MS));
      }
      await sleep(asked ?? Math.floor(random() * Math.min(MAX_QUICK_WAIT_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1))));
    }
  }
}

/**
 * POSTs JSON to a model provider and answers its JSON body, with a timeout and the quick
 * retries of `withRetries`. A 4xx other than 408 and 429 is permanent: a `ProposalError`
 * carrying the provider's own message.
 */
export async function postJson(
  provider: string,
  url: string,
  body: unknown,
  headers: Record<string, string>,
  options: CallOptions = {},
): Promise<{ value: unknown; attempts: number }> {
  // Looked up per call, not captured: tests intercept the global fetch after this module loads.
  const send = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return withRetries(async () => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const res = await send(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      const text = await res.text();
      if (res.ok) {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new RetryableError(`${provider} answered ${res.status} with a body that is not JSON`);
        }
      }
      const message = `${provider} answered ${res.status}: ${errorMessage(text) ?? res.statusText}`;
      if (res.status === 408 || res.status === 429 || res.status >= 500) throw new RetryableError(message, retryAfterMs(res.headers));
      throw new ProposalError(message);
    } catch (error) {
      if (error instanceof RetryableError || error instanceof ProposalError) throw error;
      if (controller.signal.aborted) throw new RetryableError(`${provider} did not answer within ${timeoutMs} ms`);
      throw new RetryableError(`${provider} could not be reached: ${messageOf(error)}`);
    } finally {
      clearTimeout(timer);
    }
  }, options);
}

/**
 * The provider's own words (`error.message` for OpenAI and Anthropic, `error` or `message`,
 * else the start of the body), with anything that looks like a key or an account id taken
 * out: they end up in `action.error`, which every key of the workspace can read.
 */
function errorMessage(text: string): string | undefined {
  const said = providerWords(text);
  return said && redact(said);
}

/** Keys (`sk-…`, `sk-ant-…`, long tokens) and organisation or project ids, replaced by a mark. */
export const redact = (text: string) =>
  text.replace(/\b(sk|rk|pk)-[A-Za-z0-9_-]{4,}/g, "[redacted key]").replace(/\b(org|proj|user)-[A-Za-z0-9_-]{6,}/g, "[redacted id]").replace(/\b[A-Za-z0-9_-]{40,}\b/g, "[redacted]");

function providerWords(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const candidate = typeof body.error === "string" ? body.error : (body.error?.message ?? body.message);
    if (typeof candidate === "string" && candidate) return candidate;
  } catch {
    // Not JSON: a proxy's page, say.
  }
  return text.trim().slice(0, 300) || undefined;
}

/** `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date, in milliseconds from `now`. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number(headers.get("retry-after-ms")?.trim() || Number.NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get("retry-after")?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
