import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..', '..');

// The embedded database serves one process (src/db/data-dir-lock.ts): a second gateway on the same DATA_DIR would
// corrupt it.
describe('an embedded database directory', () => {
  let parent: string;
  let dataDir: string;
  beforeEach(async () => {
    parent = await mkdtemp(path.join(tmpdir(), 'rg-lock-'));
    dataDir = path.join(parent, 'pgdata');
  });
  afterEach(() => rm(parent, { recursive: true, force: true }));

  it('is refused to a second process while the first has it open, and free once it closed', async () => {
    const first = await openDatabase({ kind: 'pglite', dataDir });
    try {
      await first.db.schema.createTable('kept').addColumn('n', 'integer').execute();
      const opener = `import { openDatabase } from './src/db/database.ts';
        const db = await openDatabase({ kind: 'pglite', dataDir: ${JSON.stringify(dataDir)} });
        await db.close();`;
      const second = run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', opener], { cwd: ROOT });
      const error = await second.then(
        () => null,
        (failure: { stderr: string }) => failure,
      );
      expect(error?.stderr).toContain(`The embedded database in ${dataDir} is in use by process ${process.pid}`);
      // This process opening it again is refused alike.
      await expect(openDatabase({ kind: 'pglite', dataDir })).rejects.toThrow(`in use by process ${process.pid}`);
    } finally {
      await first.close();
    }
    expect(existsSync(`${dataDir}.lock`)).toBe(false);
    const again = await openDatabase({ kind: 'pglite', dataDir });
    try {
      expect(
        (
          await again.db
            .selectFrom('kept' as never)
            .selectAll()
            .execute()
        ).length,
      ).toBe(0);
    } finally {
      await again.close();
    }
  }, 60_000);

  it('takes over the lock of a process that is gone (a crash, a kill -9), or of an earlier self with its pid', async () => {
    const { stdout } = await run(process.execPath, ['-e', 'console.log(process.pid)']);
    // A process that has exited; and this process's own pid, as a container restarted after a crash would find it.
    // And an empty lock a while old: its process died before writing its pid.
    for (const stale of [Number(stdout.trim()), process.pid, null]) {
      await writeFile(`${dataDir}.lock`, stale === null ? '' : `${stale}\n`);
      if (stale === null) await utimes(`${dataDir}.lock`, new Date(Date.now() - 5_000), new Date(Date.now() - 5_000));
      const database = await openDatabase({ kind: 'pglite', dataDir });
      try {
        expect((await readFile(`${dataDir}.lock`, 'utf8')).trim()).toBe(String(process.pid));
      } finally {
        await database.close();
      }
    }
  }, 60_000);
});
