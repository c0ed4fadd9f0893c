import { lookup as dnsLookup } from 'node:dns';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEgressPolicy } from '../../src/runtime/sandbox/egress.ts';
import { FetchError, hostFetch } from '../../src/runtime/sandbox/fetch.ts';

// A name lookup holds one of libuv's few threads until the resolver answers, and cannot be cancelled: a formula's
// fetch aborted while its name resolves must hold its place among the run's calls in flight until the lookup is over,
// or a run aborting fetch after fetch piles up lookups without limit (a probe queued 448 in 0.5 s, and a lookup on
// the main thread then waited 85 s). The resolver here answers 400 ms late, as a slow nameserver would.
let server: http.Server;
let port: number;
beforeAll(async () => {
  server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const LOOKUP_MS = 400;
const slowResolver = ((hostname: string, options: object, callback: (...args: unknown[]) => void) => {
  setTimeout(() => dnsLookup('127.0.0.1', options, callback as never), LOOKUP_MS);
}) as unknown as typeof dnsLookup;

const fetchVia = (signal: AbortSignal) =>
  hostFetch(
    { url: `http://slow-name.test:${port}/`, method: 'GET', headers: [], body: null, redirect: 'follow' },
    {
      policy: createEgressPolicy(['127.0.0.1/32']),
      timeoutMs: 5_000,
      maxResponseBytes: 1_000,
      signal,
      resolve: slowResolver,
    },
  );

describe('a fetch whose host name is still resolving', () => {
  it('answers once resolved', async () => {
    const result = await fetchVia(new AbortController().signal);
    expect(result.status).toBe(200);
  });

  it('when aborted, fails only once its lookup is over, keeping its place in flight until then', async () => {
    const controller = new AbortController();
    const started = performance.now();
    const fetched = fetchVia(controller.signal);
    setTimeout(() => controller.abort(), 50);
    await expect(fetched).rejects.toBeInstanceOf(FetchError);
    expect(performance.now() - started).toBeGreaterThanOrEqual(LOOKUP_MS - 20);
  });
});
