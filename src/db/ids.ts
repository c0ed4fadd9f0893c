import { randomFillSync } from 'node:crypto';

/**
 * New row ids are UUIDv7 (RFC 9562): unique like v4, but ordered by creation time, which keyset pagination relies
 * on. Within one millisecond the 12-bit `rand_a` field is a counter (the RFC's "method 1"), so ids made by this
 * process are strictly increasing.
 *
 * Written here rather than taken from `uuid`: its v7 calls `crypto.getRandomValues` for 16 bytes on every id, which
 * measured about 10 us per call and 3.5% of the main thread under `react` load (each `react` makes a request id);
 * here random bytes come from a pool refilled 4 KB at a time. `uuid` with explicit random bytes gives up its
 * per-millisecond counter, which is the part that keeps ids ordered.
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolOffset = POOL_BYTES;
let lastMs = -1;
let counter = 0;
const MAX_COUNTER = 0xfff;

export function newId(): string {
  if (poolOffset + 16 > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const bytes = pool.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    // A random start in the lower half leaves room for 2,048+ ids in this millisecond before borrowing the next.
    counter = ((bytes[6]! << 8) | bytes[7]!) & 0x7ff;
  } else if (counter < MAX_COUNTER) {
    counter++;
  } else {
    // Counter exhausted, or the clock went back: move to the next millisecond rather than repeat or reorder.
    lastMs++;
    counter = 0;
  }
  bytes.writeUIntBE(lastMs, 0, 6);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a UUID in its usual form (any version), as ids are. */
export function isUuid(text: string): boolean {
  return UUID_PATTERN.test(text);
}
