import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import type { Database } from './tables.ts';

export type DatabaseTarget =
  | {
      kind: 'pglite';
      /** undefined: in memory. */
      dataDir: string | undefined;
      /** A dumped data directory to start from (tests start from a migrated template: seconds faster than initdb). */
      template?: Blob;
    }
  | { kind: 'postgres'; url: string; poolSize: number };

/** The notification side of Postgres, the same for PGlite and `pg`: LISTEN/NOTIFY carries event ids between instances. */
export interface Notifier {
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  /** Sends the payloads in this order, in one statement (one round trip however many there are). */
  notify(channel: string, payloads: readonly string[]): Promise<void>;
}

export interface DatabaseHandle {
  db: Kysely<Database>;
  notifier: Notifier;
  kind: DatabaseTarget['kind'];
  /** Cheap round trip for /ready. */
  ping(): Promise<void>;
  /** PGlite only: the data directory as a tarball (the test template). */
  dump?(): Promise<Blob>;
  close(): Promise<void>;
}

// WITH ORDINALITY and ORDER BY keep the payloads' order (NOTIFY delivers in the order of the calls). The payloads go
// as one JSON array, not a text[] parameter: pg escapes array elements in JavaScript, one regex pass per quote
// style over every payload, and for 7 KB JSON payloads that was 1.7% of `react`'s main thread on Postgres.
const NOTIFY_ALL =
  'select pg_notify($1, payload) from json_array_elements_text($2::json) with ordinality as p(payload, n) order by n';

// int8 (count(*)) as a JS number: every count here is far below 2^53.
pg.types.setTypeParser(20, (value) => Number.parseInt(value, 10));

export async function openDatabase(target: DatabaseTarget): Promise<DatabaseHandle> {
  return target.kind === 'pglite'
    ? openPglite(target.dataDir, target.template)
    : openPostgres(target.url, target.poolSize);
}

async function openPglite(dataDir: string | undefined, template: Blob | undefined): Promise<DatabaseHandle> {
  const pglite = await PGlite.create({ dataDir, loadDataDir: template });
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  const notifier: Notifier = {
    async listen(channel, onPayload) {
      const unsubscribe = await pglite.listen(channel, onPayload);
      return async () => unsubscribe();
    },
    async notify(channel, payloads) {
      await pglite.query(NOTIFY_ALL, [channel, JSON.stringify(payloads)]);
    },
  };
  return {
    db,
    notifier,
    kind: 'pglite',
    ping: async () => void (await pglite.query('select 1')),
    dump: async () => (await pglite.dumpDataDir('none')) as Blob,
    // db.destroy() closes the PGlite instance too (kysely-pglite-dialect >= 1.3.1).
    close: () => db.destroy(),
  };
}

async function openPostgres(url: string, poolSize: number): Promise<DatabaseHandle> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it. Without a listener this would crash the process.
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const listener = createPgListener(url);
  return {
    db,
    notifier: {
      listen: listener.listen,
      async notify(channel, payloads) {
        await pool.query(NOTIFY_ALL, [channel, JSON.stringify(payloads)]);
      },
    },
    kind: 'postgres',
    ping: async () => void (await pool.query('select 1')),
    async close() {
      await listener.close();
      await db.destroy();
    },
  };
}

/** One dedicated connection for LISTEN, opened on first use and re-opened (with its channels) if it drops. */
function createPgListener(url: string) {
  const handlers = new Map<string, Set<(payload: string) => void>>();
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let closed = false;

  async function connect(): Promise<pg.Client> {
    const next = new pg.Client({ connectionString: url });
    next.on('notification', (message) => {
      for (const handler of handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    next.on('error', () => {
      client = undefined;
      connecting = undefined;
      if (!closed && handlers.size > 0) setTimeout(() => void ensure().catch(() => {}), 500);
    });
    await next.connect();
    for (const channel of handlers.keys()) await next.query(`LISTEN ${quoteIdent(channel)}`);
    client = next;
    return next;
  }

  function ensure(): Promise<pg.Client> {
    if (client) return Promise.resolve(client);
    connecting ??= connect();
    return connecting;
  }

  return {
    async listen(channel: string, onPayload: (payload: string) => void) {
      const isNew = !handlers.has(channel);
      const set = handlers.get(channel) ?? new Set();
      handlers.set(channel, set);
      set.add(onPayload);
      const connection = await ensure();
      if (isNew) await connection.query(`LISTEN ${quoteIdent(channel)}`);
      return async () => {
        set.delete(onPayload);
        if (set.size === 0 && handlers.get(channel) === set) {
          handlers.delete(channel);
          await client?.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
        }
      };
    },
    async close() {
      closed = true;
      handlers.clear();
      await client?.end().catch(() => {});
    },
  };
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
