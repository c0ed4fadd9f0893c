import type { WebSocket } from 'ws';
import type { Principal } from '../auth/service.ts';
import type { Logger } from '../logger.ts';

/** How often open sockets' keys are checked again: the key cache's lifetime, so each check asks the database. */
export const KEY_RECHECK_MS = 5_000;

/**
 * The key each open graphql-ws socket connected with, so that a key that stops being valid (its application was
 * deleted) stops working on sockets opened before, too. Each new operation checks its socket's key (through the key
 * cache: at once on the instance that deleted the application, within 5 s elsewhere), and every `recheckMs` all open
 * sockets are checked, which ends the subscriptions of a key that is gone. Such a socket is closed with the
 * protocol's 4401 "Unauthorized", as one that never had a valid key. A check the database cannot answer keeps the
 * socket: an outage should not disconnect every subscriber.
 */
export function createSocketKeys(
  authenticate: (key: string) => Promise<Principal | null>,
  log: Logger,
  recheckMs = KEY_RECHECK_MS,
) {
  const keys = new Map<WebSocket, string>();

  function refuse(socket: WebSocket): void {
    keys.delete(socket);
    socket.close(4401, 'Unauthorized');
  }

  async function recheckAll(): Promise<void> {
    const byKey = new Map<string, WebSocket[]>();
    for (const [socket, key] of keys) {
      const sockets = byKey.get(key) ?? [];
      sockets.push(socket);
      byKey.set(key, sockets);
    }
    for (const [key, sockets] of byKey) {
      const principal = await authenticate(key).catch((error: unknown) => {
        log.warn({ err: error }, 'could not check the key of open graphql-ws sockets; keeping them');
        return undefined;
      });
      if (principal === null) for (const socket of sockets) refuse(socket);
    }
  }

  // One pass at a time: with many keys and a slow database a pass may outlast the interval.
  let pass: Promise<void> | null = null;
  const timer = setInterval(() => {
    pass ??= recheckAll().finally(() => {
      pass = null;
    });
  }, recheckMs);
  timer.unref();

  return {
    /** A socket that connected with a valid key. */
    add(socket: WebSocket, key: string): void {
      keys.set(socket, key);
      socket.once('close', () => keys.delete(socket));
    },

    /** Whether the socket's key is still valid; if not, the socket is closed. */
    async stillValid(socket: WebSocket): Promise<boolean> {
      const key = keys.get(socket);
      // Unanswered (the database is away): let the operation go on and fail, or not, on its own.
      if (key !== undefined && (await authenticate(key).catch(() => undefined)) !== null) return true;
      refuse(socket);
      return false;
    },

    close(): void {
      clearInterval(timer);
      keys.clear();
    },
  };
}
