import { existsSync } from 'node:fs';
import path from 'node:path';
import { sql, type Transaction } from 'kysely';
import type { Config } from '../config.ts';
import { type DatabaseHandle, GATEWAY_PRESENCE_LOCK, openDatabase } from './database.ts';
import { migrateToLatest } from './migrator.ts';

/** Rows of each table copied, in the order they were copied. */
export type CopyReport = { table: string; rows: number }[];

/** What the migrations themselves insert (the official formulas): present on both sides, never copied. */
const SEEDED: Record<string, string> = { reactor_formulas: 'tenant_id is null' };

const BATCH = 1_000;

interface Column {
  name: string;
  /** As `format_type` spells it (`uuid`, `jsonb`, `text[]`, `timestamp with time zone`): the cast back from text. */
  type: string;
}

/**
 * Copies every row of the gateway's tables from `source` to `target` (an embedded database to Postgres, when moving
 * from one gateway to several), as they are: token data stays sealed under the same key, ids, timestamps and keys'
 * hashes are kept, so the same ENCRYPTION_KEY, API keys and ids work on the target.
 *
 * Each value travels as its text form and is cast back on the target, so nothing is rounded on the way (a
 * JavaScript Date would drop timestamps' microseconds) and `json` columns keep their text byte for byte. Tables go
 * in foreign-key order, in one target transaction: a failure leaves the target as it was. The target must hold no
 * data (only what its migrations insert), and no gateway may be running on it. Each table's rows are then compared
 * on both sides by a hash of their text forms, inside that transaction, before it commits.
 */
export async function copyDatabase(
  source: DatabaseHandle,
  target: DatabaseHandle,
  options: { batchSize?: number } = {},
): Promise<CopyReport> {
  await refuseForeignTables(target);
  await migrateToLatest(source.db);
  await migrateToLatest(target.db);
  return source.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute((from) =>
      target.db.transaction().execute(async (into) => {
        // The text forms (and the hashes compared at the end) are the same on both sides only under one time zone.
        await sql`set local timezone = 'UTC'`.execute(from);
        await sql`set local timezone = 'UTC'`.execute(into);
        const { rows: lock } = await sql<{ free: boolean }>`
          select pg_try_advisory_xact_lock(${GATEWAY_PRESENCE_LOCK}) as free`.execute(into);
        if (!lock[0]?.free) {
          throw new Error('A gateway is running on the target database: copy into a database no gateway uses.');
        }
        const tables = await copyOrder(from);
        for (const table of tables) await refuseUnlessEmpty(into, table);
        const report: CopyReport = [];
        for (const table of tables) {
          const columns = await columnsOf(from, table);
          const theirs = await columnsOf(into, table);
          if (JSON.stringify(columns) !== JSON.stringify(theirs)) {
            throw new Error(`The table ${table} differs between the two databases: nothing was copied.`);
          }
          const rows = await copyTable(from, into, table, columns, options.batchSize ?? BATCH);
          const [ours, copied] = [await contentHash(from, table), await contentHash(into, table)];
          if (ours !== copied) throw new Error(`The copy of ${table} differs from its source: nothing was copied.`);
          report.push({ table, rows });
        }
        return report;
      }),
    );
}

/** A target with tables but not the gateway's (a DATABASE_URL naming another application's database) is left alone. */
async function refuseForeignTables(target: DatabaseHandle): Promise<void> {
  const { rows } = await sql<{ ours: string | null; tables: number }>`
    select to_regclass('kysely_migration')::text as ours,
      (select count(*)::int from pg_tables where schemaname = current_schema()) as tables`.execute(target.db);
  if (!rows[0]?.ours && (rows[0]?.tables ?? 0) > 0) {
    throw new Error(
      'The target database holds tables of something other than reactor-gateway: copy into a new database. ' +
        'Nothing was copied.',
    );
  }
}

/** The gateway's tables (every table of the schema but the migrator's own), each after those it references. */
async function copyOrder(db: Transaction<any>): Promise<string[]> {
  const { rows: tables } = await sql<{ name: string }>`
    select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema() and c.relkind in ('r', 'p') and c.relname not like 'kysely_migration%'
    order by c.relname`.execute(db);
  const { rows: references } = await sql<{ child: string; parent: string }>`
    select child.relname as child, parent.relname as parent from pg_constraint k
    join pg_class child on child.oid = k.conrelid join pg_class parent on parent.oid = k.confrelid
    join pg_namespace n on n.oid = child.relnamespace
    where k.contype = 'f' and n.nspname = current_schema() and k.conrelid <> k.confrelid`.execute(db);
  const ordered: string[] = [];
  const pending = new Set(tables.map((table) => table.name));
  while (pending.size > 0) {
    const ready = [...pending].filter((table) =>
      references.every((reference) => reference.child !== table || !pending.has(reference.parent)),
    );
    if (ready.length === 0) throw new Error(`The tables ${[...pending].join(', ')} reference each other in a cycle.`);
    for (const table of ready) {
      ordered.push(table);
      pending.delete(table);
    }
  }
  return ordered;
}

