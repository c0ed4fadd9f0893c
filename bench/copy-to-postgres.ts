// `node --no-node-snapshot --import tsx bench/copy-to-postgres.ts` (N=20000 tokens by default)
//
// How fast `copy-to-postgres` moves an embedded database (src/db/copy-database.ts): N tokens are sealed and inserted
// directly into an in-memory PGlite, then copied into a new Postgres database on BENCH_DATABASE_URL's server
// (dropped after). Prints rows per second, the content hash check included. Not part of `npm run bench`.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { copyDatabase } from '../src/db/copy-database.ts';
import { openDatabase } from '../src/db/database.ts';
import { newId } from '../src/db/ids.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { verifyMasterKey } from '../src/tokens/key-check.ts';
import { createVault } from '../src/tokens/vault.ts';

const N = Number(process.env.N ?? 20000);
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const NAME = `rg_copy_bench_${process.pid}`;
const admin = new pg.Client({ connectionString: SERVER });
await admin.connect();
await admin.query(`create database ${NAME}`);
const url = new URL(SERVER);
url.pathname = `/${NAME}`;
try {
  const source = await openDatabase({ kind: 'pglite', dataDir: undefined });
  await migrateToLatest(source.db);
  const key = Buffer.alloc(32, 1);
  const vault = createVault(key);
  await verifyMasterKey(source.db, key, vault);
  const tenant = newId();
  await source.db
    .insertInto('tenants')
    .values({ id: tenant, name: 't' } as any)
    .execute();
  for (let i = 0; i < N; i += 1000) {
    const rows = Array.from({ length: Math.min(1000, N - i) }, (_, j) => {
      const id = newId();
      const data = { number: `42424242${String(i + j).padStart(8, '0')}` };
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
    await source.db
      .insertInto('tokens')
      .values(rows as any)
      .execute();
  }
  const target = await openDatabase({
    kind: 'postgres',
    url: url.toString(),
    poolSize: 2,
    applicationName: 'copy bench',
  });
  const t0 = performance.now();
  const report = await copyDatabase(source, target);
  const ms = performance.now() - t0;
  const rows = report.reduce((sum, table) => sum + table.rows, 0);
  console.log(`${rows} rows (${N} tokens) in ${Math.round(ms)} ms = ${Math.round(rows / (ms / 1000))} rows/s`);
  await target.close();
  await source.close();
} finally {
  await admin.query(`drop database if exists ${NAME} with (force)`);
  await admin.end();
}
