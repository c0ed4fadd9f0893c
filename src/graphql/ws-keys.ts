import type { WebSocket } from 'ws';
import type { Principal } from '../auth/service.ts';
import type { Logger } from '../logger.ts';

/** How often open sockets' keys are checked again: the key cache's lifetime, so each check asks the database. */
export const KEY_RECHECK_MS = 5_000;

/**
 * The key each open graphql-ws socket connected with, so that a key that stops being valid (its application was
 * deleted, or its key regenerated) stops working on sockets opened before, too. Each new operation checks its
 * socket's key (through the key cache: at once on the instance that made the change, within 5 s elsewhere), and
 * every `recheckMs` all open sockets are checked, which ends the subscriptions of a key that is gone. Such a socket
 * is closed with the protocol's 4401 "Unauthorized", as one that never had a valid key.
 *
 * A socket's operations share the principal it connected with (src/server.ts), so a key whose permissions or token
 * containers changed closes its sockets too, with 4403 "Forbidden", which graphql-ws clients answer by connecting
 * again (and then hold the new permissions); its subscriptions must not go on under permissions it lost.
 *
 * A check the database cannot answer keeps the socket: an outage should not disconnect every subscriber.
 */
export function createSocketKeys(
  authenticate: (key: string) => Promise<Principal | null>,
  log: Logger,
  recheckMs = KEY_RECHECK_MS,
) {
  const keys = new Map<WebSocket, { key: string; principal: Principal }>();

  /** Closes the socket if its key is gone (null) or grants something else now; true if it may go on. */
  function settle(socket: WebSocket, connectedAs: Principal, now: Principal | null): boolean {
    if (now !== null && sameGrant(connectedAs, now)) return true;
    keys.delete(socket);
    if (now === null) socket.close(4401, 'Unauthorized');
    else socket.close(4403, "Forbidden: the key's permissions changed; connect again");
    return false;
  }

  async function recheckAll(): Promise<void> {
    const byKey = new Map<string, WebSocket[]>();
    for (const [socket, { key }] of keys) {
      const sockets = byKey.get(key) ?? [];
      sockets.push(socket);
      byKey.set(key, sockets);
    }
    for (const [key, sockets] of byKey) {
      const principal = await authenticate(key).catch((error: unknown) => {
        log.warn({ err: error }, 'could not check the key of open graphql-ws sockets; keeping them');
        return undefined;
      });
      if (principal === undefined) continue;
      for (const socket of sockets) {
        const connected = keys.get(socket);
        if (connected) settle(socket, connected.principal, principal);
      }
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
    add(socket: WebSocket, key: string, principal: Principal): void {
      keys.set(socket, { key, principal });
      socket.once('close', () => keys.delete(socket));
    },

    /** Whether the socket's key is still valid, with the permissions it connected with; if not, it is closed. */
    async stillValid(socket: WebSocket): Promise<boolean> {
      const connected = keys.get(socket);
      if (connected === undefined) {
        socket.close(4401, 'Unauthorized');
        return false;
      }
      const principal = await authenticate(connected.key).catch(() => undefined);
      // Unanswered (the database is away): let the operation go on and fail, or not, on its own.
      if (principal === undefined) return true;
      return settle(socket, connected.principal, principal);
    },

    close(): void {
      clearInterval(timer);
      keys.clear();
    },
  };
}

/** Whether two principals of one key grant the same: the same application, permissions and token containers. */
export function sameGrant(a: Principal, b: Principal): boolean {
  if (a === b) return true;
  const containers = (p: Principal) => (p.tokenContainers === null ? null : [...p.tokenContainers].sort().join('\n'));
  return (
    a.applicationId === b.applicationId &&
    a.tenantId === b.tenantId &&
    a.permissions.size === b.permissions.size &&
    [...a.permissions].every((permission) => b.permissions.has(permission)) &&
    containers(a) === containers(b)
  );
}
