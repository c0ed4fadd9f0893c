// `node --no-node-snapshot --import tsx bench/key-rotation.ts` (N=20000 tokens by default)
//
// How fast `rotate-encryption-key` seals a database again (src/tokens/key-rotation.ts): N tokens are sealed under one
// key and inserted directly, then rotated to another, on Postgres (BENCH_DATABASE_URL's server, in a database of its
// own, dropped after) and on an in-memory PGlite; a few are then opened under the new key to check the work. Prints
// tokens per second. Not part of `npm run bench`.
import { performance } from 'node:perf_hooks';
import { openDatabase } from '../src/db/database.ts';
import { rotateMasterKey } from '../src/tokens/key-rotation.ts';
import { createVault } from '../src/tokens/vault.ts';
import { insertSealedTokens, withScratchDatabase } from './lib/sealed-tokens.ts';

const N = Number(process.env.N ?? 20000);
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const [A, B] = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
await withScratchDatabase(SERVER, async (url) => {
  for (const target of [
    { kind: 'postgres', url, poolSize: 5, applicationName: 'rotation bench' },
    { kind: 'pglite', dataDir: undefined },
  ] as const) {
    const db = await openDatabase(target);
    const { tenant, sample } = await insertSealedTokens(db, A, N);
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
});
