// `node --no-node-snapshot --import tsx bench/copy-to-postgres.ts` (N=20000 tokens by default)
//
// How fast `copy-to-postgres` moves an embedded database (src/db/copy-database.ts): N tokens are sealed and inserted
// directly into an in-memory PGlite, then copied into a new Postgres database on BENCH_DATABASE_URL's server
// (dropped after). Prints rows per second, the content hash check included. Not part of `npm run bench`.
import { performance } from 'node:perf_hooks';
import { copyDatabase } from '../src/db/copy-database.ts';
import { openDatabase } from '../src/db/database.ts';
import { insertSealedTokens, withScratchDatabase } from './lib/sealed-tokens.ts';

const N = Number(process.env.N ?? 20000);
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

await withScratchDatabase(SERVER, async (url) => {
  const source = await openDatabase({ kind: 'pglite', dataDir: undefined });
  await insertSealedTokens(source, Buffer.alloc(32, 1), N);
  const target = await openDatabase({ kind: 'postgres', url, poolSize: 2, applicationName: 'copy bench' });
  const t0 = performance.now();
  const report = await copyDatabase(source, target);
  const ms = performance.now() - t0;
  const rows = report.reduce((sum, table) => sum + table.rows, 0);
  console.log(`${rows} rows (${N} tokens) in ${Math.round(ms)} ms = ${Math.round(rows / (ms / 1000))} rows/s`);
  await target.close();
  await source.close();
});
