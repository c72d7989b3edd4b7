/**
 * Which webhook URLs Cairn may POST to. API clients choose the URL and our server fetches it,
 * so a URL naming an internal address (a metadata service, a private network) would let a
 * client make the server call it for them (SSRF). This checks the URL as written; it does no
 * DNS lookup, since a Worker cannot resolve names itself. A public name that resolves to a
 * private address is caught after DNS by Cloudflare, which will not connect a Worker to one.
 */

export type UrlVerdict = { ok: true; url: URL } | { ok: false; message: string };

const MAX_URL_LENGTH = 2048;

/** The hosts `WEBHOOKS_ALLOW_HTTP=true` opens up, for a receiver on the developer's machine. */
const DEV_LOOPBACK_HOSTS: ReadonlySet<string> = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Names that only mean something inside a machine or a private network. */
const LOCAL_NAME_SUFFIXES = [".localhost", ".local", ".internal", ".home.arpa"];

/** Private, loopback, link-local and otherwise special IPv4 ranges, as [network, prefix length]. */
const REFUSED_IPV4: ReadonlyArray<[string, number]> = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, including the cloud metadata address 169.254.169.254
  ["172.16.0.0", 12],
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.168.0.0", 16],
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, including broadcast 255.255.255.255
];

/** First six IPv6 groups (in hex) of the prefixes whose last 32 bits are an IPv4 address. */
const EMBEDS_IPV4: ReadonlySet<string> = new Set([
  "0:0:0:0:0:ffff", // IPv4-mapped
  "64:ff9b:0:0:0:0", // NAT64
  "0:0:0:0:0:0", // deprecated IPv4-compatible
]);

/** Whether Cairn may POST webhooks to `raw`. */
export function checkWebhookUrl(raw: string, options: { allowHttp: boolean }): UrlVerdict {
  const url = parseAbsolute(raw);
  if (!url) return refuse("Not a valid absolute URL");
  if (raw.length > MAX_URL_LENGTH || url.href.length > MAX_URL_LENGTH) {
    return refuse(`Webhook URLs may be at most ${MAX_URL_LENGTH} characters`);
  }
  if (url.username || url.password) return refuse("Webhook URLs may not carry credentials");

  // "localhost." names the same host as "localhost".
  const host = url.hostname.replace(/\.+$/, "");
  const devLoopback = options.allowHttp && DEV_LOOPBACK_HOSTS.has(host);
  const schemeAllowed = url.protocol === "https:" || (devLoopback && url.protocol === "http:");
  if (!schemeAllowed) return refuse("Webhook URLs must use https");
  if (devLoopback) return { ok: true, url };

  const problem = hostProblem(host);
  return problem ? refuse(problem) : { ok: true, url };
}

const refuse = (message: string): UrlVerdict => ({ ok: false, message });

function parseAbsolute(raw: string): URL | undefined {
  try {
    return new URL(raw);
  } catch {
    return undefined;
  }
}

/** Why `host` (as the URL parser normalised it) is refused, or undefined when it is not. */
function hostProblem(host: string): string | undefined {
  const privateAddress = `Webhook URLs may not point at private, loopback or link-local addresses (${host})`;
  if (host.startsWith("[")) return isRefusedIpv6(parseIpv6(host.slice(1, -1))) ? privateAddress : undefined;

  const ipv4 = parseIpv4(host);
  if (ipv4 !== undefined) return isRefusedIpv4(ipv4) ? privateAddress : undefined;

  if (isLocalName(host)) return `Webhook URLs may not point at local or internal host names (${host})`;
  return undefined;
}

function isLocalName(host: string): boolean {
  if (!host.includes(".")) return true; // single label: "localhost", "intranet"
  return LOCAL_NAME_SUFFIXES.some((suffix) => host.endsWith(suffix));
}

/**
 * The address as an unsigned 32-bit number, or undefined when `host` is a name. The URL parser
 * has already turned decimal, hex, octal and short spellings into a dotted quad.
 */
function parseIpv4(host: string): number | undefined {
  const match = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
  if (!match) return undefined;
  const [a, b, c, d] = match.slice(1).map(Number) as [number, number, number, number];
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

function isRefusedIpv4(address: number): boolean {
  return REFUSED_IPV4.some(([network, bits]) => {
    const shift = 32 - bits;
    return address >>> shift === parseIpv4(network)! >>> shift;
  });
}

/**
 * The eight 16-bit groups of an IPv6 address as the URL parser writes it: lower-case hex,
 * at most one "::" standing for the zero groups it left out, never a dotted IPv4 tail.
 */
function parseIpv6(text: string): number[] {
  const [head = "", tail] = text.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const zeros: string[] = Array(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((group) => parseInt(group, 16));
}

function isRefusedIpv6(groups: number[]): boolean {
  const first = groups[0] ?? 0;
  if ((first & 0xffc0) === 0xfe80) return true; // fe80::/10 link-local
  if ((first & 0xfe00) === 0xfc00) return true; // fc00::/7 unique-local, including AWS's fd00:ec2::254
  if ((first & 0xff00) === 0xff00) return true; // ff00::/8 multicast

  const hex = groups.map((group) => group.toString(16));
  const address = hex.join(":");
  if (address === "0:0:0:0:0:0:0:0") return true; // :: unspecified
  if (address === "0:0:0:0:0:0:0:1") return true; // ::1 loopback
  if (!EMBEDS_IPV4.has(hex.slice(0, 6).join(":"))) return false;
  const [high = 0, low = 0] = groups.slice(6);
  return isRefusedIpv4(((high << 16) | low) >>> 0);
}
