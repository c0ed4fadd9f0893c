import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import type { DatabaseTarget } from '../../src/db/database.ts';

/**
 * Where a test file's gateway keeps its data: an in-memory PGlite by default, or, in the `postgres` project (when
 * TEST_DATABASE_URL is set), a database of its own created on that server and dropped afterwards, so runs and
 * files never see each other's rows.
 */
export interface TestDatabase {
  target: DatabaseTarget;
  /** A connection string to the same database for a second gateway instance (Postgres only). */
  url: string | null;
  drop(): Promise<void>;
}

export const usingPostgres = process.env.TEST_DB === 'postgres';

export async function createTestDatabase(): Promise<TestDatabase> {
  if (!usingPostgres) {
    const template = new Blob([await readFile(inject('pgliteTemplate'))]);
    return { target: { kind: 'pglite', dataDir: undefined, template }, url: null, drop: async () => {} };
  }
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) throw new Error('TEST_DB=postgres needs TEST_DATABASE_URL');
  const name = `rg_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await withAdmin(adminUrl, (client) => client.query(`create database ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    target: { kind: 'postgres', url: url.toString(), poolSize: 5 },
    url: url.toString(),
    drop: () =>
      withAdmin(adminUrl, (client) => client.query(`drop database if exists ${name} with (force)`)).then(() => {}),
  };
}

/** A database for restarts: gateways (or handles) opened on it one after another see the same rows. */
export interface LastingDatabase extends TestDatabase {
  /** Where the next one opens it. A PGlite directory is filled from the migrated template the first time only. */
  nextTarget(): DatabaseTarget;
}

/** A Postgres database of its own (as createTestDatabase's), or a PGlite directory in a temporary folder. */
export async function createLastingDatabase(): Promise<LastingDatabase> {
  if (usingPostgres) {
    const database = await createTestDatabase();
    return { ...database, nextTarget: () => database.target };
  }
  const folder = await mkdtemp(path.join(os.tmpdir(), 'rg-lasting-'));
  const template = new Blob([await readFile(inject('pgliteTemplate'))]);
  const dataDir = path.join(folder, 'pgdata');
  let opened = false;
  return {
    target: { kind: 'pglite', dataDir, template },
    url: null,
    drop: () => rm(folder, { recursive: true, force: true }),
    nextTarget() {
      const first = !opened;
      opened = true;
      return { kind: 'pglite', dataDir, template: first ? template : undefined };
    },
  };
}

async function withAdmin<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}
