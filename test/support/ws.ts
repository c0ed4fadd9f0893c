import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';

/** A real graphql-ws client (subprotocol graphql-transport-ws) against a running gateway. */
export function wsClient(httpUrl: string, apiKey: string | null, onClose?: (code: number) => void): Client {
  return createClient({
    url: httpUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: apiKey ? { apiKey } : {},
    retryAttempts: 0,
    lazy: true,
    on: onClose ? { closed: (event) => onClose((event as { code: number }).code) } : undefined,
  });
}

/** Collects every value of a subscription until it completes (or `until` says stop), with a time bound. */
export function collect<T = any>(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
  options: { until?: (values: T[]) => boolean; timeoutMs?: number } = {},
): Promise<{ values: T[]; errors: unknown[]; completed: boolean }> {
  const values: T[] = [];
  const errors: unknown[] = [];
  return new Promise((resolve) => {
    let dispose = () => {};
    const finish = (completed: boolean) => {
      clearTimeout(timer);
      dispose();
      resolve({ values, errors, completed });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 15_000);
    dispose = client.subscribe<T>(
      { query, variables },
      {
        next: (result) => {
          if (result.errors) errors.push(...result.errors);
          if (result.data) values.push(result.data as T);
          if (options.until?.(values)) finish(false);
        },
        error: (error) => {
          errors.push(error);
          finish(false);
        },
        complete: () => finish(true),
      },
    );
  });
}

/**
 * A raw graphql-transport-ws socket, acknowledged, for what the client library hides: what the server sends, and the
 * code it closes with.
 */
export async function rawSocket(httpUrl: string, key: string) {
  const socket = new WebSocket(httpUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
  const received: any[] = [];
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const acked = new Promise<void>((resolve) =>
    socket.on('message', (data) => {
      const message = JSON.parse(String(data));
      received.push(message);
      if (message.type === 'connection_ack') resolve();
    }),
  );
  socket.send(JSON.stringify({ type: 'connection_init', payload: { apiKey: key } }));
  await acked;
  const subscribe = (id: string, query: string) =>
    socket.send(JSON.stringify({ type: 'subscribe', id, payload: { query } }));
  return { socket, received, closed, subscribe };
}
