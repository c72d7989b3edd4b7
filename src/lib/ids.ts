const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export type IdPrefix = "ws" | "key" | "agt" | "run" | "job" | "ct" | "id" | "evt" | "we" | "req" | "act" | "dlv" | "note";

let lastTime = 0;
let lastRandom = new Uint8Array(10);

/**
 * This isolate's clock for ids: the time (ms) and 80 random bits, where within one
 * millisecond the random part is incremented instead, so ids made one after another are
 * strictly increasing whatever their encoding.
 */
function stamp(now: number): { time: number; random: Uint8Array } {
  if (now <= lastTime) {
    increment(lastRandom);
    return { time: lastTime, random: lastRandom };
  }
  lastTime = now;
  lastRandom = crypto.getRandomValues(new Uint8Array(10));
  return { time: now, random: lastRandom };
}

/**
 * A ULID behind a type prefix: 48 bits of milliseconds then 80 random bits, Crockford
 * base32, so ids sort by creation time.
 */
export function newId(prefix: IdPrefix, now = Date.now()): string {
  const { time, random } = stamp(now);
  return `${prefix}_${encodeTime(time)}${encodeRandom(random)}`;
}

/**
 * A webhook message id, `msg_` then the same stamp in upper-case hex (12 digits of
 * milliseconds, 20 of randomness): D1's triggers make this shape in SQL (migrations/0010),
 * which base32 would not allow. Sorts by creation like the others.
 */
export function newMessageId(now = Date.now()): string {
  const { time, random } = stamp(now);
  const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, "0");
  return `msg_${hex(time, 12)}${[...random].map((b) => hex(b, 2)).join("")}`;
}

function encodeTime(time: number): string {
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[time % 32] + out;
    time = Math.floor(time / 32);
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += CROCKFORD[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

function increment(bytes: Uint8Array): void {
  for (let i = bytes.length - 1; i >= 0; i--) {
    bytes[i] = (bytes[i]! + 1) & 0xff;
    if (bytes[i] !== 0) return;
  }
}
