import { readFile } from 'node:fs/promises';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';

/**
 * A graphql-ws client that is connected (connection_ack received) when the promise resolves. `lazy: false` opens
 * the socket at once; no retries and no keep-alive pings, so an idle connection really is idle and a broken one
 * fails the figure instead of reconnecting behind its back.
 */
export function connectedClient(httpUrl: string, apiKey: string, timeoutMs = 30_000): Promise<Client> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`graphql-ws: no connection_ack in ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void client.dispose();
      reject(error instanceof Error ? error : new Error(`graphql-ws: ${describe(error)}`));
    };
    const client = createClient({
      url: httpUrl.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { apiKey },
      lazy: false,
      retryAttempts: 0,
      // Errors before the ack reach us through `on.closed`/`on.error`; without this the client would log them.
      onNonLazyError: () => {},
      on: {
        connected: () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(client);
        },
        closed: (event) => fail(event),
        error: (error) => fail(error),
      },
    });
  });
}

function describe(value: unknown): string {
  if (value && typeof value === 'object' && 'code' in value) {
    const event = value as { code: number; reason?: string };
    return `closed ${event.code} ${event.reason ?? ''}`.trim();
  }
  return String(value);
}

/** Resident set size of a process in KB (VmRSS from /proc, Linux): what the operator pays for, all threads. */
export async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight; rejects on the first failure. */
export async function boundedAll(count: number, concurrency: number, task: (i: number) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The V8 heap of a process started with `--inspect=127.0.0.1:<port>`, read through the inspector after a forced
 * full GC (HeapProfiler.collectGarbage, twice so finalizers' garbage goes too): live objects only, none of the
 * allocator's and PGlite's RSS swings. Only for processes the harness started itself, on 127.0.0.1.
 */
export async function heapAfterGc(
  inspectorPort: number,
): Promise<{ heapUsedKb: number; externalKb: number; rssKb: number }> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  const target = targets[0]?.webSocketDebuggerUrl;
  if (!target) throw new Error(`no inspector target on port ${inspectorPort}`);
  const socket = new WebSocket(target);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  let nextId = 1;
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<any>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`inspector: ${method} timed out`)), 60_000);
      const onMessage = (data: WebSocket.RawData) => {
        const message = JSON.parse(data.toString());
        if (message.id !== id) return;
        socket.off('message', onMessage);
        clearTimeout(timer);
        if (message.error) reject(new Error(`inspector: ${method}: ${JSON.stringify(message.error)}`));
        else resolve(message.result);
      };
      socket.on('message', onMessage);
      socket.send(JSON.stringify({ id, method, params }));
    });
  try {
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    const result = await call('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    const usage = JSON.parse(result.result.value) as { heapUsed: number; external: number; rss: number };
    return { heapUsedKb: usage.heapUsed / 1024, externalKb: usage.external / 1024, rssKb: usage.rss / 1024 };
  } finally {
    socket.close();
  }
}
