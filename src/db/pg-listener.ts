import pg from 'pg';

/** Waits between attempts to reopen a dropped listening connection: doubling from the first, up to the last. */
const RETRY_MS = { first: 250, max: 5_000 };

/**
 * One dedicated connection for LISTEN, opened on first use. When it drops (a restart of Postgres, a failover, a
 * network cut, `pg_terminate_backend`), it is reopened with all its channels, retrying until it succeeds or the
 * listener is closed. Notifications sent while it was down are lost for good (Postgres keeps none for a session that
 * is not there), so after each reopening the `onReconnect` listeners run: whoever keeps state built from
 * notifications re-reads or forgets it.
 *
 * The same session can hold a shared advisory lock for the process's lifetime (`holdSharedLock`), taken again on each
 * reopening: Postgres drops a session's locks with the session.
 */
export function createPgListener(url: string, options: { applicationName?: string } = {}) {
  const handlers = new Map<string, Set<(payload: string) => void>>();
  const reconnectListeners = new Set<() => void>();
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let everConnected = false;
  let closed = false;
  let sharedLock: number | undefined;
  let lockedOn: pg.Client | undefined;

  async function takeSharedLock(connection: pg.Client, key: number): Promise<void> {
    // Re-entrant: taken twice on one session (a reopening racing the first call), it is simply held twice.
    await connection.query('select pg_advisory_lock_shared($1)', [key]);
    lockedOn = connection;
  }

  async function connect(): Promise<pg.Client> {
    const next = new pg.Client({ connectionString: url, application_name: options.applicationName });
    next.on('notification', (message) => {
      for (const handler of handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    // 'error' comes with most drops, 'end' with all of them; either way this connection is done.
    const dropped = () => {
      if (client !== next) return;
      client = undefined;
      scheduleReconnect(RETRY_MS.first);
    };
    next.on('error', dropped);
    next.on('end', dropped);
    try {
      await next.connect();
      if (sharedLock !== undefined) await takeSharedLock(next, sharedLock);
      for (const channel of handlers.keys()) await next.query(`LISTEN ${quoteIdent(channel)}`);
    } catch (error) {
      next.removeListener('end', dropped);
      await next.end().catch(() => {});
      throw error;
    }
    if (closed) {
      await next.end().catch(() => {});
      throw new Error('The listener is closed.');
    }
    client = next;
    const reconnected = everConnected;
    everConnected = true;
    if (reconnected) for (const listener of reconnectListeners) listener();
    return next;
  }

  function ensure(): Promise<pg.Client> {
    if (client) return Promise.resolve(client);
    // A failed attempt is forgotten, so the next call (or the retry below) makes a new one.
    connecting ??= connect().finally(() => {
      connecting = undefined;
    });
    return connecting;
  }

  function scheduleReconnect(waitMs: number): void {
    if (closed || retry || (handlers.size === 0 && sharedLock === undefined)) return;
    retry = setTimeout(() => {
      retry = undefined;
      ensure().catch(() => scheduleReconnect(Math.min(waitMs * 2, RETRY_MS.max)));
    }, waitMs);
    // The retry alone should not keep a process alive that has nothing else to do.
    retry.unref();
  }

  return {
    async listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
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

    /** Takes `pg_advisory_lock_shared(key)` on the listening session now (waiting while it is held exclusively) and
     *  after every reopening, until close. */
    async holdSharedLock(key: number): Promise<void> {
      sharedLock = key;
      const connection = await ensure();
      if (lockedOn !== connection) await takeSharedLock(connection, key);
    },

    onReconnect(listener: () => void): () => void {
      reconnectListeners.add(listener);
      return () => reconnectListeners.delete(listener);
    },

    async close(): Promise<void> {
      closed = true;
      clearTimeout(retry);
      handlers.clear();
      reconnectListeners.clear();
      const current = client;
      client = undefined;
      await current?.end().catch(() => {});
    },
  };
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
