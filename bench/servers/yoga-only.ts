// The gateway as `main.ts serve` runs it, but with every request through Yoga's own node handler: the "before" of
// the fast path (src/graphql/fast-path.ts), measured side by side with the "after".
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer } from '../../src/server.ts';

const config = loadConfig();
const app = await createApp(config, createLogger(config.logLevel));
await app.services.auth.bootstrapIfEmpty(config.bootstrap);
const server = await startServer(app, { port: config.port, host: config.host, fastPath: false });
process.once('SIGTERM', async () => {
  await server.close();
  await app.close();
});
