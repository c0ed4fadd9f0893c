import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { lockDataDir } from '../../src/db/data-dir-lock.ts';
import { openDatabase } from '../../src/db/database.ts';
import { testEnvironment } from '../support/gateway.ts';

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

  it('goes to one of several processes that find the same stale lock at once', async () => {
    const { stdout } = await run(process.execPath, ['-e', 'console.log(process.pid)']);
    // Each round: six processes start, say they are ready, and on "go" all try to take a lock left by a dead
    // process. Without the takeover guard, a slower one removed the lock a faster one had just taken (2-4 winners
    // in 4 of 5 such rounds).
    for (let round = 0; round < 3; round++) {
      await writeFile(`${dataDir}.lock`, `${stdout.trim()}\n`);
      const outcomes = await contend(dataDir, 6);
      expect(outcomes.filter((outcome) => outcome === 'locked')).toHaveLength(1);
      expect(outcomes.filter((outcome) => outcome.includes('is in use by process'))).toHaveLength(5);
      expect(existsSync(`${dataDir}.lock`)).toBe(false);
      expect(existsSync(`${dataDir}.lock.takeover`)).toBe(false);
    }
  }, 120_000);

  it('is still taken over when a process died while taking over another stale lock', async () => {
    await writeFile(`${dataDir}.lock`, '999999999\n');
    await writeFile(`${dataDir}.lock.takeover`, '');
    const old = new Date(Date.now() - 60_000);
    await utimes(`${dataDir}.lock.takeover`, old, old);
    const release = await lockDataDir(dataDir);
    expect((await readFile(`${dataDir}.lock`, 'utf8')).trim()).toBe(String(process.pid));
    await release();
  });

  it('waits for another process taking a stale lock over, however slow, instead of spending its attempts', async () => {
    // A takeover in progress (fresh) that ends 300 ms later without taking the lock: a loaded machine's pace.
    // Retrying at once, a contender used up its attempts in milliseconds and gave up with "keeps changing" (CI).
    await writeFile(`${dataDir}.lock`, '999999999\n');
    await writeFile(`${dataDir}.lock.takeover`, '');
    const ended = new Promise((resolve) => setTimeout(resolve, 300)).then(() => rm(`${dataDir}.lock.takeover`));
    const release = await lockDataDir(dataDir);
    await ended;
    expect((await readFile(`${dataDir}.lock`, 'utf8')).trim()).toBe(String(process.pid));
    await release();
  });
});

describe('a new embedded data directory', () => {
  it('is readable by this user only; one readable by others is kept, with a warning', async () => {
    const parent = await mkdtemp(path.join(tmpdir(), 'rg-mode-'));
    try {
      const lines: string[] = [];
      const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
      for (const [dataDir, before] of [
        [path.join(parent, 'new', 'data'), null],
        [path.join(parent, 'shared'), 0o755],
      ] as const) {
        if (before !== null) await mkdir(dataDir, { mode: before }).then(() => chmod(dataDir, before));
        const env = testEnvironment({ DATA_DIR: dataDir, ENCRYPTION_KEY: '' });
        const config = loadConfig(env);
        const app = await createApp(config, log, { database: config.database });
        await app.close();
        const modes = [dataDir, path.join(dataDir, 'pgdata')].map((dir) => (statSync(dir).mode & 0o777).toString(8));
        expect(modes).toEqual(before === null ? ['700', '700'] : ['755', '700']);
      }
      expect(lines.join('')).toContain('DATA_DIR can be read by other users of this machine');
      expect(lines).toHaveLength(1);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  }, 60_000);
});

/**
 * Starts `count` processes that each try to lock `dataDir` at the same instant and report "locked" or the error.
 * Winners keep the lock until every process has reported, then release it.
 */
async function contend(dataDir: string, count: number): Promise<string[]> {
  const script = `import { lockDataDir } from './src/db/data-dir-lock.ts';
    import { once } from 'node:events';
    process.stdout.write('ready\\n');
    await once(process.stdin, 'data');
    let release;
    try {
      release = await lockDataDir(${JSON.stringify(dataDir)});
      process.stdout.write('locked\\n');
    } catch (error) {
      process.stdout.write(error.message.split('\\n')[0] + '\\n');
    }
    await once(process.stdin, 'end');
    await release?.();`;
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT }),
  );
  const lines = children.map((child) => linesOf(child));
  try {
    await Promise.all(lines.map((next) => next()));
    for (const child of children) child.stdin.write('go\n');
    const outcomes = await Promise.all(lines.map((next) => next()));
    return outcomes;
  } finally {
    for (const child of children) child.stdin.end();
    await Promise.all(children.map((child) => new Promise((resolve) => child.once('close', resolve))));
  }
}

/** A reader of a child's stdout, a line per call (rejects if the child exits first, with its stderr). */
function linesOf(child: ChildProcessWithoutNullStreams): () => Promise<string> {
  let buffered = '';
  let stderr = '';
  const waiting: Array<{ resolve: (line: string) => void; reject: (error: Error) => void }> = [];
  const ready: string[] = [];
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      const waiter = waiting.shift();
      if (waiter) waiter.resolve(line);
      else ready.push(line);
    }
  });
  child.once('close', (code) => {
    for (const waiter of waiting.splice(0)) waiter.reject(new Error(`exited ${code}: ${stderr}`));
  });
  return () => {
    const line = ready.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (child.exitCode !== null) return Promise.reject(new Error(`exited ${child.exitCode}: ${stderr}`));
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  };
}
