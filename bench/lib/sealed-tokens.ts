import { randomBytes } from 'node:crypto';
import type { DatabaseHandle } from '../../src/db/database.ts';
import { newId } from '../../src/db/ids.ts';
import { migrateToLatest } from '../../src/db/migrator.ts';
import { verifyMasterKey } from '../../src/tokens/key-check.ts';
import { createVault } from '../../src/tokens/vault.ts';
import { withClient } from './gateway.ts';

// For the standalone scripts that measure a whole-database command (bench/key-rotation.ts,
// bench/copy-to-postgres.ts): a scratch Postgres database, and tokens sealed and inserted directly.

/** Runs `use` with the URL of a new database on `serverUrl`'s server, dropped afterwards whatever happens. */
export async function withScratchDatabase<T>(serverUrl: string, use: (url: string) => Promise<T>): Promise<T> {
  const name = `rg_bench_scratch_${randomBytes(4).toString('hex')}`;
  await withClient(serverUrl, (client) => client.query(`create database ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  try {
    return await use(url.toString());
  } finally {
    await withClient(serverUrl, (client) => client.query(`drop database if exists ${name} with (force)`));
  }
}

export interface SealedToken {
  id: string;
  data: { number: string };
}

/**
 * Migrates `database`, records `masterKey` as its key, and inserts one tenant with `count` TOKEN tokens sealed under
 * that key, 1,000 to a statement. Returns the tenant and the first three tokens, to check the work afterwards.
 */
export async function insertSealedTokens(
  database: DatabaseHandle,
  masterKey: Buffer,
  count: number,
): Promise<{ tenant: string; sample: SealedToken[] }> {
  await migrateToLatest(database.db);
  const vault = createVault(masterKey);
  await verifyMasterKey(database.db, masterKey, vault);
  const tenant = newId();
  await database.db
    .insertInto('tenants')
    .values({ id: tenant, name: 't' } as any)
    .execute();
  const sample: SealedToken[] = [];
  for (let i = 0; i < count; i += 1000) {
    const rows = Array.from({ length: Math.min(1000, count - i) }, (_, j) => {
      const id = newId();
      const data = { number: `42424242${String(i + j).padStart(8, '0')}` };
      if (sample.length < 3) sample.push({ id, data });
      return {
        id,
        tenant_id: tenant,
        type: 'TOKEN',
        data: vault.encrypt(tenant, id, JSON.stringify(data)),
        fingerprint: vault.fingerprint(tenant, 'TOKEN', data),
        metadata: JSON.stringify({ customer: `c${i + j}` }),
        containers: ['/general/high/'],
        created_by: tenant,
      };
    });
    await database.db
      .insertInto('tokens')
      .values(rows as any)
      .execute();
  }
  return { tenant, sample };
}
