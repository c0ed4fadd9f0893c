import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrator.ts';

/**
 * PGlite's initdb costs 5-10 s per instance; loading a dumped data directory costs about 1.5 s. So the run migrates
 * one PGlite once and every test file starts its in-memory database from that dump.
 */
export async function setup(project: TestProject): Promise<void> {
  const database = await openDatabase({ kind: 'pglite', dataDir: undefined });
  await migrateToLatest(database.db);
  const dump = await database.dump!();
  await database.close();
  const file = path.join(os.tmpdir(), `reactor-gateway-template-${process.pid}.tar`);
  await writeFile(file, Buffer.from(await dump.arrayBuffer()));
  project.provide('pgliteTemplate', file);
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplate: string;
  }
}
