import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, createVault, loadMasterKey, TokenDecryptionError } from '../../src/tokens/vault.ts';

const vault = createVault(randomBytes(32));
const tenant = () => randomUUID();
const tempDir = () => mkdtempSync(join(tmpdir(), 'vault-test-'));

describe('encryption at rest', () => {
  it('round-trips random strings, including unicode and the empty string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), (plaintext) => {
        const tenantId = tenant();
        const tokenId = randomUUID();
        expect(vault.decrypt(tenantId, tokenId, vault.encrypt(tenantId, tokenId, plaintext))).toBe(plaintext);
      }),
    );
  });

  it('never stores the plaintext inside the ciphertext', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 8, maxLength: 200 }), (plaintext) => {
        const sealed = vault.encrypt(tenant(), randomUUID(), plaintext);
        expect(sealed.includes(Buffer.from(plaintext, 'utf8'))).toBe(false);
      }),
    );
  });

  it('uses a fresh nonce on every write, so equal data never encrypts equally', () => {
    const tenantId = tenant();
    const tokenId = randomUUID();
    const first = vault.encrypt(tenantId, tokenId, '4242424242424242');
    const second = vault.encrypt(tenantId, tokenId, '4242424242424242');
    expect(first.equals(second)).toBe(false);
    expect(first.subarray(1, 13).equals(second.subarray(1, 13))).toBe(false);
  });

  it('starts every sealed value with version byte 1 and adds nonce and tag (29 bytes of overhead)', () => {
    const sealed = vault.encrypt(tenant(), randomUUID(), 'abc');
    expect(sealed[0]).toBe(1);
    expect(sealed.length).toBe(1 + 12 + 3 + 16);
  });

  it('refuses to decrypt a row copied to another tenant', () => {
    const tokenId = randomUUID();
    const sealed = vault.encrypt(tenant(), tokenId, 'secret');
    expect(() => vault.decrypt(tenant(), tokenId, sealed)).toThrow(TokenDecryptionError);
  });

  it('refuses to decrypt a row copied to another token id in the same tenant', () => {
    const tenantId = tenant();
    const sealed = vault.encrypt(tenantId, randomUUID(), 'secret');
    expect(() => vault.decrypt(tenantId, randomUUID(), sealed)).toThrow(TokenDecryptionError);
  });

  it('refuses a ciphertext with any flipped bit', () => {
    const tenantId = tenant();
    const tokenId = randomUUID();
    const sealed = vault.encrypt(tenantId, tokenId, 'secret data');
    for (let byte = 1; byte < sealed.length; byte++) {
      const tampered = Buffer.from(sealed);
      tampered[byte] = (tampered[byte] ?? 0) ^ 0x01;
      expect(() => vault.decrypt(tenantId, tokenId, tampered)).toThrow(TokenDecryptionError);
    }
  });

  it('refuses truncated data and an unknown version byte', () => {
    const tenantId = tenant();
    const tokenId = randomUUID();
    const sealed = vault.encrypt(tenantId, tokenId, 'x');
    expect(() => vault.decrypt(tenantId, tokenId, sealed.subarray(0, 20))).toThrow(/truncated/);
    const future = Buffer.from(sealed);
    future[0] = 2;
    expect(() => vault.decrypt(tenantId, tokenId, future)).toThrow(/unknown version/);
  });

  it('cannot decrypt with a different master key', () => {
    const tenantId = tenant();
    const tokenId = randomUUID();
    const sealed = vault.encrypt(tenantId, tokenId, 'secret');
    expect(() => createVault(randomBytes(32)).decrypt(tenantId, tokenId, sealed)).toThrow(TokenDecryptionError);
  });

  it('decrypts with a second vault built from the same master key (another instance)', () => {
    const key = randomBytes(32);
    const tenantId = tenant();
    const tokenId = randomUUID();
    expect(createVault(key).decrypt(tenantId, tokenId, createVault(key).encrypt(tenantId, tokenId, 'shared'))).toBe(
      'shared',
    );
  });

  it('rejects a master key that is not 32 bytes', () => {
    expect(() => createVault(randomBytes(16))).toThrow(/32 bytes/);
  });
});

