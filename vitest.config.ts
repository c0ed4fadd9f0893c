import { defineConfig } from 'vitest/config';

export default defineConfig({
  // One graphql build for Pothos and graphql-yoga alike, or Pothos sees two realms (DESIGN.md section 11).
  resolve: { alias: { graphql: 'graphql/index.js' } },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // isolated-vm needs --no-node-snapshot on Node 20; tsx lets piscina workers load the TypeScript worker file.
    execArgv: ['--no-node-snapshot', '--import', 'tsx'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
  },
});
