import { createCipheriv, createDecipheriv, type KeyObject, randomBytes } from 'node:crypto';
import { setOwn } from './expressions/walk.ts';

/**
 * Token data sealed with a tenant's data key: AES-256-GCM bound to (tenant, token) by its associated data.
 * Pure functions of a key, so the vault (main thread) and the sandbox's worker threads, which open the tokens of a
 * `react` just before the formula runs (src/runtime/worker.ts), share one implementation.
 *
 * Sealed layout: version (1 byte) | nonce (12) | ciphertext | GCM tag (16).
 * The version byte lets a later key-rotation or algorithm change coexist with rows written today.
 */
export const SEALED_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES;

/** Integrity failure of a stored token: a programming or storage fault, never the client's doing (so a 500). */
export class TokenDecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenDecryptionError';
  }
}

export function seal(key: KeyObject | Buffer, tenantId: string, tokenId: string, plaintext: string): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(tenantId, tokenId));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.of(SEALED_VERSION), nonce, body, cipher.getAuthTag()]);
}

/** The plaintext, or TokenDecryptionError (PGlite returns bytea as a Uint8Array, pg as a Buffer; both work). */
export function unseal(key: KeyObject | Buffer, tenantId: string, tokenId: string, data: Uint8Array): string {
  const sealed = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (sealed.length < HEADER_BYTES + TAG_BYTES) throw new TokenDecryptionError('Sealed token data is truncated.');
  if (sealed[0] !== SEALED_VERSION) {
    throw new TokenDecryptionError(`Sealed token data has unknown version ${sealed[0]}.`);
  }
  const nonce = sealed.subarray(1, HEADER_BYTES);
  const body = sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData(tenantId, tokenId));
    decipher.setAuthTag(tag);
    // GCM is a stream mode: update() gives every byte and final() only checks the tag (it throws on a mismatch,
    // before anything is returned). Text is decoded once at the end, not through a StringDecoder.
    const plain = decipher.update(body);
    const rest = decipher.final();
    return (rest.length === 0 ? plain : Buffer.concat([plain, rest])).toString('utf8');
  } catch {
    // Deliberately vague: wrong key, wrong tenant/token binding and tampering all look the same.
    throw new TokenDecryptionError('Token data failed authentication and could not be decrypted.');
  }
}

// Length-prefixed so no choice of ids can make two different (tenant, token) pairs produce the same bytes.
function additionalData(tenantId: string, tokenId: string): Buffer {
  const tenantBytes = Buffer.byteLength(tenantId, 'utf8');
  const tokenBytes = Buffer.byteLength(tokenId, 'utf8');
  const aad = Buffer.allocUnsafe(9 + tenantBytes + tokenBytes);
  aad.writeUInt8(SEALED_VERSION, 0);
  aad.writeUInt32BE(tenantBytes, 1);
  aad.writeUInt32BE(tokenBytes, 5);
  aad.write(tenantId, 9, 'utf8');
  aad.write(tokenId, 9 + tenantBytes, 'utf8');
  return aad;
}

/**
 * Deferred detokenization: the tokens a `react` call's args reference, still sealed, and where their data goes.
 * Built on the main thread when every expression in the args is a whole `{{ <id> }}` (src/tokens/service.ts) and
 * opened by `openSealedArgs` on the worker thread that runs the formula, so the main thread, which serves every
 * request, does not pay for the decryption (DESIGN.md section 4, BENCHMARKS.md).
 */
export interface SealedArgs {
  tenantId: string;
  /**
   * The tenant's data key (Vault.dataKey) and each token's sealed bytes, as latin1 strings (one character per byte):
   * a string crosses to the worker as one copy, where a Uint8Array costs an ArrayBuffer on each side per request,
   * and freeing those is work for the garbage collector's threads under load (BENCHMARKS.md, sixteenth session).
   */
  key: string;
  tokens: { id: string; data: string }[];
  /** Each `{{ <id> }}` string of the args: its path of keys from the args root ([] for the root) and its token. */
  sites: { path: (string | number)[]; token: number }[];
}

/**
 * Puts each token's data where its expression was, in place: `args` is the worker's own copy of the args (the task
 * message was cloned). Throws TokenDecryptionError if a token's data does not open.
 */
export function openSealedArgs(args: unknown, sealed: SealedArgs): unknown {
  const key = Buffer.from(sealed.key, 'latin1');
  const data = sealed.tokens.map(
    ({ id, data }) => JSON.parse(unseal(key, sealed.tenantId, id, Buffer.from(data, 'latin1'))) as unknown,
  );
  let root = args;
  for (const { path, token } of sealed.sites) {
    if (path.length === 0) {
      root = data[token];
      continue;
    }
    let holder = root as Record<string | number, unknown>;
    for (let i = 0; i < path.length - 1; i++) holder = holder[path[i] as string | number] as typeof holder;
    setOwn(holder, path[path.length - 1] as string | number, data[token]);
  }
  return root;
}
