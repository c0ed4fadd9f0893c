import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * PGlite runs Postgres inside this process, so two processes on one data directory would each hold their own copy of
 * the database in memory, never see each other's writes, and overwrite each other's files: a second `npm start` on
 * the same DATA_DIR would corrupt it. Postgres guards its directory with postmaster.pid; PGlite does not (0.4,
 * checked: a second process opened the directory and served). So the gateway does, with `<dataDir>.lock` next to
 * the directory, holding the pid of the process that has it open.
 *
 * A lock whose process is gone (a crash, a kill -9) is stale and taken over. Returns the release.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lockPath = `${path.resolve(dataDir)}.lock`;
  await mkdir(path.dirname(lockPath), { recursive: true });
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await createExclusive(lockPath, `${process.pid}\n`)) {
      heldHere.add(lockPath);
      return async () => {
        heldHere.delete(lockPath);
        await rm(lockPath, { force: true });
      };
    }
    const holder = await holderOf(lockPath);
    if (holder.state === 'held') {
      throw new Error(
        `The embedded database in ${dataDir} is in use by process ${holder.pid} (another reactor-gateway, or this ` +
          'one opened it twice). PGlite serves one process: run one gateway per DATA_DIR, or point several at ' +
          `Postgres with DATABASE_URL. If no such process is running, delete ${lockPath}.`,
      );
    }
    // Another process taking the stale lock over: wait for it, rather than spend the attempts while it works (on a
    // loaded machine a takeover outlasted fifty quick retries, and a contender gave up with "keeps changing").
    if (holder.state !== 'stale' || !(await removeIfStillStale(lockPath))) {
      await pause(holder.state === 'writing' ? 100 : 20);
    }
  }
  throw new Error(`Could not lock the embedded database in ${dataDir} (${lockPath} keeps changing).`);
}

type Holder = { state: 'held'; pid: number } | { state: 'stale' } | { state: 'writing' } | { state: 'gone' };

async function holderOf(lockPath: string): Promise<Holder> {
  const text = await readFile(lockPath, 'utf8').catch(() => null);
  if (text === null) return { state: 'gone' };
  const pid = Number.parseInt(text, 10);
  if (Number.isNaN(pid)) {
    // Created this instant by a process that has not written its pid yet, or by one that died before it did.
    return (await ageMs(lockPath)) < 1_000 ? { state: 'writing' } : { state: 'stale' };
  }
  // Our own pid is ours only if this process took the lock: a container restarted after a crash often gets the
  // pid its previous incarnation had, and must not find itself locked out.
  const held = pid === process.pid ? heldHere.has(lockPath) : pid > 0 && isAlive(pid);
  return held ? { state: 'held', pid } : { state: 'stale' };
}

/**
 * Removes a stale lock, so that the caller's next attempt can create its own. Several processes starting together
 * all find the same stale lock; had each simply removed it, a slower one would remove the lock a faster one had
 * just created and take it too (measured: four of six processes started at once held one directory). So removal
 * happens only under `<lock>.takeover`, created exclusively, and only after reading the lock again under it: a lock
 * is removed only by the process that holds it or by the one holder of the takeover, which sees a fresh lock as held.
 * False when another process holds the takeover.
 */
async function removeIfStillStale(lockPath: string): Promise<boolean> {
  const takeoverPath = `${lockPath}.takeover`;
  if (!(await createExclusive(takeoverPath))) {
    // Another process is taking over; its takeover lasts milliseconds. One older than this died while holding it
    // (the only case where two processes could still both remove it, a crash and a start within that instant).
    if ((await ageMs(takeoverPath)) > TAKEOVER_ABANDONED_MS) await rm(takeoverPath, { force: true });
    return false;
  }
  try {
    if ((await holderOf(lockPath)).state === 'stale') await rm(lockPath, { force: true });
  } finally {
    await rm(takeoverPath, { force: true });
  }
  return true;
}

const TAKEOVER_ABANDONED_MS = 10_000;

/** Creates `file` holding `content`; false when it exists. */
async function createExclusive(file: string, content = ''): Promise<boolean> {
  try {
    const handle = await open(file, 'wx');
    await handle.writeFile(content);
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

async function ageMs(file: string): Promise<number> {
  const info = await stat(file).catch(() => null);
  return info ? Date.now() - info.mtimeMs : Number.POSITIVE_INFINITY;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The lock files this process holds. */
const heldHere = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