async function columnsOf(db: Transaction<any>, table: string): Promise<Column[]> {
  const { rows } = await sql<Column>`
    select a.attname as name, format_type(a.atttypid, a.atttypmod) as type from pg_attribute a
    where a.attrelid = ${table}::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
    order by a.attname`.execute(db);
  return rows;
}

/** The rows a copy takes: all but what the migrations insert on every database. */
function copied(table: string) {
  const seeded = SEEDED[table];
  return seeded ? sql`${sql.table(table)} as t where not (${sql.raw(seeded)})` : sql`${sql.table(table)} as t`;
}

async function refuseUnlessEmpty(db: Transaction<any>, table: string): Promise<void> {
  const { rows } = await sql<{ present: boolean }>`select exists (select from ${copied(table)}) as present`.execute(db);
  if (rows[0]?.present) {
    throw new Error(
      `The target database already holds data (in ${table}): copy into a new database, or one only migrated. ` +
        'A gateway started on it creates a default tenant. Nothing was copied.',
    );
  }
}

/** Through a cursor, a batch at a time; each batch is one INSERT of one text array per column. */
async function copyTable(
  from: Transaction<any>,
  into: Transaction<any>,
  table: string,
  columns: Column[],
  batch: number,
): Promise<number> {
  const names = sql.join(columns.map((column) => sql.ref(column.name)));
  const asText = sql.join(
    columns.map((column, index) => sql`${sql.ref(column.name)}::text as ${sql.ref(`c${index}`)}`),
  );
  const castBack = sql.join(columns.map((column) => sql`${sql.ref(`u.${column.name}`)}::${sql.raw(column.type)}`));
  await sql`declare copy_rows no scroll cursor for select ${asText} from ${copied(table)}`.execute(from);
  let count = 0;
  for (;;) {
    const { rows } = await sql<Record<string, string | null>>`fetch ${sql.lit(batch)} from copy_rows`.execute(from);
    if (rows.length === 0) break;
    const arrays = columns.map((_, index) => rows.map((row) => row[`c${index}`] ?? null));
    await sql`insert into ${sql.table(table)} (${names})
      select ${castBack} from unnest(${sql.join(arrays.map((values) => sql`${values}::text[]`))}) as u(${names})`.execute(
      into,
    );
    count += rows.length;
  }
  await sql`close copy_rows`.execute(from);
  return count;
}

/** One hash over the text form of every copied row, in a fixed order. */
async function contentHash(db: Transaction<any>, table: string): Promise<string> {
  const { rows } = await sql<{ hash: string | null }>`
    select md5(string_agg(row_hash, '' order by row_hash)) as hash
    from (select md5(t::text) as row_hash from ${copied(table)}) hashes`.execute(db);
  return rows[0]?.hash ?? '';
}

/**
 * The `copy-to-postgres` command: from the embedded database in DATA_DIR to the Postgres database at DATABASE_URL.
 * The embedded database is left as it was, only migrated to this version first (and locked meanwhile, so no gateway
 * may run on it).
 */
export async function runCopyToPostgres(config: Config): Promise<string> {
  if (config.database.kind !== 'postgres') {
    throw new Error('Set DATABASE_URL to the Postgres database to copy into (DATA_DIR names the embedded one).');
  }
  const sourceDir = path.join(config.dataDir, 'pgdata');
  if (!existsSync(sourceDir)) throw new Error(`There is no embedded database in ${config.dataDir}: nothing to copy.`);
  const source = await openDatabase({ kind: 'pglite', dataDir: sourceDir });
  try {
    const target = await openDatabase({ ...config.database, applicationName: 'reactor-gateway copy' });
    try {
      const report = await copyDatabase(source, target);
      const keyFile = path.join(config.dataDir, 'encryption.key');
      const key = config.encryptionKey?.trim()
        ? 'the same ENCRYPTION_KEY'
        : `ENCRYPTION_KEY set to the contents of ${keyFile}`;
      return [
        `Copied ${report.map(({ table, rows }) => `${table}: ${rows}`).join(', ')}.`,
        `Start the gateways with DATABASE_URL and ${key}: tokens are sealed under it, and it is refused otherwise.`,
        `API keys and ids are the same. The embedded database in ${config.dataDir} is unchanged.`,
      ].join('\n');
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}
