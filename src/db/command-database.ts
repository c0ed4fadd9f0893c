import { existsSync } from 'node:fs';
import { sql } from 'kysely';
import type { Config } from '../config.ts';
import { type DatabaseHandle, openDatabase } from './database.ts';
import { migrateToLatest } from './migrator.ts';

/**
 * For a command that works on an existing gateway's data (`rotate-encryption-key`, `create-management-key`): refuses
 * an embedded database that is not there, saying `whenEmpty`, before anything is created in DATA_DIR.
 */
export function refuseMissingEmbedded(config: Config, whenEmpty: string): void {
  if (config.database.kind === 'pglite' && !existsSync(config.database.dataDir)) {
    throw new Error(`There is no embedded database in ${config.dataDir}: ${whenEmpty}.`);
  }
}

/**
 * Opens an existing gateway's database for a command, as `application_name` `command` on Postgres. Refuses one that
 * holds no gateway data (no embedded database in DATA_DIR, or a DATABASE_URL naming a database a gateway never used,
 * where nothing is created), and brings one an earlier version left up to date first, as a start would.
 */
export async function openGatewayDatabase(config: Config, command: string, whenEmpty: string): Promise<DatabaseHandle> {
  refuseMissingEmbedded(config, whenEmpty);
  const target =
    config.database.kind === 'postgres' ? { ...config.database, applicationName: command } : config.database;
  const database = await openDatabase(target);
  try {
    const { rows } = await sql<{ table: string | null }>`select to_regclass('kysely_migration')::text as table`.execute(
      database.db,
    );
    if (!rows[0]?.table) throw new Error(`This database holds no reactor-gateway data: ${whenEmpty}.`);
    await migrateToLatest(database.db);
    return database;
  } catch (error) {
    await database.close();
    throw error;
  }
}
