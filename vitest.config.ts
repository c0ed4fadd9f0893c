import { defineConfig } from 'vitest/config';

// The suite runs on an in-memory PGlite and, when TEST_DATABASE_URL is set (CI sets it), again on real Postgres.
const databases = process.env.TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

export default defineConfig({
  // One graphql build for Pothos and graphql-yoga alike, or Pothos sees two realms (DESIGN.md section 11).
  resolve: { alias: { graphql: 'graphql/index.js' } },
  test: {
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts'],
    // isolated-vm needs --no-node-snapshot on Node 20; tsx lets piscina workers load the TypeScript worker file.
    execArgv: ['--no-node-snapshot', '--import', 'tsx'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    projects: [
      ...databases.map((database) => ({
        extends: true as const,
        test: {
          name: database,
          include: ['test/**/*.test.ts'],
          // Pure unit tests and the sandbox's own tests do not touch a database: run them once.
          exclude: database === 'postgres' ? ['test/**/*.unit.test.ts', 'test/runtime/**'] : [],
          env: { TEST_DB: database },
        },
      })),
      {
        // The sandbox's suites again, through the runtime in a process of its own (RUNTIME_ISOLATION=process).
        extends: true as const,
        test: {
          name: 'runtime-process',
          include: ['test/runtime/**/*.test.ts'],
          exclude: [
            'test/**/*.unit.test.ts',
            'test/runtime/process-runtime.test.ts',
            // Processes of their own with the pool in them, and the polling between the pool's threads.
            'test/runtime/young-generation.test.ts',
            'test/runtime/shutdown.test.ts',
            'test/runtime/wake-poll.test.ts',
          ],
          env: { TEST_DB: 'pglite', TEST_RUNTIME_ISOLATION: 'process' },
        },
      },
    ],
  },
});
