import { createHmac, createSecretKey, hkdfSync, type KeyObject, randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { SEALED_VERSION, seal, unseal } from './sealing.ts';

export { TokenDecryptionError } from './sealing.ts';

const KEY_BYTES = 32;

// A fixed, public salt: HKDF only needs it to separate this application's derivations from any other use of the
// same master key; the per-tenant separation comes from `info`.
const HKDF_SALT = Buffer.from('reactor-gateway/token-keys', 'utf8');
// Tenants are few compared with tokens, but a multi-tenant instance must not grow this without bound.
const TENANT_KEY_CACHE_SIZE = 10_000;

export interface Vault {
  encrypt(tenantId: string, tokenId: string, plaintext: string): Buffer;
  decrypt(tenantId: string, tokenId: string, sealed: Uint8Array): string;
  /** The tenant's data key itself (latin1), for the sandbox's worker threads to open `react`'s tokens (sealing.ts). */
  dataKey(tenantId: string): string;
  fingerprint(tenantId: string, type: string, data: unknown): string;
  /**
   * From now on every call throws `reason`: the database's tokens are no longer under this key (a rotation ran while
   * this gateway could not see it, src/app.ts), and sealing anything more under it would lose it.
   */
  revoke(reason: Error): void;
}

interface TenantKeys {
  encryption: KeyObject;
  /** The encryption key's bytes as a latin1 string, for task messages (SealedArgs). */
  encryptionLatin1: string;
  fingerprint: KeyObject;
}

export function createVault(masterKey: Buffer): Vault {
  if (!Buffer.isBuffer(masterKey) || masterKey.length !== KEY_BYTES) {
    throw new Error(`The master key must be ${KEY_BYTES} bytes.`);
  }
  // Copied so a caller zeroing or reusing its buffer cannot change the keys under us.
  const master = Buffer.from(masterKey);
  const cache = new LRUCache<string, TenantKeys>({ max: TENANT_KEY_CACHE_SIZE });

  let revoked: Error | undefined;

  function keysFor(tenantId: string): TenantKeys {
    if (revoked) throw revoked;
    let keys = cache.get(tenantId);
    if (!keys) {
      const encryption = deriveKey(master, `encryption/v${SEALED_VERSION}/${tenantId}`);
      keys = {
        encryption,
        encryptionLatin1: encryption.export().toString('latin1'),
        fingerprint: deriveKey(master, `fingerprint/v${SEALED_VERSION}/${tenantId}`),
      };
      cache.set(tenantId, keys);
    }
    return keys;
  }

  return {
    encrypt(tenantId, tokenId, plaintext) {
      return seal(keysFor(tenantId).encryption, tenantId, tokenId, plaintext);
    },

    decrypt(tenantId, tokenId, sealed) {
      return unseal(keysFor(tenantId).encryption, tenantId, tokenId, sealed);
    },

    dataKey(tenantId) {
      return keysFor(tenantId).encryptionLatin1;
    },

    fingerprint(tenantId, type, data) {
      return createHmac('sha256', keysFor(tenantId).fingerprint)
        .update(canonicalJson({ type, data }))
        .digest('base64url');
    },

    revoke(reason) {
      revoked = reason;
      cache.clear();
    },
  };
}

function deriveKey(master: Buffer, info: string): KeyObject {
  return createSecretKey(Buffer.from(hkdfSync('sha256', master, HKDF_SALT, info, KEY_BYTES)));
}

/**
 * JSON with object keys sorted at every level, so equal data fingerprints equally whatever order its keys arrived in.
 * `undefined` members are dropped, as JSON.stringify would.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    return text === undefined ? 'null' : text;
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  const record = value as Record<string, unknown>;
  const members: string[] = [];
  for (const key of Object.keys(record).sort()) {
    if (record[key] === undefined) continue;
    members.push(`${JSON.stringify(key)}:${canonicalJson(record[key])}`);
  }
  return `{${members.join(',')}}`;
}

const KEY_FILE = 'encryption.key';

/** Where embedded mode keeps its generated key. */
export function keyFilePath(dataDir: string): string {
  return join(dataDir, KEY_FILE);
}
const KEY_FORMAT_HINT =
  'ENCRYPTION_KEY must be 32 random bytes written as 64 hex characters or as base64 (e.g. `openssl rand -hex 32`).';

/**
 * The master key, from ENCRYPTION_KEY or, in embedded mode only, a key file generated on first start.
 * Server mode refuses to generate one: every instance behind the load balancer must decrypt every other's tokens.
 * An empty ENCRYPTION_KEY counts as absent, because shells and compose files turn an unset variable into "".
 */
export function loadMasterKey(options: { encryptionKey?: string; dataDir: string; embedded: boolean }): Buffer {
  const configured = options.encryptionKey?.trim();
  if (configured) return parseKey(configured, 'ENCRYPTION_KEY');
  if (!options.embedded) {
    throw new Error(
      'ENCRYPTION_KEY is required in server mode (DATABASE_URL is set): all gateway instances share one database ' +
        `and must share one key to read each other's tokens. ${KEY_FORMAT_HINT}`,
    );
  }
  return readOrCreateKeyFile(options.dataDir);
}

/** A key as ENCRYPTION_KEY and the key file hold it (64 hex characters or base64); errors name `source`, never the value. */
export function parseKey(text: string, source: string): Buffer {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(text)) {
    const key = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (key.length === KEY_BYTES) return key;
  }
  // Never echo the value: a mistyped key is still mostly a key.
  throw new Error(`${source} is not a valid encryption key. ${KEY_FORMAT_HINT}`);
}

function readOrCreateKeyFile(dataDir: string): Buffer {
  const path = keyFilePath(dataDir);
  const existing = readKeyFile(path);
  if (existing) return existing;

  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  const temp = writeTempKeyFile(dataDir, key);
  try {
    // link(), unlike rename(), fails when the target exists: two processes starting together cannot each install
    // their own key and leave half the tokens unreadable. Readers never see a partly written file either.
    linkSync(temp, path);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const winner = readKeyFile(path);
    if (!winner) throw error;
    return winner;
  } finally {
    unlinkSync(temp);
  }
}

function readKeyFile(path: string): Buffer | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  return parseKey(text.trim(), path);
}

/**
 * Replaces the embedded mode's key file (after a key rotation): written to a temporary file, flushed, then renamed
 * over the old one, so a crash leaves the old key or the new one, never half of either.
 */
export function replaceKeyFile(dataDir: string, key: Buffer): string {
  const path = keyFilePath(dataDir);
  renameSync(writeTempKeyFile(dataDir, key), path);
  return path;
}

/** The key in a new file of its own next to the key file, flushed to disk (owner-only); returns its path. */
function writeTempKeyFile(dataDir: string, key: Buffer): string {
  const temp = join(dataDir, `.${KEY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, `${key.toString('hex')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return temp;
}
