import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys: `key_` + 32 random bytes (base64url). Only a SHA-256 of the key is stored; the key is shown once.
 * A fast hash is right here (unlike passwords): the key has 256 bits of entropy, so there is nothing to brute-force,
 * and an indexed lookup by hash costs one probe instead of a scan over every key.
 */
export function generateApiKey(): string {
  return `key_${randomBytes(32).toString('base64url')}`;
}

/** Every authenticated request hashes its key; the one-shot `hash` (Node 20.12) costs half of a `createHash` chain. */
export function hashApiKey(key: string): string {
  return hash('sha256', key, 'base64url');
}

/** The first characters, stored to let an operator recognise a key without being able to use it. */
export function keyPrefix(key: string): string {
  return key.slice(0, 10);
}

/**
 * Short-lived keys minted for a reactor run: `req.bt` inside a formula acts as the reactor's application, but the
 * application's real key is stored only as a hash. So the gateway signs `{applicationId, expiry}` with a secret
 * derived from its master key; every instance sharing that key accepts it, and it dies with its expiry.
 */
const INVOCATION_KEY_PREFIX = 'rik_';

export function mintInvocationKey(secret: Buffer, applicationId: string, ttlMs: number, now = Date.now()): string {
  const body = `${applicationId}.${now + ttlMs}`;
  const signature = createHmac('sha256', secret).update(body).digest('base64url');
  return `${INVOCATION_KEY_PREFIX}${body}.${signature}`;
}

export function verifyInvocationKey(secret: Buffer, key: string, now = Date.now()): string | null {
  if (!key.startsWith(INVOCATION_KEY_PREFIX)) return null;
  const [applicationId, expiry, signature] = key.slice(INVOCATION_KEY_PREFIX.length).split('.');
  if (!applicationId || !expiry || !signature) return null;
  const expected = createHmac('sha256', secret).update(`${applicationId}.${expiry}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  if (Number(expiry) < now) return null;
  return applicationId;
}
