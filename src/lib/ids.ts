const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export type IdPrefix = "ws" | "key" | "agt" | "run" | "job" | "ct" | "id" | "evt" | "we" | "req" | "act" | "dlv" | "note";

let lastTime = 0;
let lastRandom = new Uint8Array(10);

/**
 * A ULID behind a type prefix: 48 bits of milliseconds then 80 random bits, Crockford
 * base32, so ids sort by creation time. Within one millisecond the random part is
 * incremented, keeping ids from one isolate strictly increasing.
 */
export function newId(prefix: IdPrefix, now = Date.now()): string {
  if (now <= lastTime) {
    now = lastTime;
    increment(lastRandom);
  } else {
    lastTime = now;
    lastRandom = crypto.getRandomValues(new Uint8Array(10));
  }
  return `${prefix}_${encodeTime(now)}${encodeRandom(lastRandom)}`;
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
