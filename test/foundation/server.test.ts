import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { startServer } from '../../src/server.ts';
import { createTestDatabase, usingPostgres } from '../support/database.ts';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { startTestGateway } from '../support/gateway.ts';
import { collect, wsClient } from '../support/ws.ts';

describe('the HTTP server', () => {
  it('answers /health and /ready, serves GraphiQL to a browser, and GraphQL over a real port', async () => {
    const gateway = await startTestGateway();
    const server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
    try {
      const base = server.url.replace('/graphql', '');
      expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'ok' });
      expect(await (await fetch(`${base}/ready`)).json()).toEqual({ status: 'ready' });
      const page = await fetch(server.url, { headers: { accept: 'text/html' } });
      expect(await page.text()).toContain('graphiql');
      const tenant = await gateway.createTenant('Over HTTP');
      const response = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'bt-api-key': tenant.managementKey },
        body: JSON.stringify({ query: '{ viewer { tenant { name } } }' }),
      });
      expect(await response.json()).toEqual({ data: { viewer: { tenant: { name: 'Over HTTP' } } } });
    } finally {
      await server.close();
      await gateway.close();
    }
  });

  it('closes a keep-alive connection as soon as its response in flight is sent, rather than after its idle timeout', async () => {
    const gateway = await startTestGateway();
    const server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
    try {
      const tenant = await gateway.createTenant();
      const reactorId = await createReactorWithCode(
        gateway,
        tenant.managementKey,
        "module.exports = async () => { await new Promise((r) => setTimeout(r, 800)); return { raw: 'done' }; };",
      );
      const agent = new http.Agent({ keepAlive: true });
      const answered = new Promise<{ body: string; connection: string | undefined }>((resolve, reject) => {
        const request = http.request(
          server.url,
          { method: 'POST', agent, headers: { 'content-type': 'application/json', 'bt-api-key': tenant.privateKey } },
          (response) => {
            let body = '';
            response.on('data', (chunk) => (body += chunk));
            response.on('end', () => resolve({ body, connection: response.headers.connection }));
          },
        );
        request.on('error', reject);
        request.end(JSON.stringify({ query: REACT, variables: { id: reactorId } }));
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const closed = server.close().then(() => performance.now());
      const response = await answered;
      const sentAt = performance.now();
      expect(JSON.parse(response.body).data.react.raw).toBe('done');
      // The server's keep-alive timeout is 5 s: without the sweep, close() waited that long for the idle socket.
      expect((await closed) - sentAt).toBeLessThan(2_500);
      agent.destroy();
    } finally {
      await gateway.close();
    }
  });

  it('says plainly that its port is in use, without graphql-ws printing the error first', async () => {
    const gateway = await startTestGateway();
    const first = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
    const port = Number(new URL(first.url).port);
    const printed = vi.spyOn(console, 'error');
    try {
      await expect(startServer(gateway.app, { port, host: '127.0.0.1' })).rejects.toThrow(
        `Port ${port} on 127.0.0.1 is already in use (another reactor-gateway, or another service): set PORT, or HOST, to a free one.`,
      );
      expect(printed).not.toHaveBeenCalled();
    } finally {
      printed.mockRestore();
      await first.close();
      await gateway.close();
    }
  });

  it('accepts a graphql-ws connection with a valid key and closes one without (4401)', async () => {
    const gateway = await startTestGateway();
    const server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
    try {
      const tenant = await gateway.createTenant();
      const client = wsClient(server.url, tenant.privateKey);
      const ok = await collect(client, 'query { viewer { application { type } } }', {});
      expect(ok.values).toEqual([{ viewer: { application: { type: 'PRIVATE' } } }]);
      await client.dispose();

      let code = 0;
      const anonymous = wsClient(server.url, null, (closed) => {
        code = closed;
      });
      const refused = await collect(anonymous, 'query { __typename }', {}, { timeoutMs: 5_000 });
      expect(refused.values).toEqual([]);
      expect(code).toBe(4401);
      await anonymous.dispose();
    } finally {
      await server.close();
      await gateway.close();
    }
  });
});

describe('a restart', () => {
  it('keeps tenants, applications and keys', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rg-restart-'));
    const fresh = await createTestDatabase();
    const database = usingPostgres ? fresh : undefined;
    const target = usingPostgres ? undefined : ({ kind: 'pglite', dataDir } as const);
    try {
      // The first start writes the migrated template into the directory; the second reopens what is there.
      const initial = fresh.target.kind === 'pglite' ? { ...target!, template: fresh.target.template } : undefined;
      const first = await startTestGateway({ database, target: initial });
      const tenant = await first.createTenant('Survivor');
      await first.close();

      const second = await startTestGateway({ database, target });
      try {
        const result = await second.gql('{ viewer { tenant { id name } } }', {}, tenant.managementKey);
        expect(result.data?.viewer.tenant).toEqual({ id: tenant.tenantId, name: 'Survivor' });
      } finally {
        await second.close();
      }
    } finally {
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
