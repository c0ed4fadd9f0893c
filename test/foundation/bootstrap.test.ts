import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingPostgres } from '../support/database.ts';
import { errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';

const MANAGEMENT = 'key_bootstrap_management_0123456789abcdefghijklmno';
const PRIVATE = 'key_bootstrap_private_0123456789abcdefghijklmnopqrs';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { BOOTSTRAP_MANAGEMENT_KEY: MANAGEMENT, BOOTSTRAP_PRIVATE_KEY: PRIVATE } });
});
afterAll(() => gateway?.close());

describe('first start on an empty database', () => {
  it('creates a default tenant whose keys are the BOOTSTRAP_* keys, once', async () => {
    const { services, config } = gateway.app;
    const created = await services.auth.bootstrapIfEmpty(config.bootstrap);
    expect(created).toMatchObject({
      managementKey: MANAGEMENT,
      privateKey: PRIVATE,
      tenant: { name: 'Default tenant' },
    });

    const viewer = '{ viewer { tenant { id } application { type } } }';
    const management = await gateway.gql(viewer, {}, MANAGEMENT);
    expect(management.data?.viewer).toEqual({
      tenant: { id: created!.tenant.id },
      application: { type: 'MANAGEMENT' },
    });
    expect((await gateway.gql(viewer, {}, PRIVATE)).data?.viewer.application.type).toBe('PRIVATE');

    // A second start finds a tenant and creates nothing.
    expect(await services.auth.bootstrapIfEmpty(config.bootstrap)).toBeNull();
    const tenants = await gateway.app.database.db.selectFrom('tenants').select('id').execute();
    expect(tenants).toHaveLength(1);
  });

  it('generates random keys when none are configured', async () => {
    const other = await startTestGateway();
    try {
      const created = await other.app.services.auth.bootstrapIfEmpty({});
      expect(created?.managementKey).toMatch(/^key_[A-Za-z0-9_-]{43}$/);
      expect(created?.privateKey).not.toBe(created?.managementKey);
      expect(
        (await other.gql('{ viewer { application { type } } }', {}, created!.managementKey)).data?.viewer.application
          .type,
      ).toBe('MANAGEMENT');
      expect(errorCode(await other.gql('{ viewer { application { type } } }', {}, MANAGEMENT))).toBe('UNAUTHENTICATED');
    } finally {
      await other.close();
    }
  });

  it('instances starting together on one empty database: exactly one creates the default tenant', async () => {
    const env = { BOOTSTRAP_MANAGEMENT_KEY: MANAGEMENT, BOOTSTRAP_PRIVATE_KEY: PRIVATE };
    const first = await startTestGateway({ env });
    // On Postgres a second instance of its own on the same database; PGlite has one connection, so one instance.
    const second = usingPostgres
      ? await startTestGateway({ env, target: { kind: 'postgres', url: first.database.url!, poolSize: 5 } })
      : first;
    try {
      const results = await Promise.all(
        [first, second, first, second].map((g) => g.app.services.auth.bootstrapIfEmpty(g.app.config.bootstrap)),
      );
      expect(results.filter((created) => created !== null)).toHaveLength(1);
      const tenants = await first.app.database.db.selectFrom('tenants').select('id').execute();
      expect(tenants).toHaveLength(1);
    } finally {
      if (second !== first) await second.close();
      await first.close();
    }
  });
});
