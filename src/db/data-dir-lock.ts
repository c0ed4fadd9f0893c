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
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      heldHere.add(lockPath);
      return async () => {
        heldHere.delete(lockPath);
        await rm(lockPath, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    if (Number.isNaN(holder) && (await ageMs(lockPath)) < 1_000) {
      // Created this instant by another process that has not written its pid yet.
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    // Our own pid is ours only if this process took the lock: a container restarted after a crash often gets the
    // pid its previous incarnation had, and must not find itself locked out.
    const held = holder === process.pid ? heldHere.has(lockPath) : holder > 0 && isAlive(holder);
    if (held) {
      throw new Error(
        `The embedded database in ${dataDir} is in use by process ${holder} (another reactor-gateway, or this one ` +
          'opened it twice). PGlite serves one process: run one gateway per DATA_DIR, or point several at Postgres ' +
          `with DATABASE_URL. If no such process is running, delete ${lockPath}.`,
      );
    }
    // Stale: its process is gone (or died before it wrote its pid).
    await rm(lockPath, { force: true });
  }
  throw new Error(`Could not lock the embedded database in ${dataDir} (${lockPath} keeps changing).`);
}

async function ageMs(file: string): Promise<number> {
  const info = await stat(file).catch(() => null);
  return info ? Date.now() - info.mtimeMs : Number.POSITIVE_INFINITY;
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
