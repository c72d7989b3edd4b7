import { describe, expect, it } from "vitest";
import { checkWebhookUrl } from "../src/webhooks/url-policy";

const STRICT = { allowHttp: false };
const DEV = { allowHttp: true };

/** The policy leans on these spellings reaching it as a dotted quad. */
describe("the runtime's URL parser", () => {
  it.each([
    ["https://2130706433/", "127.0.0.1"],
    ["https://0x7f000001/", "127.0.0.1"],
    ["https://0x7f.0.0.1/", "127.0.0.1"],
    ["https://0177.0.0.1/", "127.0.0.1"],
    ["https://127.1/", "127.0.0.1"],
    ["https://167772161/", "10.0.0.1"],
    ["https://0xa000001/", "10.0.0.1"],
    ["https://012.0.0.1/", "10.0.0.1"],
    ["https://10.1/", "10.0.0.1"],
    ["https://2852039166/", "169.254.169.254"],
    ["https://0xa9fea9fe/", "169.254.169.254"],
    ["https://0251.0376.0251.0376/", "169.254.169.254"],
    ["https://169.254.43518/", "169.254.169.254"],
    ["https://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]"],
    ["https://[FD00:EC2:0::254]/", "[fd00:ec2::254]"],
  ])("reads %s as host %s", (raw, hostname) => {
    expect(new URL(raw).hostname).toBe(hostname);
  });
});

/** Refused whether or not WEBHOOKS_ALLOW_HTTP is set. */
const ALWAYS_REFUSED = [
  // not an absolute URL
  "",
  "not a url",
  "https://",
  "/relative/path",
  "example.com/hooks",
  "https://exa mple.com/",
  "http://[::1",
  `https://example.com/${"a".repeat(2048)}`,
  // schemes
  "ftp://example.com/hooks",
  "http://example.com/hooks",
  "ws://example.com/hooks",
  "javascript:alert(1)",
  "file:///etc/passwd",
  "data:text/plain,hi",
  // credentials
  "https://user:pass@example.com/",
  "https://user@example.com/",
  "https://:pass@example.com/",
  // IPv4 ranges, and other spellings of their addresses
  "https://0.0.0.0/",
  "https://0/",
  "https://0.1.2.3/",
  "https://10.0.0.1/",
  "https://167772161/",
  "https://0xa000001/",
  "https://012.0.0.1/",
  "https://10.1/",
  "https://10.255.255.255/",
  "https://100.64.0.1/",
  "https://100.127.255.255/",
  "https://127.0.0.2/",
  "https://127.255.255.254/",
  "http://127.0.0.2:9000/",
  "https://169.254.169.254/latest/meta-data/",
  "https://2852039166/",
  "https://0xa9fea9fe/",
  "https://0251.0376.0251.0376/",
  "https://169.254.43518/",
  "https://172.16.0.1/",
  "https://172.31.255.255/",
  "https://192.0.0.8/",
  "https://192.0.2.1/",
  "https://192.168.1.1/",
  "https://198.18.0.1/",
  "https://198.19.255.255/",
  "https://198.51.100.7/",
  "https://203.0.113.9/",
  "https://224.0.0.1/",
  "https://239.255.255.250/",
  "https://240.0.0.1/",
  "https://255.255.255.255/",
  // IPv6 literals
  "https://[::]/",
  "https://[fe80::1]/",
  "https://[febf::1]/",
  "https://[fc00::1]/",
  "https://[fd00:ec2::254]/",
  "https://[ff02::1]/",
  "https://[::ffff:127.0.0.1]/",
  "https://[::ffff:7f00:1]/",
  "https://[::ffff:10.0.0.1]/",
  "https://[::ffff:169.254.169.254]/",
  "https://[64:ff9b::7f00:1]/",
  "https://[64:ff9b::10.0.0.1]/",
  "https://[::127.0.0.1]/",
  // local and internal names
  "https://metadata.google.internal/computeMetadata/v1/",
  "https://metadata.google.internal./",
  "https://printer.local/",
  "https://app.localhost/",
  "http://app.localhost:3000/",
  "https://router.home.arpa/",
  "https://intranet/",
  "https://intranet./",
  "https://../",
];

