import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { startServer } from '../../src/server.ts';
import { createTestDatabase, usingPostgres } from '../support/database.ts';
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
