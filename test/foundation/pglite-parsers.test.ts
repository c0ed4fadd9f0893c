import { readFile } from 'node:fs/promises';
import { PGlite, types } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ARRAY_TYPES_IN_USE, trimParserTable } from '../../src/db/pglite-parsers.ts';
import { usingPostgres } from '../support/database.ts';

// The embedded database's trimmed table of result parsers (src/db/pglite-parsers.ts): it must parse every value
// our schema stores exactly as PGlite's full table does. PGlite only, so not run again in the postgres project.
describe.skipIf(usingPostgres)('PGlite parser table', () => {
  let pglite: PGlite;
  let full: PGlite['parsers'];
  /** Array types some column of the migrated schema has, with the columns. */
  let arrayColumns: { oid: number; element: number; columns: string }[];

  beforeAll(async () => {
    pglite = await PGlite.create({ loadDataDir: new Blob([await readFile(inject('pgliteTemplate'))]) });
    full = pglite.parsers;
    const result = await pglite.query<{ oid: number; element: number; columns: string }>(`
      select t.oid, t.typelem as element, string_agg(c.relname || '.' || a.attname, ', ' order by 1) as columns
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
      join pg_type t on t.oid = a.atttypid
      where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm') and a.attnum > 0 and not a.attisdropped
        and t.typcategory = 'A'
      group by t.oid, t.typelem`);
    arrayColumns = result.rows;
  });

  afterAll(async () => {
    await pglite?.close();
  });

  it('keeps a parser for the array type of every array column of the schema', () => {
    // Not vacuous: the schema has text[] columns.
    expect(arrayColumns.map(({ oid }) => oid)).toContain(1009);
    const kept = new Set(ARRAY_TYPES_IN_USE.map(({ array, element }) => `${array}/${element}`));
    const missing = arrayColumns.filter(({ oid, element }) => !kept.has(`${oid}/${element}`));
    expect(missing, 'add these array types to ARRAY_TYPES_IN_USE').toEqual([]);
  });

  it('drops only entries PGlite falls back to anyway, or array types no column has', async () => {
    const arrays = new Set(
      (await pglite.query<{ oid: number }>(`select oid from pg_type where typcategory = 'A'`)).rows.map(
        (row) => row.oid,
      ),
    );
    const inUse = new Set(ARRAY_TYPES_IN_USE.flatMap(({ array, element }) => [String(array), String(element)]));
    const dropped = Object.keys(full).filter((key) => !inUse.has(key));
    expect(dropped.length).toBeGreaterThan(100);
    const usedArrays = new Set(arrayColumns.map(({ oid }) => oid));
    const unsafe = dropped.filter(
      (key) => full[key] !== types.parsers[key] && (!arrays.has(Number(key)) || usedArrays.has(Number(key))),
    );
    expect(unsafe).toEqual([]);
  });

  it('parses every kind of value the schema stores as the full table does', async () => {
    const row = `select '{"a,b",c,"with \\"quote\\"",NULL}'::text[] as containers, '{}'::text[] as none,
      '{"n":1,"s":"x","a":[true,null]}'::jsonb as document, '2026-12-07T10:00:00.123Z'::timestamptz as at,
      9007199254740991::int8 as big, 42::int4 as small, true as flag, '\\x00ff10'::bytea as sealed,
      '01a250d3-71e4-7796-a9f4-d7b311299a6f'::uuid as id, 'text'::text as name, 1.5::float8 as ratio,
      count(*) as count from (values (1), (2)) as v(x)`;
    pglite.parsers = full;
    const before = (await pglite.query<Record<string, unknown>>(row)).rows[0];
    trimParserTable(pglite);
    expect(Object.keys(pglite.parsers).length).toBeLessThan(10);
    const after = (await pglite.query<Record<string, unknown>>(row)).rows[0];
    expect(after).toEqual(before);
    // Parsed, not left as Postgres's text.
    expect(after).toMatchObject({
      containers: ['a,b', 'c', 'with "quote"', null],
      none: [],
      document: { n: 1, s: 'x', a: [true, null] },
      at: new Date('2026-12-07T10:00:00.123Z'),
      big: 9007199254740991,
      small: 42,
      flag: true,
      sealed: new Uint8Array([0, 255, 16]),
      count: 2,
    });
  });
});
