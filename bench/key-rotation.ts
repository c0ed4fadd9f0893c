// `node --no-node-snapshot --import tsx bench/key-rotation.ts` (N=20000 tokens by default)
//
// How fast `rotate-encryption-key` seals a database again (src/tokens/key-rotation.ts): N tokens are sealed under one
// key and inserted directly, then rotated to another, on Postgres (BENCH_DATABASE_URL's server, in a database of its
// own, dropped after) and on an in-memory PGlite; a few are then opened under the new key to check the work. Prints
// tokens per second. Not part of `npm run bench`.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { openDatabase } from '../src/db/database.ts';
import { newId } from '../src/db/ids.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { verifyMasterKey } from '../src/tokens/key-check.ts';
import { rotateMasterKey } from '../src/tokens/key-rotation.ts';
import { createVault } from '../src/tokens/vault.ts';

const N = Number(process.env.N ?? 20000);
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const NAME = `rg_rotation_bench_${process.pid}`;
const admin = new pg.Client({ connectionString: SERVER });
await admin.connect();
await admin.query(`create database ${NAME}`);
const url = new URL(SERVER);
url.pathname = `/${NAME}`;
const [A, B] = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
for (const target of [
  { kind: 'postgres', url: url.toString(), poolSize: 5, applicationName: 'rotation bench' },
  { kind: 'pglite', dataDir: undefined },
] as const) {
  const db = await openDatabase(target as any);
  await migrateToLatest(db.db);
  const vault = createVault(A);
  await verifyMasterKey(db.db, A, vault);
  const tenant = newId();
  await db.db
    .insertInto('tenants')
    .values({ id: tenant, name: 't' } as any)
    .execute();
  const sample: any[] = [];
  for (let i = 0; i < N; i += 1000) {
    const rows = Array.from({ length: 1000 }, (_, j) => {
      const id = newId();
      const data = { number: `42424242${String(i + j).padStart(8, '0')}` };
      if (sample.length < 3) sample.push({ id, data });
      return {
        id,
        tenant_id: tenant,
        type: 'TOKEN',
        data: vault.encrypt(tenant, id, JSON.stringify(data)),
        fingerprint: vault.fingerprint(tenant, 'TOKEN', data),
        metadata: '{}',
        containers: ['/general/high/'],
        created_by: tenant,
      };
    });
    await db.db
      .insertInto('tokens')
      .values(rows as any)
      .execute();
  }
  const t0 = performance.now();
  const counts = await rotateMasterKey(db, A, B);
  const ms = performance.now() - t0;
  const nv = createVault(B);
  for (const s of sample) {
    const row = await db.db.selectFrom('tokens').selectAll().where('id', '=', s.id).executeTakeFirstOrThrow();
    if (
      nv.decrypt(tenant, s.id, row.data) !== JSON.stringify(s.data) ||
      row.fingerprint !== nv.fingerprint(tenant, 'TOKEN', s.data)
    )
      throw new Error('bad reseal');
  }
  console.log(
    target.kind,
    counts.tokens,
    'tokens in',
    Math.round(ms),
    'ms =',
    Math.round(counts.tokens / (ms / 1000)),
    'tokens/s',
  );
  await db.close();
}
await admin.query(`drop database ${NAME} with (force)`);
await admin.end();