describe('fingerprints', () => {
  it('are equal for equal data in one tenant, whatever the key order', () => {
    const tenantId = tenant();
    const a = vault.fingerprint(tenantId, 'CARD', { number: '4242424242424242', expiration_month: 12 });
    const b = vault.fingerprint(tenantId, 'CARD', { expiration_month: 12, number: '4242424242424242' });
    expect(a).toBe(b);
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('differ across tenants for the same data', () => {
    expect(vault.fingerprint(tenant(), 'TOKEN', 'abc')).not.toBe(vault.fingerprint(tenant(), 'TOKEN', 'abc'));
  });

  it('differ for different data and for the same data under another type', () => {
    const tenantId = tenant();
    expect(vault.fingerprint(tenantId, 'TOKEN', 'abc')).not.toBe(vault.fingerprint(tenantId, 'TOKEN', 'abd'));
    expect(vault.fingerprint(tenantId, 'TOKEN', '1')).not.toBe(vault.fingerprint(tenantId, 'TOKEN', 1));
    expect(vault.fingerprint(tenantId, 'TOKEN', 'abc')).not.toBe(vault.fingerprint(tenantId, 'CARD', 'abc'));
  });

  it('are reproducible from the same master key and change with it', () => {
    const key = randomBytes(32);
    const tenantId = tenant();
    expect(createVault(key).fingerprint(tenantId, 'TOKEN', 'a')).toBe(
      createVault(key).fingerprint(tenantId, 'TOKEN', 'a'),
    );
    expect(createVault(randomBytes(32)).fingerprint(tenantId, 'TOKEN', 'a')).not.toBe(
      createVault(key).fingerprint(tenantId, 'TOKEN', 'a'),
    );
  });

  it('canonical JSON sorts keys at every level and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[2,{"y":2,"z":1}]},"b":1}',
    );
  });
});

describe('loading the master key', () => {
  const hex = randomBytes(32).toString('hex');

  it('accepts 64 hex characters', () => {
    expect(loadMasterKey({ encryptionKey: hex, dataDir: tempDir(), embedded: false }).toString('hex')).toBe(hex);
  });

  it('accepts base64 and base64url of 32 bytes', () => {
    const key = randomBytes(32);
    expect(loadMasterKey({ encryptionKey: key.toString('base64'), dataDir: tempDir(), embedded: false })).toEqual(key);
    expect(loadMasterKey({ encryptionKey: key.toString('base64url'), dataDir: tempDir(), embedded: true })).toEqual(
      key,
    );
  });

  it('rejects a key of the wrong length or alphabet with a clear message that does not echo it', () => {
    for (const encryptionKey of [hex.slice(2), randomBytes(16).toString('base64'), 'not a key', `${hex}00`]) {
      let message = '';
      try {
        loadMasterKey({ encryptionKey, dataDir: tempDir(), embedded: true });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/ENCRYPTION_KEY is not a valid encryption key/);
      expect(message).not.toContain(encryptionKey);
    }
  });

  it('requires ENCRYPTION_KEY in server mode and says why', () => {
    expect(() => loadMasterKey({ dataDir: tempDir(), embedded: false })).toThrow(/server mode.*DATABASE_URL.*share/s);
  });

  it('treats an empty ENCRYPTION_KEY as absent', () => {
    expect(() => loadMasterKey({ encryptionKey: '', dataDir: tempDir(), embedded: false })).toThrow(/server mode/);
  });

  it('generates a key file once in embedded mode, mode 0600, and reuses it on restart', () => {
    const dataDir = join(tempDir(), 'nested', 'data');
    const first = loadMasterKey({ dataDir, embedded: true });
    expect(first.length).toBe(32);
    const file = join(dataDir, 'encryption.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadMasterKey({ dataDir, embedded: true })).toEqual(first);
    expect(readdirSync(dataDir)).toEqual(['encryption.key']);
  });

  it('prefers ENCRYPTION_KEY over an existing key file', () => {
    const dataDir = tempDir();
    loadMasterKey({ dataDir, embedded: true });
    expect(loadMasterKey({ encryptionKey: hex, dataDir, embedded: true }).toString('hex')).toBe(hex);
  });

  it('refuses a corrupt key file instead of replacing it', () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'encryption.key'), 'garbage\n');
    expect(() => loadMasterKey({ dataDir, embedded: true })).toThrow(/encryption\.key is not a valid encryption key/);
  });
});
