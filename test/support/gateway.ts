import type { KyselyPlugin } from 'kysely';
import { type App, createApp } from '../../src/app.ts';
import { type Environment, loadConfig } from '../../src/config.ts';
import type { DatabaseTarget } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

export const ADMIN_KEY = 'test-admin-key-0123456789';
export const TEST_ENCRYPTION_KEY = '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0';

export interface GraphQLResponse<T = Record<string, any>> {
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: Record<string, any> }[];
}

export interface TestTenant {
  tenantId: string;
  managementKey: string;
  privateKey: string;
}

export interface TestGateway {
  app: App;
  database: TestDatabase;
  /** POSTs a GraphQL operation through Yoga's own fetch (the real HTTP handling, without a port). */
  gql<T = Record<string, any>>(
    query: string,
    variables?: Record<string, unknown>,
    key?: string | null,
    headers?: Record<string, string>,
  ): Promise<GraphQLResponse<T>>;
  /** POSTs a JSON body as written (for bodies JSON.stringify cannot make), with the whole Response back. */
  post(body: string, key?: string | null, headers?: Record<string, string>): Promise<Response>;
  /** A new tenant of its own, so tests never share rows. */
  createTenant(name?: string): Promise<TestTenant>;
  close(): Promise<void>;
}

export function testEnvironment(overrides: Environment = {}): Environment {
  return {
    ADMIN_API_KEY: ADMIN_KEY,
    ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    LOG_LEVEL: 'silent',
    DATA_DIR: '/tmp/reactor-gateway-test-data',
    RUNTIME_THREADS: '2',
    ...overrides,
  };
}

export async function startTestGateway(
  options: {
    env?: Environment;
    database?: TestDatabase;
    target?: DatabaseTarget;
    queryPlugin?: KyselyPlugin;
    onFatal?: (error: Error) => void;
    keyRecheckMs?: number;
    idempotencyLeaseMs?: number;
  } = {},
): Promise<TestGateway> {
  const database = options.database ?? (await createTestDatabase());
  const config = loadConfig(testEnvironment(options.env));
  const app = await createApp(config, createLogger(config.logLevel), {
    database: options.target ?? database.target,
    queryPlugin: options.queryPlugin,
    onFatal: options.onFatal,
    keyRecheckMs: options.keyRecheckMs,
    idempotencyLeaseMs: options.idempotencyLeaseMs,
  });

  function post(body: string, key: string | null = null, headers: Record<string, string> = {}): Promise<Response> {
    return Promise.resolve(
      app.yoga.fetch('http://gateway.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { 'bt-api-key': key } : {}), ...headers },
        body,
      }),
    );
  }

  async function gql<T>(
    query: string,
    variables: Record<string, unknown> = {},
    key: string | null = null,
    headers: Record<string, string> = {},
  ): Promise<GraphQLResponse<T>> {
    const response = await post(JSON.stringify({ query, variables }), key, headers);
    return (await response.json()) as GraphQLResponse<T>;
  }

  return {
    app,
    database,
    gql,
    post,
    async createTenant(name = 'Test tenant') {
      const result = await gql<any>(
        `mutation($name: String!) { createTenant(input: { name: $name }) {
          __typename ... on CreateTenantPayload { tenant { id } managementKey privateKey } } }`,
        { name },
        ADMIN_KEY,
      );
      const payload = result.data?.createTenant;
      if (!payload?.tenant) throw new Error(`createTenant failed: ${JSON.stringify(result)}`);
      return { tenantId: payload.tenant.id, managementKey: payload.managementKey, privateKey: payload.privateKey };
    },
    async close() {
      await app.close();
      if (!options.database) await database.drop();
    },
  };
}

/** The `extensions.code` of the first GraphQL error, for asserting UNAUTHENTICATED / FORBIDDEN. */
export function errorCode(response: GraphQLResponse): string | undefined {
  return response.errors?.[0]?.extensions?.code;
}
