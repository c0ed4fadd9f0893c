import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { lockDataDir } from './data-dir-lock.ts';
import { createPgListener } from './pg-listener.ts';
import { PgliteWire } from './pglite-wire.ts';
import { preparingPool } from './prepared-statements.ts';
import type { Database } from './tables.ts';

export type DatabaseTarget =
  | {
      kind: 'pglite';
      /** undefined: in memory. */
      dataDir: string | undefined;
      /** A dumped data directory to start from (tests start from a migrated template: seconds faster than initdb). */
      template?: Blob;
    }
  | {
      kind: 'postgres';
      url: string;
      poolSize: number;
      /**
       * How long a query waits for one of the pool's connections (busy, or being opened) before it fails as the
       * database being unavailable (503): with every connection stuck behind a lock, requests that need none of the
       * locked rows queued behind them without limit. 10 s unless given.
       */
      poolTimeoutMs?: number;
      /** How the pool's sessions name themselves in pg_stat_activity; `reactor-gateway` unless given. */
      applicationName?: string;
    };

/** The notification side of Postgres, the same for PGlite and `pg`: LISTEN/NOTIFY carries event ids between instances. */
export interface Notifier {
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  /**
   * Called after the listening connection came back from a drop: notifications sent while it was down are lost, so
   * state kept up to date by them (caches, waiting subscribers) must be re-read. Never called with PGlite, whose
   * notifications do not leave the process.
   */
  onReconnect(listener: () => void): () => void;
  /** Sends the payloads in this order, in one statement (one round trip however many there are). */
  notify(channel: string, payloads: readonly string[]): Promise<void>;
}

export interface DatabaseHandle {
  db: Kysely<Database>;
  notifier: Notifier;
  kind: DatabaseTarget['kind'];
  /** Cheap round trip for /ready. */
  ping(): Promise<void>;
  /**
   * Marks this process as a serving gateway for as long as it runs (Postgres: a shared advisory lock,
   * GATEWAY_PRESENCE_LOCK, held by the listening session and taken again whenever it reconnects). The key rotation
   * takes the lock exclusively, so it refuses while a gateway holds it, and a gateway starting during a rotation waits
   * here until it ends. PGlite: nothing, its data directory admits one process anyway.
   */
  holdGatewayPresence(): Promise<void>;
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
    : openPostgres(target, target.applicationName ?? GATEWAY_APPLICATION_NAME);
}

async function openPglite(dataDir: string | undefined, template: Blob | undefined): Promise<DatabaseHandle> {
  // One process per data directory (./data-dir-lock.ts); an in-memory database (no directory) is this process's own.
  const unlock = dataDir ? await lockDataDir(dataDir) : async () => {};
  let pglite: PGlite;
  try {
    pglite = await PGlite.create({ dataDir, loadDataDir: template });
  } catch (error) {
    await unlock();
    throw error;
  }
  // One client: PGlite is one session (./pglite-wire.ts). Never closed while idle, so that it keeps its LISTENs'
  // notification handler.
  const pool = new pg.Pool({ max: 1, idleTimeoutMillis: 0, stream: () => new PgliteWire(pglite) });
  // Per channel: its listeners, and the LISTEN they wait for before they count as listening.
  const channels = new Map<string, { listeners: Set<(payload: string) => void>; listening: Promise<unknown> }>();
  // A failed call into PGlite fails its query, and is an error event of the stream as a dropped connection is.
  survivesConnectionErrors(pool);
  pool.on('connect', (client) => {
    client.on('notification', ({ channel, payload }) => {
      for (const listener of channels.get(channel)?.listeners ?? []) listener(payload ?? '');
    });
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) });
  const notifier: Notifier = {
    async listen(channel, onPayload) {
      let state = channels.get(channel);
      if (!state) {
        const listening = pool.query(`listen ${pg.escapeIdentifier(channel)}`);
        state = { listeners: new Set(), listening };
        channels.set(channel, state);
        listening.catch(() => channels.get(channel) === state && channels.delete(channel));
      }
      await state.listening;
      const { listeners } = state;
      const listener = (payload: string) => onPayload(payload);
      listeners.add(listener);
      return async () => {
        listeners.delete(listener);
        if (listeners.size === 0 && channels.get(channel) === state) {
          channels.delete(channel);
          await pool.query(`unlisten ${pg.escapeIdentifier(channel)}`);
        }
      };
    },
    async notify(channel, payloads) {
      await pool.query(NOTIFY_ALL, [channel, JSON.stringify(payloads)]);
    },
    onReconnect: () => () => {},
  };
  return {
    db,
    notifier,
    kind: 'pglite',
    ping: async () => void (await pool.query('select 1')),
    holdGatewayPresence: async () => {},
    dump: async () => (await pglite.dumpDataDir('none')) as Blob,
    close: async () => {
      await db.destroy();
      await pglite.close();
      await unlock();
    },
  };
}

