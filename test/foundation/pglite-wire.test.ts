import { readFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.ts';
import { PgliteWire } from '../../src/db/pglite-wire.ts';
import { preparingPool } from '../../src/db/prepared-statements.ts';
import { usingPostgres } from '../support/database.ts';
import { until } from '../support/until.ts';

// The embedded database through pg (src/db/pglite-wire.ts). PGlite only, so not run again in the postgres project.
describe.skipIf(usingPostgres)('pg over PGlite', () => {
  let pglite: PGlite;

  beforeAll(async () => {
    pglite = await PGlite.create({ loadDataDir: new Blob([await readFile(inject('pgliteTemplate'))]) });
    await pglite.exec('create table items (name text primary key)');
  });

  afterAll(async () => {
    await pglite?.close();
  });

  async function connect(): Promise<pg.Client> {
    const client = new pg.Client({ stream: () => new PgliteWire(pglite) });
    await client.connect();
    return client;
  }

  it('runs queries with parameters, types and errors as pg does against Postgres', async () => {
    const client = await connect();
    const { rows } = await client.query(
      `select $1::text[] as containers, $2::jsonb as document, $3::timestamptz as at, $4::bytea as sealed`,
      [['/pci/', 'a,b'], { n: 1 }, new Date('2026-12-07T10:00:00Z'), Buffer.from([0, 255])],
    );
    expect(rows[0]).toEqual({
      containers: ['/pci/', 'a,b'],
      document: { n: 1 },
      at: new Date('2026-12-07T10:00:00Z'),
      sealed: Buffer.from([0, 255]),
    });
    const error = await client.query('select * from missing').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(pg.DatabaseError);
    expect(error).toMatchObject({ code: '42P01' });
    // The session goes on after an error, also inside a transaction after a rollback.
    await client.query('begin');
    await expect(client.query('insert into items values (null)')).rejects.toMatchObject({ code: '23502' });
    await client.query('rollback');
    expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await client.end();
  });

  it('rolls back the transaction of a client that ends inside it, as a dropped connection does', async () => {
    const first = await connect();
    await first.query('begin');
    await first.query(`insert into items values ('left open')`);
    await first.end();
    // Another client shares the session: without the rollback it would see the row, and be inside the transaction.
    const second = await connect();
    expect((await second.query(`select count(*)::int as n from items`)).rows).toEqual([{ n: 0 }]);
    expect((await second.query('select pg_current_xact_id_if_assigned() is null as idle')).rows).toEqual([
      { idle: true },
    ]);
    await second.end();
  });

  it('rolls back the transaction of a client whose stream is destroyed', async () => {
    const first = await connect();
    first.on('error', () => {});
    await first.query('begin');
    await first.query(`insert into items values ('destroyed')`);
    (first as unknown as { connection: { stream: PgliteWire } }).connection.stream.destroy();
    const second = await connect();
    await until('the rollback', async () =>
      (await second.query(`select count(*)::int as n from items`)).rows[0].n === 0 ? true : undefined,
    );
    await second.query(`insert into items values ('kept')`);
    expect((await second.query(`select name from items`)).rows).toEqual([{ name: 'kept' }]);
    await second.query('delete from items');
    await second.end();
  });

  it('starts a client without the prepared statements of the one before it, which pg would not expect', async () => {
    const first = await connect();
    first.on('error', () => {});
    const statement = (n: number) => ({ name: 'by_n', text: 'select $1::int as n', values: [n] });
    expect((await first.query(statement(1))).rows).toEqual([{ n: 1 }]);
    (first as unknown as { connection: { stream: PgliteWire } }).connection.stream.destroy();
    // pg prepares by_n again on the new connection: "already exists" (42P05) if the session still had it.
    const second = await connect();
    expect((await second.query(statement(2))).rows).toEqual([{ n: 2 }]);
    await second.end();
  });
});

describe.skipIf(usingPostgres)('the embedded database handle', () => {
  let database: DatabaseHandle;

  beforeAll(async () => {
    const template = new Blob([await readFile(inject('pgliteTemplate'))]);
    database = await openDatabase({ kind: 'pglite', dataDir: undefined, template });
  });

  afterAll(async () => {
    await database?.close();
  });

  it('delivers notifications to each listener of the channel, in order, until it stops listening', async () => {
    const first: string[] = [];
    const second: string[] = [];
    const stopFirst = await database.notifier.listen('wire_test', (payload) => first.push(payload));
    const stopSecond = await database.notifier.listen('wire_test', (payload) => second.push(payload));
    await database.notifier.notify('wire_test', ['a', 'b', 'c']);
    await until('three payloads each', () => (first.length === 3 && second.length === 3 ? true : undefined));
    expect(first).toEqual(['a', 'b', 'c']);
    await stopFirst();
    await database.notifier.notify('wire_test', ['d']);
    await until('the fourth payload', () => (second.length === 4 ? true : undefined));
    expect(first).toEqual(['a', 'b', 'c']);
    await stopSecond();
    await database.notifier.notify('wire_test', ['e']);
    await database.ping();
    expect(second).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe.skipIf(usingPostgres)('prepared statements on the embedded database', () => {
  let pglite: PGlite;
  let pool: pg.Pool;

  beforeAll(async () => {
    pglite = await PGlite.create({ loadDataDir: new Blob([await readFile(inject('pgliteTemplate'))]) });
    pool = new pg.Pool({ max: 1, idleTimeoutMillis: 0, stream: () => new PgliteWire(pglite) });
  });

  afterAll(async () => {
    await pool?.end();
    await pglite?.close();
  });

  const prepared = async () =>
    (
      await pool.query<{ name: string; statement: string }>(
        'select name, statement from pg_prepared_statements order by name',
      )
    ).rows;

  it('prepares each statement with parameters once, up to the limit, and leaves the others unnamed', async () => {
    const db = new Kysely<{ items: { n: number } }>({ dialect: new PostgresDialect({ pool: preparingPool(pool, 2) }) });
    // Several statements without parameters in one: only the simple protocol, and so no name, accepts it.
    await sql`create table items (n int); insert into items values (1), (2), (3)`.execute(db);
    const byN = (n: number) => db.selectFrom('items').select('n').where('n', '=', n).execute();
    expect(await byN(1)).toEqual([{ n: 1 }]);
    expect(await byN(2)).toEqual([{ n: 2 }]);
    const above = (n: number) => db.selectFrom('items').select('n').where('n', '>', n).orderBy('n').execute();
    expect(await above(1)).toEqual([{ n: 2 }, { n: 3 }]);
    expect(await above(2)).toEqual([{ n: 3 }]);
    // A third statement is past the limit of 2.
    expect(await db.selectFrom('items').select('n').where('n', '<', 2).execute()).toEqual([{ n: 1 }]);
    expect(await prepared()).toEqual([
      { name: 'rg0', statement: 'select "n" from "items" where "n" = $1' },
      { name: 'rg1', statement: 'select "n" from "items" where "n" > $1 order by "n"' },
    ]);
  });
});
