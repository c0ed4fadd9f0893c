import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { graphQLRequest } from './graphql-request.ts';
import { type InProcessGateway, withInProcessGateway } from './in-process.ts';
import { freePort, type ServerProcess, startProcess, tempDir } from './processes.ts';

/** The keys the harness bootstraps the gateway with (a fresh database each run, so they are only ever local). */
export const BENCH_KEYS = {
  admin: `bench-admin-${randomBytes(12).toString('hex')}`,
  management: `key_bench-management-${randomBytes(12).toString('hex')}`,
  private: `key_bench-private-${randomBytes(12).toString('hex')}`,
  encryption: randomBytes(32).toString('hex'),
};

/** Every gateway's environment, before its database's: bootstrapped with BENCH_KEYS, as production runs it. */
const GATEWAY_ENV = {
  ADMIN_API_KEY: BENCH_KEYS.admin,
  BOOTSTRAP_MANAGEMENT_KEY: BENCH_KEYS.management,
  BOOTSTRAP_PRIVATE_KEY: BENCH_KEYS.private,
  ENCRYPTION_KEY: BENCH_KEYS.encryption,
  LOG_LEVEL: 'warn',
  NODE_ENV: 'production',
};

export type DatabaseKind = 'pglite' | 'postgres';

/** Where gateway instances keep their data for one run: a temp PGlite directory, or a fresh Postgres database. */
export interface BenchDatabase {
  kind: DatabaseKind;
  env: Record<string, string>;
  /** Direct SQL for seeding (bulk inserts); PGlite is single-process, so only with Postgres. */
  url: string | null;
  /**
   * The environment of one more gateway instance. Postgres: the same database (how the gateway scales out); it
   * runs no async jobs unless `runsJobs` (JOB_CONCURRENCY=0), so a figure's helper instances cannot take jobs away
   * from the instance whose job throughput is measured. PGlite: a data directory of its own, since one PGlite
   * directory belongs to one process, and so it runs its own jobs.
   */
  anotherInstance(options?: { runsJobs?: boolean }): Promise<Record<string, string>>;
  drop(): Promise<void>;
}

/**
 * What a figure writes before any gateway starts (bench/figures/types.ts, `Figure.seed`), through the gateway's own
 * code in this process: its migrations and bootstrap tenant run first, as `serve` would run them.
 */
export type Seeder = (gateway: InProcessGateway) => Promise<void>;

/**
 * A fresh database for one run, migrated, bootstrapped with BENCH_KEYS and seeded by `seed`. PGlite: a template
 * directory every instance gets a copy of, so each instance starts with the same data. Postgres: a new database
 * on that server, shared by every instance.
 */
export async function createBenchDatabase(
  kind: DatabaseKind,
  adminUrl?: string,
  seed: Seeder = async () => {},
): Promise<BenchDatabase> {
  const data = await tempDir('reactor-gateway-bench-');
  const extraDirs: { remove(): Promise<void> }[] = [];
  if (kind === 'pglite') {
    // initdb, the migrations and the seeding once (initdb alone is 2.4-5 s here), then a copy per instance (0.7 s):
    // four gateways running initdb at once on two cores were most of the quick run's start-up. Each gateway still
    // runs its migrator and bootstrap at start; they find nothing to do.
    const template = await tempDir('reactor-gateway-bench-template-');
    extraDirs.push(template);
    const drop = async () => {
      for (const dir of [data, ...extraDirs]) await dir.remove();
    };
    await seedOrDrop({ DATA_DIR: template.dir }, seed, drop);
    const instanceDir = async (dir: string) => {
      await cp(path.join(template.dir, 'pgdata'), path.join(dir, 'pgdata'), { recursive: true });
      return { DATA_DIR: dir };
    };
    return {
      kind,
      env: await instanceDir(data.dir),
      url: null,
      async anotherInstance() {
        const extra = await tempDir('reactor-gateway-bench-');
        extraDirs.push(extra);
        return instanceDir(extra.dir);
      },
      drop,
    };
  }
  if (!adminUrl) throw new Error('postgres needs BENCH_DATABASE_URL');
  const name = `rg_bench_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  await withClient(adminUrl, (client) => client.query(`create database ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const drop = async () => {
    await withClient(adminUrl, (client) => client.query(`drop database if exists ${name} with (force)`));
    await data.remove();
  };
  await seedOrDrop({ DATA_DIR: data.dir, DATABASE_URL: url.toString() }, seed, drop);
  return {
    kind,
    env: { DATA_DIR: data.dir, DATABASE_URL: url.toString() },
    url: url.toString(),
    anotherInstance: async (options) => ({
      DATA_DIR: data.dir,
      DATABASE_URL: url.toString(),
      ...(options?.runsJobs ? {} : { JOB_CONCURRENCY: '0' }),
    }),
    drop,
  };
}