/**
 * The application_name of a serving gateway's sessions (its pool, and its listener with " listener" after it): the
 * key rotation (src/tokens/key-rotation.ts) looks for them in pg_stat_activity and refuses to run beside one.
 */
export const GATEWAY_APPLICATION_NAME = 'reactor-gateway';

/**
 * The advisory lock key every serving gateway holds shared and the key rotation takes exclusively (any constant no
 * other lock here uses: the bootstrap's is src/auth/service.ts's BOOTSTRAP_LOCK). Unlike application_name, which a
 * DATABASE_URL can override, it does not depend on how the sessions are named.
 */
export const GATEWAY_PRESENCE_LOCK = 7_338_201_455;

/**
 * A connection that fails fails its query, which reaches the caller; its client and the pool also emit the error as
 * an event, which without a listener would crash the process: an idle client's (the pool replaces it) and a
 * checked-out one's (Kysely holds a client for each query and transaction; pg-pool listens only while it is idle).
 * Postgres: a restart, failover or network cut; PGlite: a failed call into it.
 */
function survivesConnectionErrors(pool: pg.Pool): void {
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
}

async function openPostgres(
  target: { url: string; poolSize: number; poolTimeoutMs?: number },
  applicationName: string,
): Promise<DatabaseHandle> {
  const { url } = target;
  const pool = new pg.Pool({
    connectionString: url,
    max: target.poolSize,
    application_name: applicationName,
    // pg-pool's message for it, 'timeout exceeded when trying to connect', counts as unavailable (./unavailable.ts).
    connectionTimeoutMillis: target.poolTimeoutMs ?? 10_000,
  });
  survivesConnectionErrors(pool);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const listener = createPgListener(url, { applicationName: `${applicationName} listener` });
  return {
    db,
    notifier: {
      listen: listener.listen,
      onReconnect: listener.onReconnect,
      async notify(channel, payloads) {
        await pool.query(NOTIFY_ALL, [channel, JSON.stringify(payloads)]);
      },
    },
    kind: 'postgres',
    ping: async () => void (await pool.query('select 1')),
    holdGatewayPresence: () => listener.holdSharedLock(GATEWAY_PRESENCE_LOCK),
    async close() {
      await listener.close();
      await db.destroy();
    },
  };
}

/**
 * Errors of a Postgres that does not accept connections yet: not listening (still starting, restarting), or
 * listening and saying it is starting up (57P03). A name that does not resolve or a refused login is not among them:
 * waiting would not fix a mistyped DATABASE_URL, so those fail at once.
 */
const NOT_ACCEPTING_YET = new Set(['ECONNREFUSED', 'ECONNRESET', 'EAI_AGAIN', '57P03']);

/** ...and with them, those of a Postgres that cannot be reached at all or refuses the login, role or database. */
const CONNECTION_FAILURES = new Set([
  ...NOT_ACCEPTING_YET,
  'ENOTFOUND',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  '28000',
  '28P01',
  '3D000',
]);

function errorCode(error: unknown): string {
  return String((error as { code?: unknown } | null)?.code);
}

/** Whether `error` is a failure to connect to Postgres (not of a query on a connection), for what a failed start says. */
export function isConnectionFailure(error: unknown): boolean {
  return CONNECTION_FAILURES.has(errorCode(error));
}

/**
 * Waits up to `timeoutMs` for Postgres to answer, trying again after 250 ms and then up to every 2 s, so that
 * a gateway started together with its Postgres (docker compose, a pod) does not fail because it was first. The last
 * error is thrown once the time is up, or at once for any other error; `signal`'s reason once it is aborted.
 */
export async function waitForDatabase(
  database: DatabaseHandle,
  timeoutMs: number,
  onWait: (error: unknown, waitedMs: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  // The embedded database is in this process: it is there once opened.
  if (database.kind !== 'postgres') return;
  const started = performance.now();
  for (let delayMs = 250; ; delayMs = Math.min(delayMs * 2, 2_000)) {
    try {
      await database.ping();
      return;
    } catch (error) {
      const waitedMs = performance.now() - started;
      if (!NOT_ACCEPTING_YET.has(errorCode(error)) || waitedMs + delayMs > timeoutMs) throw error;
      onWait(error, Math.round(waitedMs));
      await sleep(delayMs, signal);
    }
  }
}

/** Resolves after `ms`, or rejects with `signal`'s reason as soon as it is aborted. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
