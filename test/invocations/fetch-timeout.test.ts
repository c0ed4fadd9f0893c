import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';

// FETCH_TIMEOUT_MS reaches the sandbox: an operator's cap on one formula fetch, below the run's own limit.
let gateway: TestGateway;
let tenant: TestTenant;
let slow: http.Server;
let url: string;
beforeAll(async () => {
  slow = http.createServer((_req, res) => {
    const answer = setTimeout(() => res.end('late'), 2_000);
    res.on('close', () => clearTimeout(answer));
  });
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/`;
  gateway = await startTestGateway({ env: { EGRESS_ALLOW: '127.0.0.1/32', FETCH_TIMEOUT_MS: '300' } });
  tenant = await gateway.createTenant();
});
afterAll(async () => {
  await gateway?.close();
  slow?.closeAllConnections();
  await new Promise((resolve) => slow?.close(resolve));
});

describe('FETCH_TIMEOUT_MS', () => {
  it('ends a formula fetch that waits longer, well within the run', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async (req) => { try { await fetch(req.args.url); return { raw: "answered" }; } ' +
        'catch (e) { return { raw: e.message }; } };',
    );
    const result = await gateway.gql<any>(REACT, { id: reactorId, args: { url } }, tenant.privateKey);
    expect(result.data?.react.raw).toBe('fetch timed out after 300 ms');
  });
});