/** Loopback forms that only WEBHOOKS_ALLOW_HTTP=true lets through. */
const DEV_ONLY = [
  "https://localhost/",
  "https://LOCALHOST/",
  "https://localhost./",
  "https://localhost../",
  "http://localhost:8080/",
  "http://localhost:3000/hook",
  "https://127.0.0.1/",
  "http://127.0.0.1:9000/",
  "https://2130706433/",
  "https://0x7f000001/",
  "https://0x7f.0.0.1/",
  "https://0177.0.0.1/",
  "https://127.1/",
  "https://[::1]/",
  "http://[::1]:9000/",
];

const ALWAYS_ACCEPTED = [
  "https://example.com/hooks",
  "https://hooks.example.com:8443/x?y=1",
  "https://example.com./hooks",
  "https://93.184.216.34/",
  "https://[2606:4700::1111]/",
  "https://[::ffff:93.184.216.34]/",
  "https://[64:ff9b::5db8:d822]/",
  // just outside the refused IPv4 ranges
  "https://1.0.0.0/",
  "https://9.255.255.255/",
  "https://11.0.0.0/",
  "https://100.63.255.255/",
  "https://100.128.0.0/",
  "https://172.15.255.255/",
  "https://172.32.0.0/",
  "https://192.0.1.255/",
  "https://192.0.3.0/",
  "https://198.17.255.255/",
  "https://198.20.0.0/",
  "https://223.255.255.255/",
];

describe("checkWebhookUrl", () => {
  it.each(ALWAYS_REFUSED.flatMap((raw) => [STRICT, DEV].map((options) => [raw, options] as const)))(
    "refuses %j with %o",
    (raw, options) => {
      expect(checkWebhookUrl(raw, options)).toStrictEqual({ ok: false, message: expect.any(String) });
    },
  );

  it.each(DEV_ONLY)("refuses loopback %s without allowHttp", (raw) => {
    expect(checkWebhookUrl(raw, STRICT).ok).toBe(false);
  });

  it.each(DEV_ONLY)("accepts loopback %s with allowHttp", (raw) => {
    const verdict = checkWebhookUrl(raw, DEV);
    expect(verdict.ok && verdict.url.href).toBe(new URL(raw).href);
  });

  it.each(ALWAYS_ACCEPTED.flatMap((raw) => [STRICT, DEV].map((options) => [raw, options] as const)))(
    "accepts %s with %o",
    (raw, options) => {
      const verdict = checkWebhookUrl(raw, options);
      expect(verdict.ok && verdict.url.href).toBe(new URL(raw).href);
    },
  );

  it.each([
    ["not a url", STRICT, "Not a valid absolute URL"],
    [`https://example.com/${"a".repeat(2048)}`, STRICT, "Webhook URLs may be at most 2048 characters"],
    ["http://example.com/hooks", DEV, "Webhook URLs must use https"],
    ["ftp://localhost/", DEV, "Webhook URLs must use https"],
    ["https://user:pass@example.com/", STRICT, "Webhook URLs may not carry credentials"],
    ["https://2130706433/", STRICT, "Webhook URLs may not point at private, loopback or link-local addresses (127.0.0.1)"],
    ["https://[::ffff:10.0.0.1]/", DEV, "Webhook URLs may not point at private, loopback or link-local addresses ([::ffff:a00:1])"],
    ["http://localhost:8080/", STRICT, "Webhook URLs must use https"],
    ["https://localhost/", STRICT, "Webhook URLs may not point at local or internal host names (localhost)"],
    ["https://metadata.google.internal/", DEV, "Webhook URLs may not point at local or internal host names (metadata.google.internal)"],
  ] as const)("refuses %s with %o saying %j", (raw, options, message) => {
    expect(checkWebhookUrl(raw, options)).toStrictEqual({ ok: false, message });
  });
});