/** Migrates, bootstraps and seeds through the gateway's code; on failure removes what the run created, and throws. */
async function seedOrDrop(env: Record<string, string>, seed: Seeder, drop: () => Promise<void>): Promise<void> {
  try {
    await withInProcessGateway({ ...GATEWAY_ENV, ...env }, seed);
  } catch (error) {
    await drop().catch(() => {});
    throw error;
  }
}

export async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/**
 * How `npm start` starts the gateway (package.json's start script): its Node flags (e.g. the main thread's young
 * generation size) and its script, `dist/src/main.js serve`, compiled by the prestart script. Read from there so
 * the figures measure the gateway as it is started, and cannot drift from it.
 */
const NPM_START = (() => {
  const packageJson = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const words = String(packageJson.scripts.start).split(/\s+/);
  const scriptAt = words.findIndex((word) => /\.[jt]s$/.test(word));
  return {
    flags: words.slice(words.indexOf('node') + 1, scriptAt).filter((flag) => flag !== '--no-node-snapshot'),
    script: words[scriptAt]!,
    args: words.slice(scriptAt + 1),
    prestart: packageJson.scripts.prestart as string | undefined,
  };
})();

/**
 * Runs `npm start`'s prestart (the build into dist/) once per harness process; the first gateway waits for it. The
 * harness starts it early, while the database is created.
 */
let built: Promise<void> | undefined;
export function buildGateway(): Promise<void> {
  built ??= new Promise((resolve, reject) => {
    if (!NPM_START.prestart) return resolve();
    execFile('sh', ['-c', NPM_START.prestart], { cwd: ROOT }, (error, _stdout, stderr) =>
      error ? reject(new Error(`prestart failed: ${stderr || error.message}`)) : resolve(),
    );
  });
  return built;
}

/**
 * A gateway instance as production runs it (`npm start`: its script and flags), or `bench/servers/yoga-only.ts`
 * for the numbers without the fast path, or another checkout's `src/main.ts` through tsx or its compiled
 * `dist/src/main.js` (bench/ab.ts). Same
 * environment and flags either way.
 */
export async function startGateway(
  database: BenchDatabase,
  options: { name: string; script?: string; env?: Record<string, string>; nodeArgs?: string[] } = { name: 'gateway' },
): Promise<ServerProcess> {
  if (!options.script) await buildGateway();
  const script = options.script ?? NPM_START.script;
  const port = await freePort();
  return startProcess({
    name: options.name,
    script,
    // Another checkout's compiled dist/src/main.js too (bench/ab.ts AB_A_SCRIPT): the same code path as `npm start`.
    args: script === NPM_START.script ? NPM_START.args : /src\/main\.[jt]s$/.test(script) ? ['serve'] : [],
    port,
    readyPath: '/ready',
    nodeArgs: [...NPM_START.flags, ...(options.nodeArgs ?? [])],
    env: { ...GATEWAY_ENV, ...database.env, ...options.env },
  });
}

/** One GraphQL request with the management key (seeding, checks), failing loudly on errors. */
export async function gql<T = Record<string, any>>(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  key: string = BENCH_KEYS.management,
): Promise<T> {
  return graphQLRequest<T>((init) => fetch(url, init), query, variables, key);
}
